"""The default model's recipe (recipes/default_model.py) without the shared data: the phantoms an arm mixes into
fine-tuning, and the held-out phantom score every validation run records."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes"))
import default_model as recipe  # noqa: E402

from membraneseg.engine.training import data, patches
from membraneseg.engine.training.config import TrainConfig


@pytest.fixture
def small_cfg():
    cfg = recipe.load_config()
    cfg["pretrain"] = dict(cfg["pretrain"], count=2, val_count=1, shape=[8, 64, 64])
    return cfg


def test_an_arm_mixes_the_pretraining_phantoms_into_fine_tuning(small_cfg):
    config = TrainConfig(preset="tiny", patch=64)

    def pool(arm):
        return recipe.synthetic_pool(small_cfg, arm, "G5", ["G4"], {}, config, None)

    assert pool({"name": "plain"}) == ([], TrainConfig().synthetic_fraction)
    with pytest.raises(ValueError, match="both.*gan.*phantom_fraction"):
        pool({"name": "both", "gan": True, "phantom_fraction": 0.25})

    mixed, config.synthetic_fraction = pool({"name": "mix", "phantom_fraction": 0.25})
    assert config.synthetic_fraction == 0.25
    every = recipe.phantom_samples(small_cfg["pretrain"], None, config)
    assert [s.source for s in mixed] == [s.source for s in every[:2]]               # training phantoms only
    for s, t in zip(mixed, every):
        assert np.array_equal(s.image, t.image) and np.array_equal(s.labels, t.labels)
        assert s.labels.max() == 1 and abs(float(s.image.mean())) < 0.5              # binary, normalised
    # the patches the sampler draws: a quarter of them from the phantoms
    real = [data.Sample(np.zeros((1, 64, 64), np.float32), np.zeros((1, 64, 64), np.uint8), "real", True)]
    sampler = patches.PatchSampler(real, config, 0, mixed)
    x, y = sampler.batch(200)
    from_phantoms = np.mean([np.any(p != 0) for p in x])
    assert 0.15 < from_phantoms < 0.35
    # an arm with its own pretraining settings mixes in its own pretraining's phantoms
    fewer, _ = pool({"name": "mix-one", "phantom_fraction": 0.25, "pretrain": {"count": 1}})
    assert [s.source for s in fewer] == [s.source for s in every[:1]]


def test_held_out_phantom_dice_of_a_model(tmp_path):
    from membraneseg.engine.network import modelfile
    scores = recipe.phantom_dice(modelfile.default_model_path(), seeds=(901,), shape=(8, 96, 96))
    dice, iou = scores[901]
    assert 0.3 < dice < 1 and iou == pytest.approx(dice / (2 - dice), abs=1e-6)


def test_an_arm_starts_from_another_arms_model_of_the_same_fold(small_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(recipe, "RUNS", str(tmp_path))
    first, more = "e40", {"name": "e40-plus40", "continue_from": "e40"}
    with pytest.raises(SystemExit, match="logo --arms e40"):
        recipe.start_model(small_cfg, more, "G6", None)
    with pytest.raises(SystemExit, match="final --arm e40"):
        recipe.start_model(small_cfg, more, None, None)
    for folder in ("logo/%s-G6" % first, "final-%s" % first):
        os.makedirs(tmp_path / folder)
        (tmp_path / folder / recipe.MODEL_JSON).write_text("{}")
    assert recipe.start_model(small_cfg, more, "G6", None) == str(tmp_path / "logo" / "e40-G6")
    assert recipe.start_model(small_cfg, more, None, None) == str(tmp_path / "final-e40")
    assert recipe.start_model(small_cfg, {"name": "scratch"}, "G6", None) is None


def test_an_arm_with_its_own_pretraining_settings_has_its_own_pretrained_model(small_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(recipe, "RUNS", str(tmp_path))
    longer = {"name": "long", "preset": "tiny", "context": 1, "pretrained": True,
              "pretrain": {"epochs": 30, "patience": 6}}
    for folder in ("pretrain-tiny-k1", "pretrain-tiny-k1-epochs30-patience6"):      # cached: nothing trains
        os.makedirs(tmp_path / folder)
        (tmp_path / folder / recipe.MODEL_JSON).write_text("{}")
    assert recipe.start_model(small_cfg, longer, "G6", None) == str(tmp_path / "pretrain-tiny-k1-epochs30-patience6")
    plain = dict(longer, pretrain=None)
    assert recipe.start_model(small_cfg, plain, "G6", None) == str(tmp_path / "pretrain-tiny-k1")
