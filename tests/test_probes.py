"""The held-out probes' own arithmetic (recipes/probe_geometry.py, probe_ensemble.py), on drawn masks: the probes
themselves need the shared data and cached fold models."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes"))
import probe_ensemble  # noqa: E402
import probe_geometry as geometry  # noqa: E402


@pytest.fixture
def band():
    """A vertical membrane 2 px wide, away from the edges."""
    m = np.zeros((64, 64), bool)
    m[8:56, 30:32] = True
    return m


def test_width_and_shifted_dice_of_a_two_pixel_line(band):
    assert geometry.width(band) == pytest.approx(2.0, abs=0.1)
    # across the line a 1 px move keeps half of it, a 2 px move none; along it almost all
    across1, along1 = 0.5, 2 * 47 / 96
    assert geometry.shifted_dice(band, 1) == pytest.approx((across1 + along1) / 2, abs=1e-6)
    assert geometry.shifted_dice(band, 2) == pytest.approx((0 + 2 * 46 / 96) / 2, abs=1e-6)


def test_distance_histogram_bins(band):
    beside = np.roll(band, 2, axis=1)               # 2 px to the right: one column touches, one is 1 px off
    fractions = dict(zip(geometry.DISTANCE_LABELS, geometry.distance_histogram(beside, band)))
    assert fractions["1"] == pytest.approx(0.5) and fractions["2"] == pytest.approx(0.5)
    assert geometry.distance_histogram(band, band)[0] == 1.0
    assert geometry.distance_histogram(band, np.zeros_like(band))[-1] == 1.0     # nothing to be near: far
    assert not geometry.distance_histogram(np.zeros_like(band), band).any()


def test_ensemble_mean_keeps_slice_order_and_reference(band):
    a = {"G1": [(np.full((1, 4, 4), 0.2, np.float32), band[:4, :4])]}
    b = {"G1": [(np.full((1, 4, 4), 0.6, np.float32), band[:4, :4])]}
    (prob, ref), = probe_ensemble.mean_of([a, b])["G1"]
    assert np.allclose(prob, 0.4) and ref is a["G1"][0][1]


def test_weight_soup_is_the_mean_of_the_fold_models(tmp_path, monkeypatch):
    import keras
    from membraneseg.engine.network import model as net, modelfile
    spec = net.NetworkSpec.from_preset("tiny")
    for arm, seed in (("a", 1), ("b", 2)):
        keras.utils.set_random_seed(seed)
        card = modelfile.ModelCard(network=spec.to_dict(), pixel_size=10.0, patch=96, threshold=0.5)
        modelfile.save(net.build(spec, patch=96), card, str(tmp_path / arm / "G6"))
    monkeypatch.setattr(probe_ensemble.recipe, "run_dir", lambda arm, fold: str(tmp_path / arm / fold))
    probe_ensemble.soup(["a", "b"], "G6", str(tmp_path / "soup"))
    weights = [modelfile.load(str(tmp_path / f))[0].get_weights() for f in ("a/G6", "b/G6", "soup")]
    assert any(not np.array_equal(x, y) for x, y in zip(weights[0], weights[1]))
    for x, y, mean in zip(*weights):
        assert np.allclose(mean, (x + y) / 2, atol=1e-6)


def test_cleaning_variants_drop_small_or_faint_pieces():
    import probe_cleaning
    prob = np.zeros((4, 32, 32), np.float32)
    prob[:, 4:6, 2:30] = 0.95          # a sheet of 4 x 2 x 28 = 224 voxels, sure
    prob[1, 20, 20] = 0.4              # a speck of one voxel, faint
    out = probe_cleaning.variants(prob, 0.35, 10.0)       # 10 Å: 1 nm³ per voxel
    assert out["none"].sum() == 225
    assert out["min 500"].sum() == 0 and out["min 2000"].sum() == 0      # both under 500 nm³
    out = probe_cleaning.variants(prob, 0.35, 20.0)       # 20 Å: 8 nm³ per voxel, the sheet is 1792 nm³
    assert out["min 500"].sum() == 224 and out["min 2000"].sum() == 0
    assert out["hyst 0.60"].sum() == 224 and not out["hyst 0.60"][1, 20, 20]
    assert out["thr 0.50"].sum() == 224 and out["thr 0.25"].sum() == 225
