"""The shipped models: pinned checksums, metadata, and sane segmentations of a realistic phantom volume (the
tomogram model) and of a 2D image (the slice model), with no --model given (what a new user gets)."""
import hashlib
import os

import numpy as np
import pytest

from membraneseg.engine import cli
from membraneseg.engine.core import io
from membraneseg.engine.measurement import metrics
from membraneseg.engine.network import modelfile
from membraneseg.engine.segmentation import predict
from membraneseg.engine.simulation import simulate
from membraneseg.engine.network.model import PRESETS

DEFAULT = modelfile.default_model_path()
TOMOGRAMS = modelfile.default_model_path(volumes=True)
# The shipped model scores 0.643 on this phantom volume and 0.626 on its middle slice (threshold 0.32, measured
# when it was shipped; see membraneseg/weights/README.md). The floors leave room for numerical noise across CPUs and
# still sit far above a trivial answer: an all-membrane mask scores 0.178 here.
VOLUME_DICE_FLOOR = 0.45
IMAGE_DICE_FLOOR = 0.40


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """A realistic cell phantom that no shipped model was trained on (seed outside the recipe's ranges)."""
    folder = tmp_path_factory.mktemp("phantom")
    tomo, labels = simulate.cell_phantom((24, 192, 192), 10.0, seed=4242)
    path = str(folder / "cell.mrc")
    io.write(path, tomo, 10.0)
    return path, np.isin(labels, [1, 2])


def test_shipped_weights_match_their_pinned_checksum():
    with open(modelfile.SHIPPED_SUMS) as f:
        pinned = dict(reversed(line.split()) for line in f if line.strip())
    folders = [os.path.dirname(os.path.join(modelfile.WEIGHTS_DIR, name)) for name in pinned]
    assert sorted(os.path.realpath(f) for f in folders) == sorted(os.path.realpath(f) for f in (DEFAULT, TOMOGRAMS))
    for name, sha in pinned.items():
        weights = os.path.join(modelfile.WEIGHTS_DIR, name)
        assert hashlib.sha256(open(weights, "rb").read()).hexdigest() == sha
        assert modelfile.read_card(os.path.dirname(weights)).weights_sha256 == sha


def test_volumes_get_the_tomogram_model_and_images_the_slice_model(monkeypatch):
    monkeypatch.delenv("MEMBRANESEG_MODEL", raising=False)
    assert os.path.basename(TOMOGRAMS) == "tomograms" and os.path.basename(DEFAULT) == "default"
    card = modelfile.read_card(TOMOGRAMS)
    assert card.name == "membraneseg tomograms" and card.max_upsampling and card.max_upsampling > 1
    assert "benchmarks" in card.provenance
    monkeypatch.setenv("MEMBRANESEG_MODEL", DEFAULT)          # the variable wins for both kinds
    assert modelfile.default_model_path(volumes=True) == DEFAULT


def test_tampered_shipped_weights_are_refused(tmp_path, monkeypatch):
    """A copy of the shipped folder, registered as shipped, whose weights and card were both replaced."""
    fake_root = tmp_path / "weights"
    (fake_root / "default").mkdir(parents=True)
    card = modelfile.read_card(DEFAULT)
    weights = fake_root / "default" / "model.weights.h5"
    weights.write_bytes(b"not the shipped weights")
    card.weights_sha256 = hashlib.sha256(weights.read_bytes()).hexdigest()   # card agrees with the fake
    with open(fake_root / "SHA256SUMS", "w") as f, open(modelfile.SHIPPED_SUMS) as real:
        f.write(real.read())
    monkeypatch.setattr(modelfile, "WEIGHTS_DIR", str(fake_root))
    monkeypatch.setattr(modelfile, "SHIPPED_SUMS", str(fake_root / "SHA256SUMS"))
    with pytest.raises(modelfile.ModelError, match="pinned checksum"):
        modelfile.verify_weights(str(fake_root / "default"), card)


def test_metadata():
    card = modelfile.read_card(DEFAULT)
    assert card.network["preset"] in PRESETS
    assert card.network["context"] == 1
    assert card.pixel_size == pytest.approx(10.0)
    assert 0.05 <= card.threshold <= 0.95
    assert card.preprocessing.get("normalize") == "robust"
    assert card.class_names == ["background", "membrane"]
    # where the threshold and the figures come from is recorded in the card
    assert "logo" in card.provenance and card.provenance["threshold_source"]


def test_segments_a_phantom_volume_without_model_option(phantom, tmp_path, caplog):
    path, ref = phantom
    caplog.set_level("INFO")
    assert cli.main(["segment", path, "-o", str(tmp_path), "--threads", "2"]) in (0, None)
    assert "model: %s" % TOMOGRAMS in caplog.text
    mask = io.read(predict.output_paths(path, str(tmp_path))[0])
    assert mask.data.shape == ref.shape
    assert mask.voxel_size == pytest.approx(10.0)
    d = metrics.dice(np.asarray(mask.data) > 0, ref)
    assert d > VOLUME_DICE_FLOOR, d


def test_segments_a_2d_image(phantom, tmp_path, caplog):
    path, ref = phantom
    z = ref.shape[0] // 2
    plane = np.asarray(io.read(path).data[z], np.float32)
    lo, hi = np.percentile(plane, (0.5, 99.5))
    image = tmp_path / "slice.png"
    io.write(str(image), np.clip(255 * (plane - lo) / (hi - lo), 0, 255).astype(np.uint8), None)
    caplog.set_level("INFO")
    assert cli.main(["segment", str(image), "-o", str(tmp_path / "out"), "--pixel-size", "10"]) in (0, None)
    assert "model: %s" % DEFAULT in caplog.text
    mask = np.asarray(io.read(predict.output_paths(str(image), str(tmp_path / "out"))[0]).data)
    mask = mask.reshape(ref.shape[1:])
    d = metrics.dice(mask > 0, ref[z])
    assert d > IMAGE_DICE_FLOOR, d


def test_pinning_a_rebuilt_model_keeps_the_other_models_checksums(tmp_path, monkeypatch):
    sums = tmp_path / "SHA256SUMS"
    with open(modelfile.SHIPPED_SUMS) as real:
        sums.write_text(real.read())
    monkeypatch.setattr(modelfile, "SHIPPED_SUMS", str(sums))
    before = modelfile.shipped_sha256(DEFAULT)
    modelfile.pin_shipped(TOMOGRAMS, "ab" * 32)
    assert modelfile.shipped_sha256(TOMOGRAMS) == "ab" * 32 and modelfile.shipped_sha256(DEFAULT) == before
