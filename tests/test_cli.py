"""The command line, run as users run it: help texts, a phantom -> train -> segment round trip, bad input."""
import os
import subprocess
import sys

import numpy as np
import pytest

from membraneseg.engine.core import io
from membraneseg.engine.measurement import metrics

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def run(*args, check=True):
    return subprocess.run([sys.executable, "-m", "membraneseg.engine"] + [str(a) for a in args], env=ENV,
                          capture_output=True, text=True, check=check)


@pytest.mark.parametrize("command,words", [("segment", ["Å", "--threshold", "--overlap", "--batch-size"]),
                                           ("phantoms", ["Å", "--count", "--shape", "--seed"]),
                                           ("train", ["Å", "--preset", "--context", "--start-model"])])
def test_help_explains_options_and_units(command, words):
    out = run(command, "--help").stdout
    for w in words:
        assert w in out


def test_phantoms_train_segment_round_trip(tmp_path):
    ph = tmp_path / "ph"
    run("phantoms", "-o", ph, "--count", "3", "--shape", 32, 128, 128, "--seed", 4, "--kind", "simple")
    names = sorted(p for p in os.listdir(ph) if not p.endswith("_labels.mrc"))
    assert len(names) == 3 and all((ph / n.replace(".mrc", "_labels.mrc")).exists() for n in names)
    model = tmp_path / "model"
    vols = []
    for n, opt in zip(names, ("--volume", "--volume", "--val-volume")):
        vols += [opt, ph / n, ph / n.replace(".mrc", "_labels.mrc")]
    out = run("train", "-o", model, "--preset", "tiny", "--patch", 96, "--epochs", 6, "--steps", 15, *vols).stdout
    assert "threshold" in out and (model / "membraneseg_model.json").exists()
    res = tmp_path / "res"
    out = run("segment", ph / names[2], "-o", res, "--model", model).stdout
    mask = res / names[2].replace(".mrc", "_mask.mrc")
    assert str(mask) in out
    pred = io.read(str(mask))
    ref = io.read(str(ph / names[2].replace(".mrc", "_labels.mrc")))
    assert pred.voxel_size == pytest.approx(ref.voxel_size)
    d = metrics.dice(np.asarray(pred.data) > 0, np.asarray(ref.data) > 0)
    assert d > metrics.dice(np.ones(ref.data.shape, bool), np.asarray(ref.data) > 0) + 0.15


def test_bad_input_one_line_and_status_2(tmp_path):
    bad = tmp_path / "broken.mrc"
    bad.write_bytes(b"not an mrc at all" * 10)
    err = tmp_path / "err.txt"
    res = run("segment", bad, "-o", tmp_path / "out", "--error-file", err, check=False)
    assert res.returncode == 2
    assert "broken.mrc: not a readable MRC file" in res.stderr
    assert "Traceback" not in res.stderr
    assert "broken.mrc" in err.read_text()
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def test_missing_model_is_reported(tmp_path):
    vol = tmp_path / "v.mrc"
    io.write(str(vol), np.random.default_rng(0).normal(size=(2, 64, 64)).astype(np.float32), 10)
    res = run("segment", vol, "-o", tmp_path / "out", "--model", tmp_path / "nomodel", check=False)
    assert res.returncode == 2 and "nomodel: folder not found" in res.stderr
