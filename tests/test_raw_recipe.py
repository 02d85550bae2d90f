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
