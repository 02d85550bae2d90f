"""Every bad input of issue 9 through the command line (``membraneseg segment`` and ``preprocess``, run in-process
through ``main``). A refused input ends in one line naming the file and the problem, exit status 2, the same line
in --error-file, and no output; odd but usable inputs are processed with the right shape and header; one bad input
among several does not stop the others; bad model folders and a missing environment are explained."""
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from membraneseg.constants import ENV_NAME, MODEL_JSON, MODEL_WEIGHTS
from membraneseg.engine import cli
from membraneseg.engine.core import io
from membraneseg.engine.network import model as net, modelfile
from membraneseg.engine.segmentation import predict
from membraneseg.tests import badinputs

REFUSED = dict(badinputs.REFUSED, **{"2D where a volume is needed": badinputs.FLAT})


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    return badinputs.make(str(tmp_path_factory.mktemp("refused")), REFUSED)


@pytest.fixture(scope="module")
def usable(tmp_path_factory):
    return badinputs.make(str(tmp_path_factory.mktemp("usable")), badinputs.USABLE)


def run(tmp_path, *args):
    """The command line, in-process; returns its exit status and the one line it wrote to --error-file."""
    error = tmp_path / "error.txt"
    if error.exists():
        error.unlink()
    status = cli.main([str(a) for a in args] + ["--error-file", str(error)])
    return status, error.read_text() if error.exists() else ""


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.mark.parametrize("command", ["segment", "preprocess"])
@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_with_one_line_naming_the_file_and_no_output(name, command, refused, tiny_model, tmp_path):
    path, words = refused[name], REFUSED[name][2]
    out = tmp_path / "out"
    if command == "segment":
        status, reason = run(tmp_path, "segment", path, "-o", out, "--model", tiny_model, "--volumes-only")
    else:
        status, reason = run(tmp_path, "preprocess", path, "-o", out / "pre.mrc", "--volumes-only")
    assert status == cli.EXIT_BAD_INPUT
    assert reason.startswith(path + ": ") and words in reason and reason.count("\n") == 1, reason
    assert not out.exists() or os.listdir(out) == []


def test_usable_inputs_are_segmented_and_one_bad_input_does_not_stop_them(usable, refused, tiny_model, tmp_path,
                                                                           caplog):
    before = {name: digest(path) for name, path in usable.items()}
    out = tmp_path / "out"
    bad = refused["truncated MRC"]
    status, reason = run(tmp_path, "segment", *usable.values(), bad, "-o", out, "--model", tiny_model)
    # the bad input is reported at the end, after every usable one was segmented
    assert status == cli.EXIT_BAD_INPUT
    assert reason.startswith("1 of %d inputs: %s: not a readable MRC file" % (len(usable) + 1, bad))
    for name, path in usable.items():
        shape, header = badinputs.USABLE[name][2:]
        mask, prob = (io.read(p) for p in predict.output_paths(path, str(out)))
        trusted = header if header not in io.SUSPICIOUS_VOXEL_SIZES else 10.0   # else the model's, with a warning
        for vol in (mask, prob):
            assert vol.data.shape == shape and vol.voxel_size == pytest.approx(trusted), name
        p = np.asarray(prob.data)
        assert np.isfinite(p).all() and 0 <= p.min() <= p.max() <= 1, name
        np.testing.assert_array_equal(np.asarray(mask.data) > 0, p >= 0.5)
        assert digest(path) == before[name], "%s: the input was modified" % name
    assert sorted(badinputs.outputs(out)) == sorted(os.listdir(out))     # no .partial file left
    warned = [r.getMessage() for r in caplog.records]
    for name, words in (("header 1 Å", "header voxel size is 1.0 Å"),
                        ("header 0 Å", "pixel size unknown; assuming the model's 10.00 Å"),
                        ("mode 2 with NaN and Inf voxels", "of the voxels sampled are NaN or Inf")):
        assert any(m.startswith(usable[name] + ": ") and words in m for m in warned), name


def test_pixel_size_given_overrides_a_0_or_1_angstrom_header(usable, tiny_model, tmp_path, caplog):
    paths = [usable["header 0 Å"], usable["header 1 Å"]]
    assert run(tmp_path, "segment", *paths, "-o", tmp_path, "--model", tiny_model, "--pixel-size", 7)[0] == 0
    for path in paths:
        assert io.read(predict.output_paths(path, str(tmp_path))[0]).voxel_size == pytest.approx(7.0)
    assert "pixel size unknown" not in caplog.text


@pytest.mark.parametrize("name", list(badinputs.USABLE))
def test_usable_inputs_are_preprocessed(name, usable, tmp_path):
    shape, header = badinputs.USABLE[name][2:]
    out = tmp_path / "pre.mrc"
    status, reason = run(tmp_path, "preprocess", usable[name], "-o", out, "--eed-iterations", 1, "--volumes-only")
    assert status == 0, reason
    vol = io.read(str(out))
    assert vol.data.shape == shape
    assert vol.voxel_size == pytest.approx(header if header not in io.SUSPICIOUS_VOXEL_SIZES else 0.0)
    assert np.isfinite(np.asarray(vol.data)).all()
    assert sorted(os.listdir(tmp_path)) == ["pre.mrc", "pre_recipe.json"]


def _broken_model(source, folder, defect):
    """A copy of the model folder ``source`` with one defect."""
    shutil.copytree(source, folder)
    card_path, weights = os.path.join(folder, MODEL_JSON), os.path.join(folder, MODEL_WEIGHTS)
    with open(card_path) as f:
        card = json.load(f)
    if defect == "no card":
        os.remove(card_path)
    elif defect == "card not JSON":
        with open(card_path, "w") as f:
            f.write("{ not json")
    elif defect == "weights missing":
        os.remove(weights)
    elif defect == "weights corrupt":
        badinputs.flip_last_bytes(weights)
    else:
        if defect == "another architecture":
            card["network"] = net.NetworkSpec.from_preset("cpu-small").to_dict()
        else:  # "a pickle as weights": loading must not run it, even with a checksum that matches
            with open(weights, "wb") as f:
                pickle.dump(Exploit(os.path.join(folder, "PWNED")), f)
            card["weights_sha256"] = modelfile.sha256_of(weights)
        with open(card_path, "w") as f:
            json.dump(card, f)
    return folder


class Exploit:
    """Unpickling this creates a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("defect,words", [
    ("missing", "folder not found"), ("no card", "no membraneseg_model.json in it"),
    ("card not JSON", "is not a valid model card"), ("weights missing", "model.weights.h5 is missing"),
    ("weights corrupt", "checksum mismatch"), ("another architecture", "weights do not fit the network"),
    ("a pickle as weights", "weights do not fit the network")])
def test_bad_model_folders_are_refused(defect, words, usable, tiny_model, tmp_path):
    model = str(tmp_path / "model")
    if defect != "missing":
        _broken_model(tiny_model, model, defect)
    out = tmp_path / "out"
    status, reason = run(tmp_path, "segment", usable["mode 1 (int16)"], "-o", out, "--model", model)
    assert status == cli.EXIT_BAD_INPUT
    assert reason.startswith("model %s: " % model) and words in reason, reason
    assert not out.exists() or os.listdir(out) == []
    assert not os.path.exists(os.path.join(model, "PWNED"))


def test_missing_tensorflow_says_how_to_install(usable, tmp_path):
    # a fresh interpreter in which TensorFlow cannot be imported, as in an environment that was never installed
    code = ("import sys; sys.modules['tensorflow'] = sys.modules['keras'] = None; "
            "from membraneseg.engine.cli import main; sys.exit(main(sys.argv[1:]))")
    res = subprocess.run([sys.executable, "-c", code, "segment", usable["mode 1 (int16)"], "-o", tmp_path / "out"],
                         capture_output=True, text=True)
    assert res.returncode == cli.EXIT_BAD_INPUT, res.stderr
    assert "segment cannot run in the Python environment %s" % sys.executable in res.stderr
    assert "scipion3 installb %s" % ENV_NAME in res.stderr and "Traceback" not in res.stderr


def test_out_of_memory_says_what_to_change(usable, tmp_path, monkeypatch):
    class OutOfMemory:
        def __init__(self, *args, **kwargs):
            pass

        def segment_file(self, *args, **kwargs):
            raise MemoryError

    monkeypatch.setattr(predict, "Predictor", OutOfMemory)
    path = usable["mode 1 (int16)"]
    status, reason = run(tmp_path, "segment", path, "-o", tmp_path / "out")
    assert status == cli.EXIT_BAD_INPUT
    assert reason.startswith(path + ": ran out of memory; lower --batch-size, bin the tomogram")
