"""The training loop: build or load the network, fit it on random patches with Adam, early stopping that
restores the best weights and reduce-LR-on-plateau, calibrate the threshold on the validation patches, score
validation (and test) per group, and save the model folder with its card.

An interrupted run resumes: ``<out>/checkpoint`` holds Keras' BackupAndRestore state, the early-stopping state
with the best weights so far, and the settings the run was started with; the history file keeps every epoch.
"""
import json
import logging
import os
import shutil
import time
from dataclasses import asdict

import keras
import numpy as np

from ..core import io
from ..measurement import metrics
from ..network import modelfile
from .config import TrainConfig
from .data import IGNORE
from .losses import make_loss
from .patches import VAL_PATCHES, PatchSampler, fixed_patches, foreground, split_target

log = logging.getLogger(__name__)

HISTORY_JSON = "training_history.json"
CHECKPOINT_DIR = "checkpoint"
# Settings an interrupted run must be resumed with: the checkpoint holds a network and optimizer built for them.
RESUME_SETTINGS = ("preset", "context", "context_step", "classes", "patch", "pixel_size", "max_upsampling", "loss",
                   "start_model")
# settings added since checkpoints first recorded theirs, with the value those older runs had
LATER_SETTINGS = {"context_step": 1}


def train(train_samples, val_samples, config: TrainConfig, out_dir, provenance=None, test_samples=(),
          preprocessing=None, synthetic_samples=()):
    """Train, calibrate the threshold, save the model to ``out_dir`` and return its card. ``out_dir/checkpoint``
    holds the state to resume an interrupted run (rerun with the same settings); it is removed at the end.
    ``test_samples`` are scored at the calibrated threshold; ``preprocessing`` is the recipe for the card.
    ``synthetic_samples`` (generated pairs) only ever train: ``config.synthetic_fraction`` of the patches."""
    from ..network import model as net

    keras.utils.set_random_seed(config.seed)
    os.makedirs(out_dir, exist_ok=True)
    if config.start_model:
        keras_model, start_card = modelfile.load(config.start_model, patch=config.patch)
        spec = net.NetworkSpec.from_dict(start_card.network)
        log.info("fine-tuning from %s", config.start_model)
        config.preset, config.context, config.classes = spec.preset, spec.context, spec.classes
        config.context_step = spec.context_step
    else:
        spec = net.NetworkSpec.from_preset(config.preset, config.context, config.classes, config.context_step)
        keras_model = net.build(spec, patch=config.patch)
    keras_model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                        loss=make_loss(config.loss, config.classes))
    checkpoint = os.path.join(out_dir, CHECKPOINT_DIR)
    history_path = os.path.join(out_dir, HISTORY_JSON)
    done = _resume_point(checkpoint, history_path, config)
    log.info("training %s (preset %s, context %d, step %d, %d parameters) on %d item(s), validating on %d",
             keras_model.name, spec.preset, spec.context, spec.context_step, net.count_params(keras_model),
             len(train_samples), len(val_samples))

    if synthetic_samples:
        log.info("%d synthetic pair(s) give %.0f%% of the training patches", len(synthetic_samples),
                 100 * config.synthetic_fraction)
    # a resumed run draws new patches
    sampler = PatchSampler(train_samples, config, config.seed + 7919 * done, synthetic_samples)
    val_x, val_y = fixed_patches(val_samples, config)

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return config.steps_per_epoch

        def __getitem__(self, i):
            return sampler.batch(config.batch_size)

    # order matters at the end of an epoch: Validation comes first, as it puts val_loss into the epoch's logs that
    # the next two watch; and the history is written before the checkpoint, so a run killed in between redoes
    # that epoch and rewrites its row, and no epoch goes missing from the history
    callbacks = [
        Validation(val_x, val_y, make_loss(config.loss, config.classes), history_path),
        ResumableEarlyStopping(config.patience, checkpoint),
        keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=max(1, config.patience // 2)),
        # double_checkpoint keeps the previous epoch's weights beside the new ones: a run stopped while Keras was
        # writing latest.weights.h5 (not atomic) resumes from them instead of failing on a truncated file
        keras.callbacks.BackupAndRestore(checkpoint, delete_checkpoint=False, double_checkpoint=True),
    ]
    start = time.time()
    keras_model.fit(Batches(), epochs=config.epochs, callbacks=callbacks, verbose=2)
    seconds = time.time() - start

    probs = keras_model.predict(val_x, batch_size=config.batch_size, verbose=0)
    fg, ref, known = annotated(probs, val_y)
    threshold, val_dice = metrics.calibrate_threshold(fg[known], ref[known])
    log.info("calibrated threshold %.3f (validation Dice %.3f)", threshold, val_dice)
    validation = scores_by_group(probs, val_y, threshold, _group_names(val_samples))
    test = None
    if test_samples:
        test_x, test_y = fixed_patches(test_samples, config)
        test = scores_by_group(keras_model.predict(test_x, batch_size=config.batch_size, verbose=0), test_y,
                               threshold, _group_names(test_samples))
        log.info("test split: Dice %.3f, IoU %.3f at threshold %.3f", test["dice"], test["iou"], threshold)

    with open(history_path) as f:
        history = json.load(f)
    # coarse tomograms were upsampled to the model's pixel size for training (up to config.max_upsampling, if
    # set): prediction may do the same
    upsampled = config.max_upsampling or max([1.0] + [1.0 / s.z_spacing for s in train_samples
                                                      if not s.is_2d and s.z_spacing > 0])
    card = modelfile.ModelCard(
        network=spec.to_dict(), pixel_size=config.pixel_size, patch=config.patch, threshold=threshold,
        max_upsampling=round(upsampled, 3) if upsampled > 1.01 else None,
        class_names=["background", "membrane"] if config.classes == 1 else
        ["background"] + ["class%d" % i for i in range(1, config.classes)],
        preprocessing=preprocessing or {"normalize": "robust"},
        name=config.name or os.path.basename(os.path.abspath(out_dir)),
        provenance=dict(provenance or {}, config=asdict(config), epochs_run=len(history["epochs"]),
                        resumed_after_epoch=done, seconds=round(seconds, 1), validation_dice=round(val_dice, 4),
                        validation=validation, test=test,
                        train_items=[s.source for s in train_samples], val_items=[s.source for s in val_samples],
                        annotated=annotation_counts(train_samples),
                        synthetic_items=len(synthetic_samples),
                        test_items=[s.source for s in test_samples], history=history["epochs"]))
    modelfile.save(keras_model, card, out_dir)
    shutil.rmtree(checkpoint, ignore_errors=True)
    return card


def _resume_point(checkpoint, history_path, config):
    """The epochs an interrupted run in ``checkpoint`` got through, or 0 for a fresh start (after clearing what an
    earlier run left). An interrupted run made with other settings is refused, not silently mixed in."""
    settings = {k: getattr(config, k) for k in RESUME_SETTINGS}
    settings_path = os.path.join(checkpoint, "settings.json")
    if os.path.isfile(settings_path):
        with open(settings_path) as f:
            before = json.load(f)
        before = dict(LATER_SETTINGS, **before)
        changed = ["%s %s -> %s" % (k, before.get(k), v) for k, v in settings.items() if before.get(k) != v]
        if changed:
            raise io.InputError(checkpoint, "holds an interrupted training with other settings (%s); rerun it "
                                            "with the same ones, or delete this folder to start again"
                                % ", ".join(changed))
        metadata = os.path.join(checkpoint, "training_metadata.json")
        done = 0
        if os.path.isfile(metadata):
            with open(metadata) as f:
                done = int(json.load(f).get("epoch", 0))
        log.info("resuming the interrupted training in %s after epoch %d", checkpoint, done)
        return done
    shutil.rmtree(checkpoint, ignore_errors=True)
    if os.path.exists(history_path):
        os.remove(history_path)
    os.makedirs(checkpoint)
    io.write_json(settings_path, settings)
    return 0


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Early stopping on the validation loss that restores the best weights, also across an interruption: its
    state and the best weights are kept in the checkpoint folder and read back when training resumes."""

    def __init__(self, patience, folder):
        super().__init__(monitor="val_loss", patience=patience, restore_best_weights=True)
        self.state_path = os.path.join(folder, "early_stopping.json")
        self.weights_path = os.path.join(folder, "best_weights.npz")

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if os.path.isfile(self.state_path) and os.path.isfile(self.weights_path):
            with open(self.state_path) as f:
                state = json.load(f)
            self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
            with np.load(self.weights_path) as saved:   # plain arrays: allow_pickle stays off
                self.best_weights = [saved["arr_%d" % i] for i in range(len(saved.files))]

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.best_weights is not None and self.best_epoch == epoch:   # improved: keep them on disk too
            with io.atomic_path(self.weights_path) as tmp, open(tmp, "wb") as f:
                np.savez(f, *self.best_weights)
        if self.best is not None:
            io.write_json(self.state_path, dict(best=float(self.best), best_epoch=int(self.best_epoch),
                                              wait=int(self.wait)))


class Validation(keras.callbacks.Callback):
    """After every epoch, one prediction of the validation patches gives both the validation loss (into the
    epoch's logs, for early stopping and the learning-rate schedule) and the Dice at 0.5; the whole history is
    written to JSON (the training viewer reads it). Keras' own validation would predict the patches a second time.
    """

    BATCH = 32      # the loss is averaged over batches of this size, as Keras' validation did: Dice is per batch

    def __init__(self, val_x, val_y, loss, path):
        super().__init__()
        self.val_x, self.val_y, self.loss, self.path = val_x, val_y, loss, path
        self.epochs = []
        if os.path.exists(path):  # resuming: keep the epochs already run
            with open(path) as f:
                self.epochs = json.load(f).get("epochs", [])

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        probs = self.model.predict(self.val_x, batch_size=self.BATCH, verbose=0)
        starts = range(0, len(probs), self.BATCH)
        losses = [float(self.loss(self.val_y[i:i + self.BATCH], probs[i:i + self.BATCH])) for i in starts]
        logs["val_loss"] = float(np.average(losses, weights=[len(probs[i:i + self.BATCH]) for i in starts]))
        fg, ref, known = annotated(probs, self.val_y)
        d = metrics.dice(fg[known] > 0.5, ref[known])
        row = {k: float(v) for k, v in logs.items()}
        row.update(epoch=epoch + 1, val_dice=round(float(d), 4))
        self.epochs = [e for e in self.epochs if e["epoch"] < epoch + 1] + [row]
        log.info("epoch %d: loss %.4f, val_loss %.4f, val_dice %.3f", epoch + 1, row.get("loss", np.nan),
                 row["val_loss"], d)
        io.write_json(self.path, {"epochs": self.epochs})


def annotation_counts(samples):
    """How much of the training data is annotated: z-slices with an annotated voxel, and annotated voxels."""
    slices = voxels = 0
    for s in samples:
        known = s.labels != IGNORE
        slices += int(known.reshape(known.shape[0], -1).any(axis=1).sum())
        voxels += int(known.sum())
    return dict(slices=slices, voxels=voxels)


def annotated(probs, targets):
    """(membrane probability, reference mask, annotated voxels) of network outputs and their targets; every voxel
    is annotated unless the targets carry a weight channel (config.ignore_labels)."""
    classes, weight = split_target(targets, probs.shape[-1])
    fg, ref = foreground(probs), foreground(classes) > 0.5
    return fg, ref, (np.ones(ref.shape, bool) if weight is None else weight)


def scores_by_group(probs, targets, threshold, groups):
    """Pooled accuracy, precision, recall, Dice and IoU at ``threshold`` over the annotated voxels, over all
    patches and per group (``groups`` names the group of each patch)."""
    fg, ref, known = annotated(probs, targets)
    pred = fg >= threshold
    groups = np.asarray(groups)

    def score(where):
        k = known[where]
        counts = metrics.confusion(pred[where][k], ref[where][k])
        return {key: round(float(v), 4) for key, v in metrics.scores(*counts).items()}

    out = score(slice(None))
    out["groups"] = {str(g): score(groups == g) for g in dict.fromkeys(groups)}
    return out


def _group_names(samples, per_sample=VAL_PATCHES):
    return np.repeat([s.group or s.source for s in samples], per_sample)
