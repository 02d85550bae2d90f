"""Training the hybrid network on tomograms with label maps and on 2D image/mask pairs.

Patches are cut at random from the training data and augmented as in section 3.1 of the paper (rotation 0-20°,
shifts up to 20%, zoom 0.8-1.2, horizontal flips, nearest fill). Two options go further, for models that must
work on fields of view unlike their training data: turns by multiples of 90°, and intensity augmentation
(contrast, brightness, blur, noise), because cryo-ET slices differ from lab to lab in exactly those. For 2.5D models every patch carries its k
z-neighbours; 2D images have none, so their context is the slice repeated, and volume patches lose their context
the same way with probability ``context_dropout``, so that one model works on both. Adam, early stopping that
restores the best weights, and reduce-LR-on-plateau; the threshold is calibrated on the validation data, and the
validation (and test) figures are kept per group in the model card.

Data are split 70/15/15 by group: a tomogram is one group, and 2D images are grouped by a CSV file or by their
folder, because the shared real slices are augmented copies of a few fields of view (never split one of them).

An interrupted run resumes: ``<out>/checkpoint`` holds Keras' BackupAndRestore state, the early-stopping state
with the best weights so far, and the settings the run was started with; the history file keeps every epoch.
"""
import csv
import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass

import keras
import numpy as np

from . import io, metrics, modelfile, preprocess, recipes, tiling
from .trainconfig import LOSS_TOLERANCE_PX, TrainConfig

log = logging.getLogger(__name__)

HISTORY_JSON = "training_history.json"
CHECKPOINT_DIR = "checkpoint"
VAL_PATCHES = 8                 # fixed validation patches per item
# Settings an interrupted run must be resumed with: the checkpoint holds a network and optimizer built for them.
RESUME_SETTINGS = ("preset", "context", "classes", "patch", "pixel_size", "loss", "start_model")
GROUP_COLUMNS = ("image", "file", "filename", "name", "id", "image_png")


@dataclass
class Sample:
    """One training item in memory: a normalised stack (Z, Y, X) at the model's pixel size and its labels."""
    image: np.ndarray
    labels: np.ndarray
    source: str
    is_2d: bool
    group: str = ""           # items of one group stay on one side of a split (empty: the item is its own group)
    z_spacing: float = 1.0    # input slices between the model's z-neighbours: its pixel size over the input's


# ----------------------------------------------------------------------------- configuration
def resolve_start_model(config):
    """Fine-tuning keeps the starting model's network (preset, context, classes), and its pixel size and patch
    when they are not given (None). Reads the card only, so it runs before any data is loaded at that size."""
    if config.start_model:
        card = modelfile.read_card(config.start_model)
        config.preset, config.context, config.classes = (card.network[k] for k in ("preset", "context", "classes"))
        log.info("fine-tuning %s: preset %s, context %d, %d class(es)", config.start_model, config.preset,
                 config.context, config.classes)
        config.pixel_size = config.pixel_size or card.pixel_size
        config.patch = config.patch or card.patch
    config.pixel_size = config.pixel_size or TrainConfig.pixel_size
    config.patch = config.patch or TrainConfig.patch
    return config


def count_classes(label_paths):
    """Classes a multi-class model needs for these label maps: the largest label + 1 (at least 2)."""
    top = 1
    for path in label_paths:
        top = max(top, int(np.max(io.read(path).data)))
    return top + 1


def read_groups(path):
    """{image name without folder and extension: group} from a CSV file whose header names a ``group`` column
    and an image column (image, file, filename, name, id or image_png), like the shared data's manifest.csv."""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = [c for c in GROUP_COLUMNS if c in (reader.fieldnames or [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise io.InputError(path, "not a readable CSV file (%s)" % exc)
    if "group" not in (reader.fieldnames or []) or not columns:
        raise io.InputError(path, "the header needs a 'group' column and an image column (one of %s)"
                            % ", ".join(GROUP_COLUMNS))
    return {_stem(row[columns[0]]): row["group"] for row in rows if row[columns[0]] and row["group"]}


def image_group(path, groups, default):
    """The group of a 2D image: from ``groups`` (read_groups) when given, else ``default`` (its folder)."""
    if groups is None:
        return default
    try:
        return groups[_stem(path)]
    except KeyError:
        raise io.InputError(path, "has no group in the groups file; every image needs one, so that copies of "
                                  "one field of view never sit on both sides of the split")


def _stem(path):
    return os.path.splitext(os.path.basename(str(path).strip()))[0]


def training_recipe(volume_paths, recipe_file=None):
    """The preprocessing the training data had, for the model card: the recipe in ``recipe_file`` if given, else
    the one ``preprocess`` wrote beside the tomograms when they all agree, else robust normalisation alone (which
    training always applies). Binning is left out: prediction resamples to the model's pixel size itself."""
    if recipe_file:
        return _comparable_recipe(recipe_file)
    found = {json.dumps(_comparable_recipe(recipes.recipe_path(p)), sort_keys=True)
             if os.path.isfile(recipes.recipe_path(p)) else None for p in volume_paths}
    if len(found) == 1 and None not in found:
        return json.loads(found.pop())
    if len(found) > 1:
        log.warning("the training tomograms were not all preprocessed alike; the model card records no recipe")
    return {"normalize": "robust"}


def _comparable_recipe(path):
    recipe = recipes.read_recipe(path)
    try:
        return recipes.comparable(recipe)
    except ValueError as exc:
        raise io.InputError(path, "not a valid preprocessing recipe: %s" % exc)


# ----------------------------------------------------------------------------- data
def load_volume_pair(image_path, label_path, config, pixel_size=None, group=""):
    img, lab = io.read_pair(image_path, label_path)
    px = io.resolve_pixel_size(img.voxel_size, pixel_size, image_path) or config.pixel_size
    labels = _checked_labels(np.asarray(lab.data), config, label_path)
    image = preprocess.normalize(img.data, preprocess.robust_stats(img.data))
    return _resample(image, labels, px, config, image_path, img.is_2d, group)


def load_image_pair(image_path, mask_path, config, pixel_size=None, group="", recipe=None):
    """A 2D image and its mask; masks may be 0/1, 0/255 or soft 0..255 (foreground above half the maximum).
    ``recipe`` (EED, CLAHE) is applied to the image first, as prediction applies a model card's recipe."""
    img, msk = io.read_pair(image_path, mask_path, "mask")
    image = network_input(img.data, recipe, pixel_size or config.pixel_size, image_path)
    labels = io.mask_foreground(msk.data)
    px = pixel_size or config.pixel_size
    return _resample(image, labels, px, config, image_path, True, group)


def network_input(data, recipe=None, pixel_size=0.0, source="<array>"):
    """An in-memory image or stack as training feeds it to the network: the ``recipe``'s filters (EED, CLAHE), if
    any, then robust normalisation, as prediction does with a model card's recipe."""
    if recipes.filters(recipe):
        data = recipes.apply_to_array(data, recipe, pixel_size, source)
    return preprocess.normalize(data, preprocess.robust_stats(data))


def _checked_labels(labels, config, path):
    """The label map as uint8, or the reason it cannot train this model."""
    if labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
        raise io.InputError(path, "labels must be whole numbers (0 background, 1, 2, ...); this looks like a "
                                  "probability map: threshold it first")
    low, high = float(labels.min()), float(labels.max())
    if low < 0 or high > 255:
        raise io.InputError(path, "labels must be in 0..255, found %g..%g" % (low, high))
    if config.classes > 1 and high >= config.classes:
        raise io.InputError(path, "has label %d but the model has %d classes (labels 0 to %d); train with more "
                                  "classes (0 counts them from the label maps)" % (high, config.classes,
                                                                                  config.classes - 1))
    return labels.astype(np.uint8)


def _resample(image, labels, px, config, source, is_2d, group=""):
    if config.classes == 1:
        labels = np.isin(labels, config.membrane_labels + ([1] if labels.max() <= 1 else [])).astype(np.uint8)
        if not labels.any():
            log.warning("%s: no pixel has a membrane label (%s); it teaches background only", source,
                        " ".join(map(str, config.membrane_labels)))
    shape = preprocess.scaled_shape(image.shape[1:], px, config.pixel_size)
    if shape != tuple(image.shape[1:]):
        image = np.stack([preprocess.resize_slice(s, shape) for s in image])
        labels = np.stack([preprocess.resize_nearest(s.astype(np.uint8), shape) for s in labels])
    return Sample(image.astype(np.float32), labels.astype(np.uint8), str(source), is_2d, group,
                  1.0 if is_2d else config.pixel_size / px)


def split_by_source(items, fractions=(0.70, 0.15, 0.15), seed=0):
    """Split whole items (tomograms, or groups of images) into train/validation/test, never one item on two
    sides. Items with the same non-empty ``group`` attribute count as one item. With fewer than three, validation
    reuses the training items (said in the log)."""
    rng = np.random.default_rng(seed)
    items = list(items)
    keys = [getattr(item, "group", "") or ("item", i) for i, item in enumerate(items)]
    groups = list(dict.fromkeys(keys))
    order = [groups[i] for i in rng.permutation(len(groups))]

    def members(chosen):
        chosen = set(chosen)
        return [item for key in order if key in chosen for item, k in zip(items, keys) if k == key]

    n = len(groups)
    if n < 3:
        log.warning("only %d training group(s): validation uses the training data, so its figures are "
                    "optimistic", n)
        return members(order), members(order), []
    n_val = max(1, int(round(fractions[1] * n)))
    n_test = int(round(fractions[2] * n)) if n >= 4 else 0
    n_train = n - n_val - n_test
    return (members(order[:n_train]), members(order[n_train:n_train + n_val]),
            members(order[n_train + n_val:]))


# ----------------------------------------------------------------------------- patches
class PatchSampler:
    """Random augmented patches from a list of Samples; with ``synthetic`` Samples (GAN pairs), a fraction
    ``config.synthetic_fraction`` of the patches is cut from those instead, whatever their number."""

    def __init__(self, samples, config: TrainConfig, seed, synthetic=()):
        self.pools = [(list(group), _size_weights(group)) for group in (samples, synthetic) if len(group)]
        self.c = config
        self.rng = np.random.default_rng(seed)

    def batch(self, n):
        xs, ys = zip(*(self.one() for _ in range(n)))
        return np.stack(xs), np.stack(ys)

    def one(self):
        c, rng = self.c, self.rng
        # without synthetic pairs, no draw: the patch stream stays what it was before they existed
        mixed = len(self.pools) > 1 and rng.random() < c.synthetic_fraction
        pool, weights = self.pools[-1 if mixed else 0]
        s = pool[rng.choice(len(pool), p=weights)]
        depth = s.image.shape[0]
        # cut a region larger than the patch, so rotation and zoom do not pull in much fill
        size = int(np.ceil(c.patch * 1.5))
        z, r0, c0 = self._centre(s, size)
        zs = tiling.context_indices(z, depth, c.context, s.z_spacing)
        if s.is_2d or rng.random() < c.context_dropout:
            zs = [z] * c.context
        reflect = c.border == "reflect"
        stack = [tiling.crop(s.image[i], r0, c0, size, reflect=reflect) for i in zs]
        label = tiling.crop(s.labels[z], r0, c0, size, reflect=reflect)
        if c.augment:
            stack, label = _augment(stack, label, rng, c.patch, c.rot90, reflect)
            if c.style > 0:
                stack = _restyle(stack, rng, c.style)
            if c.intensity > 0:
                stack = _jitter_intensity(stack, rng, c.intensity)
        else:
            off = (size - c.patch) // 2
            stack = [a[off:off + c.patch, off:off + c.patch] for a in stack]
            label = label[off:off + c.patch, off:off + c.patch]
        x = np.stack(stack)[..., None] if c.context > 1 else stack[0][..., None]
        return x.astype(np.float32), _target(label, c.classes)

    def _centre(self, s, size):
        depth, rows, cols = s.image.shape
        if self.rng.random() < self.c.foreground_bias and s.labels.any():
            zz, yy, xx = np.nonzero(s.labels[:, ::4, ::4])
            i = self.rng.integers(len(zz))
            z, y, x = zz[i], yy[i] * 4, xx[i] * 4
        else:
            z, y, x = self.rng.integers(depth), self.rng.integers(rows), self.rng.integers(cols)
        return int(z), int(y) - size // 2, int(x) - size // 2


def _size_weights(samples):
    """Draw items in proportion to their size, so that every pixel is equally likely."""
    w = np.array([s.image.size for s in samples], float)
    return w / w.sum()


def _augment(stack, label, rng, patch, rot90=False, reflect=False):
    """Rotation 0-20° (either sense), shift up to 20%, zoom 0.8-1.2, horizontal flip; nearest fill, or mirrored
    with ``reflect``. With ``rot90``, a turn by a random multiple of 90° on top."""
    import cv2
    border = cv2.BORDER_REFLECT_101 if reflect else cv2.BORDER_REPLICATE
    size = label.shape[0]
    angle = rng.uniform(-20, 20) + (90.0 * rng.integers(4) if rot90 else 0.0)
    zoom = rng.uniform(0.8, 1.2)
    shift = rng.uniform(-0.2, 0.2, size=2) * patch
    centre = (size / 2.0, size / 2.0)
    m = cv2.getRotationMatrix2D(centre, angle, zoom)
    # move the region's centre to the patch centre, plus the random shift
    m[:, 2] += np.array([patch / 2.0 - centre[0], patch / 2.0 - centre[1]]) + shift
    flip = rng.random() < 0.5
    out = []
    for a in stack:
        w = cv2.warpAffine(a, m, (patch, patch), flags=cv2.INTER_LINEAR, borderMode=border)
        out.append(w[:, ::-1] if flip else w)
    lab = cv2.warpAffine(label, m, (patch, patch), flags=cv2.INTER_NEAREST, borderMode=border)
    return out, (lab[:, ::-1] if flip else lab)


def _jitter_intensity(stack, rng, strength):
    """The same random contrast, brightness, blur and noise for every slice of a patch (the input is normalised
    to mean 0, s.d. 1, so the amounts are in units of its standard deviation)."""
    import cv2
    contrast = np.exp(rng.normal(0.0, 0.3 * strength))
    offset = rng.normal(0.0, 0.2 * strength)
    sigma = rng.uniform(0.0, 1.5 * strength) if rng.random() < 0.5 else 0.0
    noise = rng.uniform(0.0, 0.5 * strength) if rng.random() < 0.5 else 0.0
    out = []
    for a in stack:
        a = a * contrast + offset
        if sigma > 0.2:
            a = cv2.GaussianBlur(a, (0, 0), sigma)
        if noise > 0:
            a = a + rng.normal(0.0, noise, a.shape).astype(np.float32)
        out.append(a.astype(np.float32))
    return out


def _restyle(stack, rng, strength):
    """The same random change of look for every slice of a patch, for fields of view unlike the training ones:
    an uneven background (a smooth random field, as uneven ice thickness or illumination gives), a tone curve
    (gamma), and either sharpening (the strongly filtered look of some reconstructions) or smoothing. The patch
    is then standardised again, as the input of segmentation is."""
    import cv2
    size = stack[0].shape
    field = cv2.resize(rng.normal(0.0, 0.6 * strength, (3, 3)).astype(np.float32), size[::-1],
                       interpolation=cv2.INTER_CUBIC)
    gamma = float(np.exp(rng.normal(0.0, 0.35 * strength)))
    amount = rng.uniform(-0.5, 1.5) * strength       # < 0 smooths, > 0 sharpens
    sigma = rng.uniform(1.0, 3.0)
    out = []
    for a in stack:
        lo, hi = np.percentile(a, (0.5, 99.5))
        u = np.clip((a - lo) / max(hi - lo, 1e-6), 0.0, 1.0) ** gamma
        u = u + amount * (u - cv2.GaussianBlur(u, (0, 0), sigma)) + field
        out.append(((u - u.mean()) / max(float(u.std()), 1e-6)).astype(np.float32))
    return out


def _target(label, classes):
    if classes == 1:
        return (label > 0).astype(np.float32)[..., None]
    return np.eye(classes, dtype=np.float32)[np.minimum(label, classes - 1)]


def foreground(a):
    """The membrane probability of network outputs (or targets) (..., C): the one channel of a binary model,
    1 - P(background) of a multi-class one, as ``segment`` writes it."""
    return a[..., 0] if a.shape[-1] == 1 else 1.0 - a[..., 0]


def fixed_patches(samples, config, per_sample=VAL_PATCHES, seed=1234):
    """A deterministic validation set: un-augmented patches with full context, ``per_sample`` from each item."""
    c = TrainConfig(**dict(asdict(config), augment=False, context_dropout=0.0, foreground_bias=0.5))
    xs, ys = [], []
    for i, s in enumerate(samples):
        sampler = PatchSampler([s], c, seed + i)
        x, y = sampler.batch(per_sample)
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def scores_by_group(probs, targets, threshold, groups):
    """Pooled accuracy, precision, recall, Dice and IoU at ``threshold``, over all patches and per group
    (``groups`` names the group of each patch)."""
    pred = foreground(probs) >= threshold
    ref = foreground(targets) > 0.5
    groups = np.asarray(groups)

    def score(where):
        return {k: round(float(v), 4) for k, v in metrics.scores(*metrics.confusion(pred[where], ref[where])).items()}

    out = score(slice(None))
    out["groups"] = {str(g): score(groups == g) for g in dict.fromkeys(groups)}
    return out


def _group_names(samples, per_sample=VAL_PATCHES):
    return np.repeat([s.group or s.source for s in samples], per_sample)


# ----------------------------------------------------------------------------- losses
def dilate_disk(p, radius):
    """Grey dilation of (N, H, W, C) in-plane by a Euclidean disk of ``radius`` pixels: the union of the
    (2a+1) x (2b+1) boxes with a² + b² <= radius², as the evaluation's tolerance counts distance."""
    from keras import ops
    out = None
    for a in range(radius + 1):
        b = int(math.isqrt(radius * radius - a * a))
        box = ops.max_pool(p, (2 * a + 1, 2 * b + 1), strides=1, padding="same")
        out = box if out is None else ops.maximum(out, box)
    return out


def make_loss(name, classes):
    from keras import ops

    def soft_dice(y, p):
        inter = ops.sum(y * p)
        return 1.0 - (2.0 * inter + 1.0) / (ops.sum(y) + ops.sum(p) + 1.0)

    def soft_tolerant_dice(y, p):
        # precision: predicted mass near a labelled pixel; recall: labelled pixels near predicted mass. A thin
        # membrane predicted one pixel off scores 0 in soft_dice but fully here, so the gradient pushes to find
        # missed membranes rather than only to nudge found ones onto the annotator's line.
        precision = (ops.sum(p * dilate_disk(y, LOSS_TOLERANCE_PX)) + 1.0) / (ops.sum(p) + 1.0)
        recall = (ops.sum(y * dilate_disk(p, LOSS_TOLERANCE_PX)) + 1.0) / (ops.sum(y) + 1.0)
        return 1.0 - 2.0 * precision * recall / (precision + recall)

    if classes > 1:
        ce, focal = keras.losses.CategoricalCrossentropy(), keras.losses.CategoricalFocalCrossentropy(gamma=2.0)

        def fg(f):   # over the foreground classes: background would dominate it
            return lambda y, p: f(y[..., 1:], p[..., 1:])
        dice, tolerant, names = fg(soft_dice), fg(soft_tolerant_dice), {"cce": ce}
    else:
        ce, focal = keras.losses.BinaryCrossentropy(), keras.losses.BinaryFocalCrossentropy(gamma=2.0)
        dice, tolerant, names = soft_dice, soft_tolerant_dice, {}
    names.update({"bce": ce, "dice": dice, "focal": focal,
                  "bce+dice": lambda y, p: ce(y, p) + dice(y, p),
                  "bce+dice+tolerant": lambda y, p: ce(y, p) + dice(y, p) + tolerant(y, p)})
    return names[name]


# ----------------------------------------------------------------------------- the loop
def train(train_samples, val_samples, config: TrainConfig, out_dir, provenance=None, test_samples=(),
          preprocessing=None, synthetic_samples=()):
    """Train, calibrate the threshold, save the model to ``out_dir`` and return its card. ``out_dir/checkpoint``
    holds the state to resume an interrupted run (rerun with the same settings); it is removed at the end.
    ``test_samples`` are scored at the calibrated threshold; ``preprocessing`` is the recipe for the card.
    ``synthetic_samples`` (generated pairs) only ever train: ``config.synthetic_fraction`` of the patches."""
    from . import model as net

    keras.utils.set_random_seed(config.seed)
    os.makedirs(out_dir, exist_ok=True)
    if config.start_model:
        keras_model, start_card = modelfile.load(config.start_model, patch=config.patch)
        spec = net.NetworkSpec.from_dict(start_card.network)
        log.info("fine-tuning from %s", config.start_model)
        config.preset, config.context, config.classes = spec.preset, spec.context, spec.classes
    else:
        spec = net.NetworkSpec.from_preset(config.preset, config.context, config.classes)
        keras_model = net.build(spec, patch=config.patch)
    keras_model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                        loss=make_loss(config.loss, config.classes))
    checkpoint = os.path.join(out_dir, CHECKPOINT_DIR)
    history_path = os.path.join(out_dir, HISTORY_JSON)
    done = _resume_point(checkpoint, history_path, config)
    log.info("training %s (preset %s, context %d, %d parameters) on %d item(s), validating on %d",
             keras_model.name, spec.preset, spec.context, net.count_params(keras_model), len(train_samples),
             len(val_samples))

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
    threshold, val_dice = metrics.calibrate_threshold(foreground(probs), foreground(val_y) > 0.5)
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
    card = modelfile.ModelCard(
        network=spec.to_dict(), pixel_size=config.pixel_size, patch=config.patch, threshold=threshold,
        class_names=["background", "membrane"] if config.classes == 1 else
        ["background"] + ["class%d" % i for i in range(1, config.classes)],
        preprocessing=preprocessing or {"normalize": "robust"},
        name=config.name or os.path.basename(os.path.abspath(out_dir)),
        provenance=dict(provenance or {}, config=asdict(config), epochs_run=len(history["epochs"]),
                        resumed_after_epoch=done, seconds=round(seconds, 1), validation_dice=round(val_dice, 4),
                        validation=validation, test=test,
                        train_items=[s.source for s in train_samples], val_items=[s.source for s in val_samples],
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
        d = metrics.dice(foreground(probs) > 0.5, foreground(self.val_y) > 0.5)
        row = {k: float(v) for k, v in logs.items()}
        row.update(epoch=epoch + 1, val_dice=round(float(d), 4))
        self.epochs = [e for e in self.epochs if e["epoch"] < epoch + 1] + [row]
        log.info("epoch %d: loss %.4f, val_loss %.4f, val_dice %.3f", epoch + 1, row.get("loss", np.nan),
                 row["val_loss"], d)
        io.write_json(self.path, {"epochs": self.epochs})
