"""The raw-tomogram model's recipe (recipes/raw_model.py) without training: the volumes it simulates, their sizes
and contents, and that a second run finds them instead of simulating them again."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes"))
import raw_model as recipe  # noqa: E402

from membraneseg.engine.core import io
from membraneseg.engine.simulation import raw


@pytest.fixture
def small_cfg(tmp_path, monkeypatch):
    monkeypatch.setattr(recipe, "RUNS", str(tmp_path))
    cfg = recipe.load_config()
    cfg["volumes"].update(train={"count": 3, "seed": 10000}, max_depth=16, min_side=32, max_side=48,
                          negatives_every=3, empty_every=100)
    return cfg


def test_volume_sizes_follow_the_pixel_size_within_their_bounds():
    v = dict(max_depth=96, field_angstrom=5120, min_side=96, max_side=256)
    assert recipe.volume_shape(raw.RawSettings(pixel_size=10.0, thickness=2000.0), v) == (96, 256, 256)
    assert recipe.volume_shape(raw.RawSettings(pixel_size=40.0, thickness=2000.0), v) == (50, 128, 128)
    assert recipe.volume_shape(raw.RawSettings(pixel_size=40.0, thickness=400.0), v) == (16, 128, 128)


def test_contents_cycle_through_negatives_and_empty_volumes():
    v = dict(negatives_every=6, empty_every=16)
    contents = [recipe.content_of(i, v) for i in range(48)]
    assert contents.count("empty") == 3 and contents.count("negatives") == 7
    assert contents[5] == "negatives" and contents[15] == "empty"


def test_volumes_are_simulated_once_with_their_settings(small_cfg):
    made = recipe.make_volumes(small_cfg, "train")
    assert len(made) == 3
    for tomo, labels in made:
        volume, label_map = io.read(tomo), io.read(labels)
        assert volume.data.shape == label_map.data.shape and volume.data.shape[0] <= 16
        with open(tomo[:-len(".mrc")] + ".json") as f:
            settings = json.load(f)
        assert volume.voxel_size == pytest.approx(settings["pixel_size"], rel=1e-4)
    assert json.load(open(made[2][0][:-4] + ".json"))["content"] == "negatives"
    stamps = [os.path.getmtime(t) for t, _ in made]
    assert recipe.make_volumes(small_cfg, "train") == made
    assert [os.path.getmtime(t) for t, _ in made] == stamps


def test_a_split_may_set_its_own_share_of_negatives(small_cfg):
    small_cfg["volumes"]["negatives"] = {"count": 2, "seed": 30000, "negatives_every": 1, "empty_every": 100}
    made = recipe.make_volumes(small_cfg, "negatives")
    assert [json.load(open(t[:-4] + ".json"))["content"] for t, _ in made] == ["negatives", "negatives"]
    assert os.path.dirname(made[0][0]).endswith(os.path.join(small_cfg["volumes"]["folder"], "negatives"))


def test_transferred_start_keeps_every_layer_that_fits_and_a_fresh_lstm(tmp_path, monkeypatch):
    """The z-context arms start from one single-slice model: a 2.5D network gets its encoder, ASPP and decoder
    weights, and both arms get a fresh LSTM (the two LSTMs' shapes differ)."""
    import numpy as np
    from membraneseg.engine.network import model as net
    from membraneseg.engine.network import modelfile
    monkeypatch.setattr(recipe, "RUNS", str(tmp_path / "runs"))
    spec = net.NetworkSpec.from_preset("tiny")
    source = net.build(spec, patch=96)
    modelfile.save(source, modelfile.ModelCard(network=spec.to_dict(), pixel_size=10.0, patch=96, threshold=0.4),
                   str(tmp_path / "source"))
    source, _ = modelfile.load(str(tmp_path / "source"))
    for k, step in ((1, 1), (3, 8)):
        folder = recipe.transferred_start(dict(name="arm-k%d" % k, context=k, context_step=step,
                                               transfer_from=str(tmp_path / "source")))
        start, card = modelfile.load(folder)
        assert card.network["context"] == k and card.threshold == 0.4 and card.provenance["fresh_layers"][0] == "lstm"
        assert card.network["context_step"] == step
        for name in ("enc1_conv1", "aspp_fuse", "dec6_conv2", "output"):
            for a, b in zip(start.get_layer(name).get_weights(), source.get_layer(name).get_weights()):
                np.testing.assert_array_equal(a, b)
        assert not all(np.array_equal(a, b) for a, b in zip(start.get_layer("lstm").get_weights(),
                                                           source.get_layer("lstm").get_weights()))


def test_a_split_may_hold_one_content_in_a_range_of_pixel_sizes(small_cfg):
    small_cfg["volumes"]["microtubules"] = {"count": 2, "seed": 40000, "content": "microtubules",
                                            "pixel_sizes": [15, 40]}
    made = recipe.make_volumes(small_cfg, "microtubules")
    settings = [json.load(open(t[:-4] + ".json")) for t, _ in made]
    assert [s["content"] for s in settings] == ["microtubules", "microtubules"]
    assert all(15 <= s["pixel_size"] <= 40 for s in settings)


def test_a_split_may_put_a_film_edge_and_dark_ice_in_every_volume(small_cfg):
    small_cfg["volumes"]["hard"] = {"count": 2, "seed": 43000, "negatives_every": 2, "empty_every": 100,
                                    "carbon": True, "contamination": True, "ice_absorption": [0.3, 0.9]}
    made = recipe.make_volumes(small_cfg, "hard")
    records = [json.load(open(t[:-4] + ".json")) for t, _ in made]
    assert [r["content"] for r in records] == ["cell", "negatives"]
    assert all(r["carbon"] and r["contamination"] and 0.3 <= r["ice_absorption"] <= 0.9 for r in records)
    assert records[0]["ice_absorption"] != records[1]["ice_absorption"]


def test_an_arm_may_leave_labels_out_and_aim_patches_at_the_rims_of_negatives(small_cfg):
    arm = next(a for a in small_cfg["arms"] if a["name"] == "mass-rim-e20")
    config = recipe.train_config(small_cfg, arm)
    assert (config.hard_negative_labels, config.hard_negative_bias) == ([5, 6], 0.2)
    assert config.start_model.endswith(os.path.join("runs", "raw", "mass-mt-up2-neg-e25"))
    assert recipe.train_config(small_cfg, dict(arm, ignore_labels=[7])).ignore_labels == [7]
    plain = recipe.train_config(small_cfg, next(a for a in small_cfg["arms"] if a["name"] == "raw-ft-e60"))
    assert (plain.hard_negative_labels, plain.hard_negative_bias, plain.ignore_labels) == ([], 0.0, [])


@pytest.fixture
def arm_like_shipped(small_cfg, tmp_path, monkeypatch):
    """An arm folder holding the shipped tomogram model, and a weights folder of its own for ship to write."""
    import shutil
    from membraneseg.engine.network import modelfile
    shipped = modelfile.default_model_path(volumes=True)
    shutil.copytree(shipped, tmp_path / "arm")
    weights = tmp_path / "weights"
    shutil.copytree(shipped, weights / modelfile.TOMOGRAM_MODEL_DIR)
    shutil.copy(modelfile.SHIPPED_SUMS, weights / "SHA256SUMS")
    monkeypatch.setattr(modelfile, "WEIGHTS_DIR", str(weights))
    monkeypatch.setattr(modelfile, "SHIPPED_SUMS", str(weights / "SHA256SUMS"))
    card = modelfile.read_card(shipped)
    small_cfg["ship"] = dict(arm="arm", name=card.name, test_scales=card.test_scales, benchmarks={})
    return small_cfg, card, weights / modelfile.TOMOGRAM_MODEL_DIR


def test_calibration_picks_the_best_tolerant_dice_within_the_marking_budget(arm_like_shipped, tmp_path):
    cfg, card, _ = arm_like_shipped
    cfg["volumes"]["val"] = {"count": 2, "seed": 20000, "negatives_every": 2, "empty_every": 100}
    cfg["calibration"] = ["val"]
    threshold, dice = recipe.calibrate(cfg, "arm", factors=[1.0], out_dir=str(tmp_path))
    rows = (tmp_path / "calibrate-arm.txt").read_text().splitlines()[1:]
    assert len(rows) == 17 and sum("<- chosen" in r for r in rows) == 1 and sum("<- best" in r for r in rows) == 1

    def figures(row):   # (threshold, tolerant Dice, % of membrane-free voxels marked)
        return (float(row.split()[1]), float(row.split("tolerant Dice")[1].split()[0]),
                float(row.split("marked")[1].split("%")[0]))
    table = [figures(r) for r in rows]
    chosen = figures(next(r for r in rows if "<- chosen" in r))
    assert chosen[:2] == pytest.approx((threshold, dice), abs=1e-3)
    within = [f for f in table if f[2] <= 100 * recipe.MAX_MARKED] or table
    assert dice == pytest.approx(max(f[1] for f in within), abs=1e-3)


def test_ship_writes_a_new_threshold_for_the_same_weights_and_skips_when_nothing_changes(arm_like_shipped):
    from membraneseg.engine.network import modelfile
    cfg, card, out = arm_like_shipped
    before = (out / modelfile.MODEL_JSON).read_text()
    cfg["ship"]["threshold"] = card.threshold
    recipe.ship(cfg)
    assert (out / modelfile.MODEL_JSON).read_text() == before       # same weights, threshold and scales
    cfg["ship"].update(threshold=0.3, threshold_note="calibrated here")
    recipe.ship(cfg)
    shipped = modelfile.read_card(str(out))
    assert shipped.threshold == 0.3 and shipped.provenance["threshold_calibration"] == "calibrated here"
    assert shipped.provenance["previous"]["weights_sha256"] == card.weights_sha256
    assert modelfile.shipped_sha256(str(out)) == card.weights_sha256
