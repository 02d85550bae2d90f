"""Training: the split by group, loading items at the model's pixel size, labels, the calibrated threshold,
resuming an interrupted run, and multi-class models. Patches are in test_patches.py, partial annotations in
test_partial_labels.py."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import stack_sample
from membraneseg.engine.core import io
from membraneseg.engine.measurement import metrics
from membraneseg.engine.network import modelfile
from membraneseg.engine.simulation import phantoms
from membraneseg.engine.segmentation import predict
from membraneseg.engine.preprocessing import preprocess, recipes
from membraneseg.engine.training import data, loop, losses, patches
from membraneseg.engine.training.config import TrainConfig

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


# ----------------------------------------------------------------------------- split
def test_split_keeps_groups_whole():
    items = [stack_sample(group="g%d" % (i % 20)) for i in range(60)]      # 20 groups of 3
    tr, va, te = data.split_by_source(items, seed=3)
    sides = [{s.group for s in part} for part in (tr, va, te)]
    assert [len(s) for s in sides] == [14, 3, 3]                     # 70/15/15 of the groups
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert sorted(map(id, tr + va + te)) == sorted(map(id, items))   # every item once


def test_split_without_groups_splits_items_and_few_groups_reuse_training():
    items = [stack_sample() for _ in range(10)]
    tr, va, te = data.split_by_source(items)
    assert (len(tr), len(va), len(te)) == (6, 2, 2)
    two = [stack_sample(group="a"), stack_sample(group="a"), stack_sample(group="b")]
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
    with pytest.raises(io.InputError, match="context_step 1 -> 8"):
        loop._resume_point(checkpoint, history, TrainConfig(preset="tiny", context_step=8))


def test_a_run_interrupted_before_context_steps_existed_resumes_as_adjacent_slices(tmp_path):
    checkpoint, history = str(tmp_path / "checkpoint"), str(tmp_path / "h.json")
    loop._resume_point(checkpoint, history, TrainConfig(preset="tiny"))
    path = os.path.join(checkpoint, "settings.json")
    older = {k: v for k, v in json.load(open(path)).items() if k != "context_step"}
    json.dump(older, open(path, "w"))
    assert loop._resume_point(checkpoint, history, TrainConfig(preset="tiny")) == 0
    with pytest.raises(io.InputError, match="context_step 1 -> 3"):
        loop._resume_point(checkpoint, history, TrainConfig(preset="tiny", context_step=3))


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
    val_x, val_y = patches.fixed_patches([stack_sample(group=str(i)) for i in range(5)], config)
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
