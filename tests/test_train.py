"""Training: the split by group, augmentation, 2.5D context, labels, the calibrated threshold, resuming an
interrupted run, and multi-class models."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from membraneseg.engine.core import io, tiling
from membraneseg.engine.measurement import metrics
from membraneseg.engine.network import modelfile
from membraneseg.engine.simulation import phantoms
from membraneseg.engine.segmentation import predict
from membraneseg.engine.preprocessing import preprocess, recipes
from membraneseg.engine.training import augment, data, loop, losses, patches
from membraneseg.engine.training.config import TrainConfig

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def _sample(depth=5, size=120, group="", is_2d=False, z_spacing=1.0):
    """A stack whose every slice is constant and equal to its z index, with a disc of label 1 in the middle."""
    image = np.repeat(np.arange(depth, dtype=np.float32)[:, None, None], size, 1).repeat(size, 2)
    yy, xx = np.mgrid[:size, :size]
    labels = np.repeat(((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2)[None], depth, 0)
    return data.Sample(image, labels.astype(np.uint8), "s%s" % group, is_2d, group, z_spacing)


# ----------------------------------------------------------------------------- split
def test_split_keeps_groups_whole():
    items = [_sample(group="g%d" % (i % 20)) for i in range(60)]      # 20 groups of 3
    tr, va, te = data.split_by_source(items, seed=3)
    sides = [{s.group for s in part} for part in (tr, va, te)]
    assert [len(s) for s in sides] == [14, 3, 3]                     # 70/15/15 of the groups
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert sorted(map(id, tr + va + te)) == sorted(map(id, items))   # every item once


def test_split_without_groups_splits_items_and_few_groups_reuse_training():
    items = [_sample() for _ in range(10)]
    tr, va, te = data.split_by_source(items)
    assert (len(tr), len(va), len(te)) == (6, 2, 2)
    two = [_sample(group="a"), _sample(group="a"), _sample(group="b")]
    tr, va, te = data.split_by_source(two)
    assert len(tr) == 3 and va == tr and te == []


def test_groups_file_like_the_shared_manifest(tmp_path):
    csv = tmp_path / "manifest.csv"
    csv.write_text("id,group,image_png\nhybc_1,G0,images/hybc_1.png\nhybc_2,G4,images/hybc_2.png\n")
    groups = data.read_groups(str(csv))
    assert groups == {"hybc_1": "G0", "hybc_2": "G4"}
    assert data.image_group("/data/images/hybc_2.png", groups, "folder") == "G4"
    assert data.image_group("/data/images/hybc_9.png", None, "folder") == "folder"
    with pytest.raises(io.InputError, match="hybc_9.png: has no group"):
        data.image_group("/data/images/hybc_9.png", groups, "folder")
    bad = tmp_path / "bad.csv"
    bad.write_text("name,kind\nx,y\n")
    with pytest.raises(io.InputError, match="'group' column"):
        data.read_groups(str(bad))


# ----------------------------------------------------------------------------- augmentation and context
def test_augmentation_moves_image_and_labels_together():
    rng = np.random.default_rng(0)
    size, patch = 144, 96
    labels = np.zeros((size, size), np.uint8)
    labels[30:60, 20:100] = 1
    labels[80:120, 70:90] = 4
    labels[40:45, 100:140] = 2
    for _ in range(20):
        stack, lab = augment.geometric([labels.astype(np.float32)] * 2, labels, rng, patch)
        assert lab.shape == (patch, patch) and stack[0].shape == (patch, patch)
        assert set(np.unique(lab)) <= {0, 1, 2, 4}                 # nearest: no new label values
        # the image went through the same warp (linear instead of nearest): they agree but at a few edge pixels
        assert np.mean(np.abs(stack[0] - lab) < 0.5) > 0.97
        np.testing.assert_array_equal(stack[0], stack[1])


def test_rot90_turns_some_patches_upright():
    rng = np.random.default_rng(2)
    bar = np.zeros((144, 144), np.uint8)
    bar[62:82, 32:112] = 1                               # a lying bar, 4x wider than tall, at the centre

    def lying(lab):
        rows, cols = np.nonzero(lab)
        return cols.var() > rows.var()
    plain = [lying(augment.geometric([bar.astype(np.float32)], bar, rng, 96)[1]) for _ in range(20)]
    turned = [lying(augment.geometric([bar.astype(np.float32)], bar, rng, 96, rot90=True)[1]) for _ in range(20)]
    assert all(plain)                                    # ±20° never stands it up
    assert 3 <= turned.count(False) <= 17                # 90° and 270° turns do, about half the time


def test_intensity_augmentation_changes_every_slice_alike_and_keeps_the_scale():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(64, 64)).astype(np.float32)
    changed = []
    for _ in range(30):
        a, b = augment.jitter_intensity([base, base.copy()], rng, 1.0)
        assert a.dtype == np.float32 and a.shape == base.shape
        assert np.allclose(a, b, atol=5.0)                          # same contrast/offset/blur; own noise draw
        changed.append(np.mean(np.abs(a - base)))
        assert 0.1 < a.std() < 10                                   # a normalised image stays roughly normalised
    assert min(changed) < max(changed) and max(changed) > 0.1


def test_style_augmentation_changes_every_slice_alike_and_standardises():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(96, 96)).astype(np.float32)
    looks = []
    for _ in range(20):
        a, b = augment.restyle([base, base.copy()], rng, 1.0)
        np.testing.assert_array_equal(a, b)                          # one look per patch, all slices alike
        assert a.dtype == np.float32 and abs(a.mean()) < 1e-4 and abs(a.std() - 1) < 1e-3
        looks.append(np.corrcoef(a.ravel(), base.ravel())[0, 1])
    assert min(looks) > 0 and max(looks) - min(looks) > 0.3      # the same image, in looks that vary


def test_contrast_inversion_negates_patches_with_its_probability_and_keeps_labels():
    config = TrainConfig(patch=64, invert=0.5, intensity=0.0, style=0.0)
    image = np.full((1, 120, 120), 2.0, np.float32) + np.random.default_rng(0).normal(0, 0.1, (1, 120, 120))
    sample = data.Sample(image.astype(np.float32), (image > 2).astype(np.uint8), "bright", True)
    plain = patches.PatchSampler([sample], TrainConfig(patch=64), 0)
    inverted = patches.PatchSampler([sample], TrainConfig(patch=64, invert=1.0), 0)
    x0, y0 = plain.batch(1)
    x1, y1 = inverted.batch(1)
    np.testing.assert_array_equal(y0, y1)
    np.testing.assert_allclose(x1, -x0)              # the same patch, negated: inversion is drawn last
    flips = [float(np.mean(x)) for x in patches.PatchSampler([sample], config, 1).batch(200)[0]]
    signs = np.sign(flips)
    assert 0.35 < np.mean(signs > 0) < 0.65         # about half of the patches bright, half dark


def test_reflect_border_fills_patches_with_mirrored_image_not_smeared_edges():
    """A 2D slice smaller than the region cut around a patch: replicate smears its edge rows into stripes
    (many identical neighbouring columns); reflect mirrors the image and its labels alike."""
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, 64, 64)).astype(np.float32)
    sample = data.Sample(image, (image > 1.5).astype(np.uint8), "small", True)

    def stripes(border):
        config = TrainConfig(patch=96, foreground_bias=0.0, border=border)
        x, y = patches.PatchSampler([sample], config, 0).batch(10)
        same = np.mean([np.mean(np.abs(np.diff(p[..., 0], axis=0)) < 1e-6) for p in x])
        return same, x, y
    smeared, _, _ = stripes("replicate")
    mirrored, x, y = stripes("reflect")
    assert smeared > 0.15 and mirrored < 0.02
    # the labels went through the same mirroring: membrane where the image is bright
    assert np.mean(x[..., 0][y[..., 0] > 0]) > np.mean(x[..., 0]) + 1.0


def _positions(z, depth, k, spacing):
    return tiling.blend_slices(float, tiling.context_slices(z, depth, k, spacing))


def test_2d_samples_get_repeated_context_and_volumes_their_neighbours():
    config = TrainConfig(context=3, patch=96, augment=False, context_dropout=0.0, foreground_bias=0.0)
    flat = patches.PatchSampler([_sample(depth=1, is_2d=True)], config, 0).batch(6)[0]
    assert flat.shape == (6, 3, 96, 96, 1)
    np.testing.assert_array_equal(flat[:, 0], flat[:, 1])
    np.testing.assert_array_equal(flat[:, 2], flat[:, 1])
    # a volume at 5 Å with the model at 10 Å: the neighbours are 2 input slices away (mirrored at the ends)
    x = patches.PatchSampler([_sample(depth=9, z_spacing=2.0)], config, 0).batch(20)[0]
    # (each slice's value is its index; a model voxel 2 input slices deep is their mean)
    for stack in x[:, :, 0, 0, 0]:
        assert any(list(stack) == pytest.approx(_positions(z, 9, 3, 2.0)) for z in range(9))
    assert np.any(x[:, 2, 0, 0, 0] - x[:, 0, 0, 0, 0] == 4)          # inside the volume: z - 2 and z + 2
    # a 20 Å volume for a 10 Å model: neighbours interpolated half a slice away
    x = patches.PatchSampler([_sample(depth=9, z_spacing=0.5)], config, 0).batch(20)[0]
    for z, stack in zip(x[:, 1, 0, 0, 0].astype(int), x[:, :, 0, 0, 0]):
        assert list(stack) == pytest.approx(_positions(z, 9, 3, 0.5))
    assert np.all(x[:, 2, 0, 0, 0] - x[:, 0, 0, 0, 0] <= 1) and np.any(x[:, 2, 0, 0, 0] - x[:, 0, 0, 0, 0] == 1)
    # context dropout 1: tomogram patches look like 2D ones
    dropped = patches.PatchSampler([_sample(depth=9)], TrainConfig(**dict(
        vars(config), context_dropout=1.0)), 0).batch(6)[0]
    np.testing.assert_array_equal(dropped[:, 0], dropped[:, 2])


def test_synthetic_pairs_give_their_fraction_of_patches_and_leave_the_real_stream_alone():
    config = TrainConfig(patch=64, augment=False, foreground_bias=0.0, synthetic_fraction=0.3)
    real = data.Sample(np.zeros((1, 96, 96), np.float32), np.zeros((1, 96, 96), np.uint8), "real", True)
    synthetic = [data.Sample(np.ones((1, 80, 80), np.float32), np.ones((1, 80, 80), np.uint8), "syn%d" % i, True,
                              "synthetic") for i in range(50)]
    x, y = patches.PatchSampler([real], config, 0, synthetic).batch(400)
    from_synthetic = x[:, 0, 0, 0] == 1
    np.testing.assert_array_equal(from_synthetic, y[:, 0, 0, 0] == 1)      # image and mask from the same pair
    assert 0.24 < from_synthetic.mean() < 0.36           # 30% whatever their number (50 pairs against 1 image)
    # without synthetic pairs nothing extra is drawn: the patches are those of a sampler that never knew of them
    plain = patches.PatchSampler([_sample(depth=4)], TrainConfig(patch=64), 5).batch(4)[0]
    mixed = patches.PatchSampler([_sample(depth=4)], TrainConfig(patch=64, synthetic_fraction=0.3), 5,
                               ()).batch(4)[0]
    np.testing.assert_array_equal(plain, mixed)


def test_patches_centre_on_the_rims_of_hard_negatives_when_asked(tmp_path):
    # a volume with a membrane disc (label 1) and a square of ice contamination (label 6) at rows/columns 60-89
    labels = np.zeros((3, 120, 120), np.uint8)
    labels[:, 60:90, 60:90] = 6
    labels[:, 10:14, 10:40] = 1
    image = np.zeros((3, 120, 120), np.float32)
    image[labels == 6] = 1.0
    config = TrainConfig(patch=8, augment=False, hard_negative_labels=[5, 6], hard_negative_bias=1.0)
    sample = data._resample(image, labels, 10.0, config, "ice", False)
    rims = sample.hard_rims
    inside = rims[:, 1:].min(axis=1) >= 60
    assert len(rims) == 3 * 4 * 29 and inside.all() and np.isin(rims[:, 1:], [60, 89]).any(axis=1).all()
    assert set(np.unique(sample.labels)) == {0, 1}        # the binary model's labels still collapse
    x, y = patches.PatchSampler([sample], config, 0).batch(50)
    # every patch is centred on the square's edge: it holds both the ice (1) and what lies outside it (0)
    assert all(0 < p.mean() < 1 for p in x[..., 0]) and not y.any()
    # off (the default), nothing more is drawn: the same patches as a sampler that never heard of rims
    off = TrainConfig(patch=8, augment=False)
    plain = patches.PatchSampler([data._resample(image, labels, 10.0, off, "ice", False)], off, 3).batch(20)[0]
    named = TrainConfig(patch=8, augment=False, hard_negative_labels=[6])
    ignored = patches.PatchSampler([data._resample(image, labels, 10.0, named, "ice", False)], named, 3).batch(20)[0]
    np.testing.assert_array_equal(plain, ignored)


def test_z_spacing_follows_the_pixel_sizes(tmp_path):
    tomo, labels = phantoms.simple_phantom((8, 64, 64), 5.0, seed=1)
    io.write(str(tmp_path / "t.mrc"), tomo, 5.0)
    io.write(str(tmp_path / "l.mrc"), labels, 5.0)
    s = data.load_volume_pair(str(tmp_path / "t.mrc"), str(tmp_path / "l.mrc"), TrainConfig(pixel_size=10))
    assert s.image.shape == (8, 32, 32) and s.z_spacing == 2.0 and s.group == ""
    s = data.load_volume_pair(str(tmp_path / "t.mrc"), str(tmp_path / "l.mrc"), TrainConfig(pixel_size=10),
                               pixel_size=10.0)                     # the sampling rate given wins over the header
    assert s.image.shape == (8, 64, 64) and s.z_spacing == 1.0


def test_max_upsampling_trains_coarse_tomograms_where_segment_will_give_them(tmp_path):
    """With max_upsampling 2, a 40 Å tomogram trains at 20 Å (as predict.working_pixel_size then segments it), a
    15 Å one still at the model's 10 Å."""
    from membraneseg.engine.segmentation.predict import working_pixel_size
    tomo, labels = phantoms.simple_phantom((8, 32, 32), 40.0, seed=1)
    io.write(str(tmp_path / "t.mrc"), tomo, 40.0)
    io.write(str(tmp_path / "l.mrc"), labels, 40.0)
    config = TrainConfig(pixel_size=10, max_upsampling=2.0)
    s = data.load_volume_pair(str(tmp_path / "t.mrc"), str(tmp_path / "l.mrc"), config)
    assert s.image.shape == (8, 64, 64) and s.z_spacing == 0.5
    card = type("Card", (), dict(pixel_size=10.0, max_upsampling=2.0))
    assert working_pixel_size(card, 40.0) == 20.0
    s = data.load_volume_pair(str(tmp_path / "t.mrc"), str(tmp_path / "l.mrc"), config, pixel_size=15.0)
    assert s.image.shape == (8, 48, 48) and s.z_spacing == 10.0 / 15.0
    s = data.load_volume_pair(str(tmp_path / "t.mrc"), str(tmp_path / "l.mrc"), TrainConfig(pixel_size=10))
    assert s.image.shape == (8, 128, 128) and s.z_spacing == 0.25          # unset: always up to 10 Å


def test_fine_tuning_keeps_the_starting_models_largest_upsampling_unless_given():
    from membraneseg.engine.network import modelfile
    start = modelfile.default_model_path(volumes=True)
    inherited = data.resolve_start_model(TrainConfig(start_model=start, pixel_size=None, patch=None))
    assert inherited.max_upsampling == modelfile.read_card(start).max_upsampling > 1
    given = data.resolve_start_model(TrainConfig(start_model=start, pixel_size=None, patch=None, max_upsampling=2.0))
    assert given.max_upsampling == 2.0


def test_2d_pair_with_a_recipe_is_what_prediction_feeds_the_network(tmp_path):
    """A 2D training image under a CLAHE recipe is CLAHE'd, then standardised, as prediction does with a model
    card's recipe; the mask is untouched."""
    rng = np.random.default_rng(2)
    image = (rng.random((64, 64)) * 200).astype(np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:22] = 255
    io.write(str(tmp_path / "i.png"), image, 10.0)
    io.write(str(tmp_path / "m.png"), mask, 10.0)
    recipe = {"normalize": "robust", "clahe": {"block": 16, "clip": 3.0}}
    s = data.load_image_pair(str(tmp_path / "i.png"), str(tmp_path / "m.png"), TrainConfig(),
                              recipe=recipe)
    pre = recipes.apply_to_array(image, recipe, 10.0)
    np.testing.assert_allclose(s.image, preprocess.normalize(pre, preprocess.robust_stats(pre)), atol=1e-6)
    np.testing.assert_array_equal(s.labels[0], mask > 127)
    plain = data.load_image_pair(str(tmp_path / "i.png"), str(tmp_path / "m.png"), TrainConfig())
    assert not np.allclose(plain.image, s.image)


# ----------------------------------------------------------------------------- labels
def test_label_maps_binary_multiclass_and_refusals(tmp_path):
    labels = np.zeros((4, 64, 64), np.uint8)
    labels[:, 10:20] = 1
    labels[:, 30:40] = 3
    labels[:, 50:55] = 4
    tomo = np.random.default_rng(0).normal(size=labels.shape).astype(np.float32)
    io.write(str(tmp_path / "t.mrc"), tomo, 10.0)
    io.write(str(tmp_path / "l.mrc"), labels, 10.0)
    t, l = str(tmp_path / "t.mrc"), str(tmp_path / "l.mrc")
    binary = data.load_volume_pair(t, l, TrainConfig(membrane_labels=[1, 2]))
    np.testing.assert_array_equal(binary.labels, labels == 1)        # filaments and particles are not membrane
    assert data.count_classes([l]) == 5
    multi = data.load_volume_pair(t, l, TrainConfig(classes=5))
    np.testing.assert_array_equal(multi.labels, labels)
    with pytest.raises(io.InputError, match="has label 4 but the model has 3 classes"):
        data.load_volume_pair(t, l, TrainConfig(classes=3))
    io.write(str(tmp_path / "p.mrc"), (labels > 0) * 0.7, 10.0)
    with pytest.raises(io.InputError, match="probability map"):
        data.load_volume_pair(t, str(tmp_path / "p.mrc"), TrainConfig())
    io.write(str(tmp_path / "small.mrc"), labels[:, :32], 10.0)
    with pytest.raises(io.InputError, match="labels have shape"):
        data.load_volume_pair(t, str(tmp_path / "small.mrc"), TrainConfig())


def test_model_card_records_the_training_data_preprocessing(tmp_path):
    tomos = [str(tmp_path / ("t%d.mrc" % i)) for i in range(2)]
    assert data.training_recipe(tomos) == {"normalize": "robust"}          # none written: what training does
    clahe = {"normalize": "robust", "bin": {"factor": 2}, "clahe": {"block": 32, "clip": 3.0}}
    for tomo in tomos:
        json.dump(dict(clahe, applied={"output_pixel_size": 20.0}), open(recipes.recipe_path(tomo), "w"))
    assert data.training_recipe(tomos) == {"normalize": "robust", "clahe": {"block": 32, "clip": 3.0}}
    json.dump({"normalize": "robust"}, open(recipes.recipe_path(tomos[1]), "w"))
    assert data.training_recipe(tomos) == {"normalize": "robust"}          # they disagree: none recorded
    assert data.training_recipe(tomos, recipes.recipe_path(tomos[0]))["clahe"]["block"] == 32
    json.dump({"eed": {"step": 9}}, open(recipes.recipe_path(tomos[1]), "w"))
    with pytest.raises(io.InputError, match="not a valid preprocessing recipe"):
        data.training_recipe(tomos)


def test_an_interrupted_run_with_other_settings_is_refused(tmp_path):
    checkpoint, history = str(tmp_path / "checkpoint"), str(tmp_path / "h.json")
    assert loop._resume_point(checkpoint, history, TrainConfig(preset="tiny")) == 0
    assert json.load(open(os.path.join(checkpoint, "settings.json")))["preset"] == "tiny"
    with pytest.raises(io.InputError, match="preset tiny -> cpu"):
        loop._resume_point(checkpoint, history, TrainConfig(preset="cpu"))


# ----------------------------------------------------------------------------- whole runs
def _engine(*args):
    return [sys.executable, "-m", "membraneseg.engine"] + [str(a) for a in args]


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantoms")
    pairs = []
    for seed in range(3):
        tomo, labels = phantoms.simple_phantom((24, 112, 112), 10.0, seed=seed, snr=2.0)
        pairs.append((str(folder / ("t%d.mrc" % seed)), str(folder / ("t%d_labels.mrc" % seed))))
        io.write(pairs[-1][0], tomo, 10.0)
        io.write(pairs[-1][1], labels, 10.0)
    return pairs


def test_interrupted_training_resumes_and_stores_the_calibrated_threshold(tmp_path, phantom_files):
    out = tmp_path / "model"
    command = _engine("train", "-o", out, "--preset", "tiny", "--patch", 96, "--epochs", 4, "--steps", 3,
                      "--batch-size", 4, "--context", 3, "--volume", *phantom_files[0], "--volume",
                      *phantom_files[1], "--val-volume", *phantom_files[2])
    # run until the first epoch is checkpointed, then kill it as a cluster job limit would
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metadata = out / "checkpoint" / "training_metadata.json"
    deadline = time.time() + 300
    while not metadata.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    proc.kill()
    proc.wait()
    assert metadata.exists(), "no checkpoint was written"
    first = json.load(open(out / "training_history.json"))["epochs"]
    assert not (out / "membraneseg_model.json").exists()

    res = subprocess.run(command, env=ENV, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resuming the interrupted training" in res.stderr
    history = json.load(open(out / "training_history.json"))["epochs"]
    assert [e["epoch"] for e in history] == [1, 2, 3, 4]              # the epochs continue, none twice
    assert history[0] == first[0]                                     # epoch 1 was not run again
    assert all({"loss", "val_loss", "val_dice"} <= set(e) for e in history)
    assert not (out / "checkpoint").exists()
    card = modelfile.read_card(str(out))
    assert card.provenance["resumed_after_epoch"] >= 1 and card.provenance["epochs_run"] == 4

    # the stored threshold is the one that maximises Dice on the validation patches
    config = TrainConfig(**card.provenance["config"])
    val_x, val_y = patches.fixed_patches([data.load_volume_pair(*phantom_files[2], config)], config)
    model, _ = modelfile.load(str(out))
    probs = model.predict(val_x, verbose=0)
    threshold, dice = metrics.calibrate_threshold(patches.foreground(probs), patches.foreground(val_y) > 0.5)
    assert 0 < card.threshold < 1
    assert card.threshold == pytest.approx(threshold, abs=1e-6)
    assert card.provenance["validation_dice"] == pytest.approx(dice, abs=1e-3)
    assert card.provenance["validation"]["dice"] == pytest.approx(dice, abs=1e-3)


def test_a_stop_while_keras_writes_its_checkpoint_still_resumes(tmp_path, phantom_files):
    """Keras writes latest.weights.h5 in place: a stop in the middle leaves it truncated, and the rerun must fall
    back on the previous epoch's copy instead of failing (found by the stop-and-continue protocol test)."""
    out = tmp_path / "model"
    command = _engine("train", "-o", out, "--preset", "tiny", "--patch", 96, "--epochs", 4, "--steps", 3,
                      "--batch-size", 4, "--volume", *phantom_files[0], "--val-volume", *phantom_files[2])
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = out / "checkpoint"
    metadata = checkpoint / "training_metadata.json"

    def epochs_saved():
        try:
            return json.loads(metadata.read_text())["epoch"]
        except (OSError, ValueError):
            return 0
    deadline = time.time() + 300
    while epochs_saved() < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    assert epochs_saved() >= 2 and (checkpoint / "latest.weights.h5.bkp").exists(), "no second checkpoint"
    weights = checkpoint / "latest.weights.h5"
    weights.write_bytes(weights.read_bytes()[:weights.stat().st_size // 2])     # as if stopped mid-write

    res = subprocess.run(command, env=ENV, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    history = json.load(open(out / "training_history.json"))["epochs"]
    assert [e["epoch"] for e in history] == [1, 2, 3, 4]
    assert modelfile.read_card(str(out)).provenance["epochs_run"] == 4


def test_validation_loss_from_one_prediction_is_keras_own(tmp_path):
    """The Validation callback predicts the patches once for both its loss and Dice; the loss must be the one
    Keras' own validation would report (averaged over batches of 32, with a short last batch)."""
    import keras
    from membraneseg.engine.network import model as net
    config = TrainConfig(preset="tiny", patch=96, batch_size=2, loss="bce+dice")
    val_x, val_y = patches.fixed_patches([_sample(group=str(i)) for i in range(5)], config)
    assert len(val_x) % loop.Validation.BATCH                        # the last batch is short
    keras_model = net.build(net.NetworkSpec.from_preset("tiny", 1, 1), patch=96)
    keras_model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses.make_loss("bce+dice", 1))
    expected = keras_model.evaluate(val_x, val_y, batch_size=loop.Validation.BATCH, verbose=0)
    callback = loop.Validation(val_x, val_y, losses.make_loss("bce+dice", 1), str(tmp_path / "history.json"))
    callback.set_model(keras_model)
    logs = {"loss": 0.5}
    callback.on_epoch_end(0, logs)
    assert logs["val_loss"] == pytest.approx(expected, rel=1e-4)
    row = json.load(open(tmp_path / "history.json"))["epochs"][0]
    assert row["epoch"] == 1 and row["loss"] == 0.5 and row["val_loss"] == pytest.approx(expected, rel=1e-4)
    assert 0 <= row["val_dice"] <= 1


def test_multiclass_model_trains_and_segments_labels(tmp_path):
    from membraneseg.engine.simulation import simulate
    tomo, labels = simulate.cell_phantom((16, 96, 96), 10.0, seed=2)
    t, l = str(tmp_path / "cell.mrc"), str(tmp_path / "cell_labels.mrc")
    io.write(t, tomo, 10.0)
    io.write(l, labels, 10.0)
    classes = data.count_classes([l])
    config = TrainConfig(preset="tiny", classes=classes, patch=96, epochs=1, steps_per_epoch=2,
                               batch_size=2, loss="bce+dice")
    sample = data.load_volume_pair(t, l, config)
    x, y = patches.PatchSampler([sample], config, 0).batch(2)
    assert y.shape == (2, 96, 96, classes) and np.all(y.sum(-1) == 1)  # one-hot over the label values
    card = loop.train([sample], [sample], config, str(tmp_path / "model"))
    assert card.network["classes"] == classes and len(card.class_names) == classes
    assert 0 < card.threshold < 1
    mask_path, prob_path = predict.Predictor(str(tmp_path / "model"), batch_size=2).segment_file(
        t, str(tmp_path / "seg"), progress=False)
    assert set(np.unique(io.read(mask_path).data)) <= set(range(classes))
    prob = io.read(prob_path).data
    assert 0 <= float(prob.min()) and float(prob.max()) <= 1


def test_tolerant_loss_forgives_a_shift_within_the_tolerance_but_not_a_miss():
    """The tolerant Dice loss dilates by the same Euclidean disk as the evaluation's tolerance, so a membrane
    drawn 2 px off costs nothing in it (while plain soft Dice counts it as entirely missed), one 3 px off does,
    and so does a membrane missed altogether."""
    from keras import ops
    rng = np.random.default_rng(0)
    mask = (rng.random((1, 32, 32, 1)) > 0.97).astype("float32")
    dilated = np.asarray(losses.dilate_disk(ops.convert_to_tensor(mask), 2))[0, ..., 0] > 0
    counted = metrics.tolerant_counts(np.ones((1, 32, 32), bool), mask[..., 0] > 0, 2, per_slice=True)
    assert np.count_nonzero(dilated) == counted[0]                 # the disk is the metric's tolerance
    line = np.zeros((1, 32, 32, 1), "float32")
    line[0, 10:22, 16] = 1

    def shifted(dx):
        return np.roll(line, dx, axis=2)
    loss, dice = losses.make_loss("bce+dice+tolerant", 1), losses.make_loss("dice", 1)
    tolerant = [float(loss(line, shifted(dx))) - float(losses.make_loss("bce+dice", 1)(line, shifted(dx)))
                for dx in (0, 2, 3)]
    assert tolerant[0] == pytest.approx(0, abs=1e-6) and tolerant[1] == pytest.approx(0, abs=1e-6)
    assert tolerant[2] > 0.9 and float(dice(line, shifted(2))) > 0.9
    assert float(loss(line, np.zeros_like(line))) > float(loss(line, shifted(2)))


# ----------------------------------------------------------------------------- partial annotations
@pytest.mark.parametrize("name", ["bce", "dice", "focal", "bce+dice", "bce+dice+tolerant"])
@pytest.mark.parametrize("classes", [1, 3])
def test_unannotated_voxels_never_reach_the_loss(name, classes):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes + 1 if classes > 1 else 2, (2, 32, 32)).astype(np.uint8)
    labels[:, :, 16:] = data.IGNORE                                  # the right half is not annotated
    y = np.stack([patches._target(lab, classes, weighted=True) for lab in labels])
    p = rng.uniform(0.05, 0.95, (2, 32, 32, classes)).astype(np.float32)
    if classes > 1:
        p /= p.sum(-1, keepdims=True)
    other = p.copy()
    other[:, :, 16:] = other[:, :, 16:][..., ::-1]                 # change the predictions where nothing is known
    loss = losses.make_loss(name, classes)
    assert float(loss(y, p)) == pytest.approx(float(loss(y, other)), rel=1e-5, abs=1e-6)
    # annotated everywhere, the weighted loss is the plain one
    full = np.stack([patches._target(lab, classes) for lab in np.where(labels == data.IGNORE, 0, labels)])
    ones = np.concatenate([full, np.ones(full.shape[:-1] + (1,), np.float32)], -1)
    assert float(loss(ones, p)) == pytest.approx(float(loss(full, p)), rel=1e-4, abs=1e-5)


def test_ignore_label_keeps_membrane_background_and_unknown_apart():
    config = TrainConfig(ignore_labels=[2], membrane_labels=[1, 2])     # MemBrain-seg: 0, 1 membrane, 2 ignore
    labels = np.array([[[0, 1, 2, 1]]], np.uint8)
    s = data._resample(np.zeros((1, 1, 4), np.float32), labels, 10.0, config, "x", True)
    np.testing.assert_array_equal(s.labels, [[[0, 1, data.IGNORE, 1]]])
    np.testing.assert_array_equal(patches._target(s.labels[0], 1, weighted=True)[..., 1], [[1, 1, 0, 1]])


def test_label_bytes_of_255_in_mrc_mode_0_mean_255(tmp_path):
    """Tools that write unsigned bytes as MRC mode 0 (napari's exports, older IMOD) store "not annotated" 255 as the
    byte 0xFF, which mode 0's signed reading gives as -1: such a map trains with --ignore-label 255 instead of
    being refused."""
    import mrcfile
    path = str(tmp_path / "labels.mrc")
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.array([[[0, 1, 255, 1]]], np.uint8).view(np.int8))    # mode 0, bytes 0 1 255 1
    raw = np.asarray(io.read(path).data)
    assert raw.dtype == np.int8 and raw.min() == -1
    labels = data._checked_labels(raw, TrainConfig(ignore_labels=[255]), path)
    np.testing.assert_array_equal(labels, [[[0, 1, 255, 1]]])


def test_partial_annotations_train_and_validate_on_annotated_voxels_only(tmp_path):
    from membraneseg.engine.simulation import phantoms
    tomo, labels = phantoms.simple_phantom((12, 96, 96), 10.0, seed=3)
    partial = np.full(labels.shape, 2, np.uint8)                     # 2: not annotated
    partial[[3, 6, 9]] = labels[[3, 6, 9]]                           # three annotated slices
    io.write(str(tmp_path / "t.mrc"), tomo, 10.0)
    io.write(str(tmp_path / "l.mrc"), partial, 10.0)
    config = TrainConfig(preset="tiny", patch=64, epochs=1, steps_per_epoch=2, batch_size=2, ignore_labels=[2],
                         membrane_labels=[1], max_upsampling=2.0)
    s = data.load_volume_pair(str(tmp_path / "t.mrc"), str(tmp_path / "l.mrc"), config)
    assert (s.labels != data.IGNORE).sum() == 3 * 96 * 96
    sampler = patches.PatchSampler([s], config, 0)
    for _ in range(10):                                              # patches are centred on annotated slices
        z, _, _ = sampler._centre(s, 96)
        assert z in (3, 6, 9)
    x, y = patches.fixed_patches([s], config)
    assert y.shape[-1] == 2 and 0 < y[..., 1].mean() <= 1
    card = loop.train([s], [s], config, str(tmp_path / "model"))
    assert 0 < card.threshold < 1
    assert card.max_upsampling == 2.0          # the training's rule, for segment to give coarse tomograms the same


def test_annotated_slices_leave_the_other_slices_out(tmp_path):
    from membraneseg.engine.simulation import phantoms
    tomo, labels = phantoms.simple_phantom((10, 64, 64), 10.0, seed=4)
    sparse = np.zeros_like(labels)
    sparse[[2, 7]] = labels[[2, 7]]                                   # painted on two slices, the rest blank
    io.write(str(tmp_path / "t.mrc"), tomo, 10.0)
    io.write(str(tmp_path / "l.mrc"), sparse, 10.0)
    assert data.annotated_slices(sparse, "auto") == [2, 7]
    assert data.annotated_slices(sparse, "7, 2 7") == [2, 7]
    with pytest.raises(io.InputError, match="outside its 10 z-slices"):
        data.annotated_slices(sparse, "3 12")
    with pytest.raises(io.InputError, match="'auto' or z indices"):
        data.annotated_slices(sparse, "some")
    with pytest.raises(io.InputError, match="none counts as annotated"):
        data.annotated_slices(np.zeros_like(sparse), "auto")
    config = TrainConfig(preset="tiny", patch=64, annotated_slices="auto", membrane_labels=[1])
    s = data.load_volume_pair(str(tmp_path / "t.mrc"), str(tmp_path / "l.mrc"), config)
    known = s.labels != data.IGNORE
    assert known[[2, 7]].all() and not known[[0, 1, 3, 4, 5, 6, 8, 9]].any()
    assert loop.annotation_counts([s]) == dict(slices=2, voxels=2 * 64 * 64)
    assert patches.is_partial(config) and not patches.is_partial(TrainConfig())


def test_quick_fills_what_was_not_given_and_options_given_win(tmp_path, tiny_model):
    from membraneseg.engine import cli
    from membraneseg.engine.simulation import phantoms
    from membraneseg.engine.training.config import QUICK, resolved
    assert resolved(dict(epochs=None, loss=None), quick=True) == dict(epochs=QUICK["epochs"], loss=QUICK["loss"])
    assert resolved(dict(epochs=None, loss="bce"), quick=False) == dict(epochs=TrainConfig().epochs, loss="bce")
    tomo, labels = phantoms.simple_phantom((8, 96, 96), 10.0, seed=5)
    io.write(str(tmp_path / "t.mrc"), tomo, 10.0)
    io.write(str(tmp_path / "l.mrc"), labels, 10.0)
    out = tmp_path / "quick"
    assert cli.main(["train", "-o", str(out), "--quick", "--start-model", tiny_model, "--epochs", "1", "--steps", "2",
                     "--volume", str(tmp_path / "t.mrc"), str(tmp_path / "l.mrc")]) == 0
    from membraneseg.engine.network import modelfile
    config = modelfile.read_card(str(out)).provenance["config"]
    assert (config["epochs"], config["steps_per_epoch"]) == (1, 2)                    # given: kept
    assert (config["learning_rate"], config["loss"], config["rot90"], config["style"]) == (
        QUICK["learning_rate"], QUICK["loss"], True, QUICK["style"])                   # not given: --quick's
    assert config["start_model"] == tiny_model
