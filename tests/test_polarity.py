"""Contrast polarity: measured on phantoms of either polarity, undecided on pure noise, and applied by segment so
that an inverted tomogram gives the same masks as the original."""
import logging

import numpy as np
import pytest

from membraneseg.engine import cli
from membraneseg.engine.core import io
from membraneseg.engine.preprocessing import polarity
from membraneseg.engine.segmentation import predict
from membraneseg.engine.simulation import raw, simulate


@pytest.fixture(scope="module")
def cell():
    return simulate.cell_phantom((32, 96, 96), 10.0, seed=2)[0]


def test_matter_is_found_dark_in_phantoms_and_bright_when_inverted(cell):
    assert polarity.detect(cell, 10.0)[0] == "dark"
    assert polarity.detect(-cell, 10.0)[0] == "bright"
    settings = raw.draw_settings(np.random.default_rng(0), pixel_size=20.0, look="raw", polarity="bright",
                                 content="negatives", tilt_step=5.0)
    bright = raw.generate_raw((24, 64, 64), settings, seed=1).tomogram
    assert polarity.detect(bright, 20.0)[0] == "bright"


def test_pure_noise_is_undecided():
    noise = np.random.default_rng(0).standard_normal((16, 96, 96)).astype(np.float32)
    found, skew = polarity.detect(noise, 10.0)
    assert found is None and abs(skew) < polarity.UNDECIDED


def test_a_2d_image_and_a_few_slices_are_enough(cell):
    assert polarity.detect(cell[10:11], 10.0)[0] == "dark"
    assert polarity.detect(-cell[:3], 10.0)[0] == "bright"


def test_segment_inverts_bright_tomograms_so_both_give_the_same_masks(cell, tiny_model, tmp_path, caplog):
    io.write(str(tmp_path / "dark.mrc"), cell, 10.0)
    io.write(str(tmp_path / "bright.mrc"), -cell, 10.0)
    caplog.set_level(logging.INFO)
    for name in ("dark", "bright"):
        assert cli.main(["segment", str(tmp_path / (name + ".mrc")), "-o", str(tmp_path / name), "--model",
                         tiny_model]) == 0
    assert "matter is bright" in caplog.text and "inverting it for the network" in caplog.text
    dark = io.read(str(tmp_path / "dark" / "dark_prob.mrc")).data
    bright = io.read(str(tmp_path / "bright" / "bright_prob.mrc")).data
    np.testing.assert_allclose(bright, dark, atol=1e-5)
    # told the wrong polarity, the network sees the inverted tomogram
    assert cli.main(["segment", str(tmp_path / "dark.mrc"), "-o", str(tmp_path / "told"), "--model", tiny_model,
                     "--polarity", "bright"]) == 0
    assert not np.allclose(io.read(str(tmp_path / "told" / "dark_prob.mrc")).data, dark, atol=1e-3)


def test_predict_array_takes_arrays_as_given_unless_told(cell, tiny_model):
    p = predict.Predictor(tiny_model)
    dark, _ = p.predict_array(cell, 10.0)
    inverted, _ = p.predict_array(-cell, 10.0, polarity="bright")
    np.testing.assert_allclose(inverted, dark, atol=1e-5)
    with pytest.raises(ValueError, match="polarity"):
        p.predict_array(cell, 10.0, polarity="grey")
