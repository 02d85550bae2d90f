"""Training data in memory: tomograms with label maps and 2D image/mask pairs read, normalised and resampled to
the model's pixel size (``Sample``), grouped, and split 70/15/15 into training, validation and test by group.

A tomogram is one group; 2D images are grouped by a CSV file or by their folder, because the shared real slices are
augmented copies of a few fields of view (never split one of them). Also what a run starts from: the starting
model's network, the number of classes, and the preprocessing recipe the model card records.
"""
import csv
import json
import logging
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import ndimage

from ...constants import PAIRS_JSON
from ..core import io
from ..network import modelfile
from ..preprocessing import preprocess, recipes
from .config import TrainConfig

log = logging.getLogger(__name__)

GROUP_COLUMNS = ("image", "file", "filename", "name", "id", "image_png")
IGNORE = 255      # in a Sample's labels: not annotated (from the label values of config.ignore_labels)


@dataclass
class Sample:
    """One training item in memory: a normalised stack (Z, Y, X) at the model's pixel size and its labels."""
    image: np.ndarray
    labels: np.ndarray
    source: str
    is_2d: bool
    group: str = ""           # items of one group stay on one side of a split (empty: the item is its own group)
    z_spacing: float = 1.0    # input slices between the model's z-neighbours: its pixel size over the input's
    hard_rims: Optional[np.ndarray] = None   # (N, 3) z, y, x on the in-plane rims of config.hard_negative_labels


def resolve_start_model(config):
    """Fine-tuning keeps the starting model's network (preset, context, classes), and its pixel size, patch and
    largest upsampling when they are not given (None), so that coarse tomograms train where the starting model
    works on them. Reads the card only, so it runs before any data is loaded at that size."""
    if config.start_model:
        card = modelfile.read_card(config.start_model)
        config.preset, config.context, config.classes = (card.network[k] for k in ("preset", "context", "classes"))
        config.context_step = card.network.get("context_step", 1)
        log.info("fine-tuning %s: preset %s, context %d, %d class(es)", config.start_model, config.preset,
                 config.context, config.classes)
        config.pixel_size = config.pixel_size or card.pixel_size
        config.patch = config.patch or card.patch
        config.max_upsampling = config.max_upsampling or card.max_upsampling
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


def load_volume_pair(image_path, label_path, config, pixel_size=None, group=""):
    img, lab = io.read_pair(image_path, label_path)
    px = io.resolve_pixel_size(img.voxel_size, pixel_size, image_path) or config.pixel_size
    labels = _checked_labels(np.asarray(lab.data), config, label_path)
    unannotated = None
    if config.annotated_slices:
        annotated = annotated_slices(labels, config.annotated_slices, config.ignore_labels, label_path)
        unannotated = np.ones(labels.shape[0], bool)
        unannotated[annotated] = False
        log.info("%s: slices %s annotated", label_path, " ".join(map(str, annotated)))
    image = preprocess.normalize(img.data, preprocess.robust_stats(img.data))
    return _resample(image, labels, px, config, image_path, img.is_2d, group, unannotated)


def annotated_slices(labels, spec, ignore_labels=(), path="<labels>"):
    """The z indices a label map is annotated on: ``spec`` "auto" (slices with a label other than background and
    the ignore values) or indices "40 80 120" (checked against the depth)."""
    if spec == "auto":
        known = labels > 0
        if ignore_labels:
            known &= ~np.isin(labels, ignore_labels)
        found = np.nonzero(known.reshape(labels.shape[0], -1).any(axis=1))[0].tolist()
        if not found:
            raise io.InputError(path, "no slice has a label other than background, so none counts as annotated")
        return found
    try:
        found = sorted({int(v) for v in str(spec).replace(",", " ").split()})
    except ValueError:
        raise io.InputError(path, "annotated slices must be 'auto' or z indices such as '40 80 120', not %r" % spec)
    bad = [z for z in found if not 0 <= z < labels.shape[0]]
    if bad or not found:
        raise io.InputError(path, "annotated slice(s) %s outside its %d z-slices (0 to %d)"
                            % (" ".join(map(str, bad)) or "none", labels.shape[0], labels.shape[0] - 1))
    return found


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
    if labels.dtype == np.int8 and low < 0:
        # MRC mode 0 is signed bytes in MRC2014 but unsigned in older files and for many tools that write uint8
        # label maps (napari, IMOD's imodmop): 255 ("not annotated") comes back as -1, so read the bytes unsigned
        log.info("%s: signed 8-bit labels with negative values, read as unsigned (0..255)", path)
        labels = labels.view(np.uint8)
        low, high = float(labels.min()), float(labels.max())
    if low < 0 or high > 255:
        raise io.InputError(path, "labels must be in 0..255, found %g..%g" % (low, high))
    if config.ignore_labels:
        known = labels[~np.isin(labels, config.ignore_labels)]
        high = float(known.max()) if known.size else 0.0
    if config.classes > 1 and high >= config.classes:
        raise io.InputError(path, "has label %d but the model has %d classes (labels 0 to %d); train with more "
                                  "classes (0 counts them from the label maps)" % (high, config.classes,
                                                                                  config.classes - 1))
    return labels.astype(np.uint8)


def _resample(image, labels, px, config, source, is_2d, group="", unannotated=None):
    """``unannotated``: z-slices (boolean per slice) that are not annotated at all."""
    unknown = np.isin(labels, config.ignore_labels) if config.ignore_labels else None
    # the labelled negatives, before a binary model's labels collapse to membrane / background
    hard = np.isin(labels, config.hard_negative_labels) if config.hard_negative_labels else None
    if unannotated is not None:
        unknown = unannotated[:, None, None] if unknown is None else unknown | unannotated[:, None, None]
        unknown = np.broadcast_to(unknown, labels.shape)
    if config.classes == 1:
        known_max = labels.max() if unknown is None else (labels[~unknown].max() if (~unknown).any() else 0)
        membrane = [v for v in config.membrane_labels + ([1] if known_max <= 1 else [])
                    if v not in config.ignore_labels]
        labels = np.isin(labels, membrane).astype(np.uint8)
        if not labels.any():
            log.warning("%s: no pixel has a membrane label (%s); it teaches background only", source,
                        " ".join(map(str, membrane)))
    if unknown is not None:
        labels = np.where(unknown, IGNORE, labels).astype(np.uint8)
        log.info("%s: %d of %d voxels annotated", source, int((~unknown).sum()), unknown.size)
    work = preprocess.working_pixel_size(config.pixel_size, px, None if is_2d else config.max_upsampling)
    shape = preprocess.scaled_shape(image.shape[1:], px, work)
    if shape != tuple(image.shape[1:]):
        image = np.stack([preprocess.resize_slice(s, shape) for s in image])
        labels = np.stack([preprocess.resize_nearest(s.astype(np.uint8), shape) for s in labels])
        if hard is not None:
            hard = np.stack([preprocess.resize_nearest(s.astype(np.uint8), shape) for s in hard]) > 0
    return Sample(image.astype(np.float32), labels.astype(np.uint8), str(source), is_2d, group,
                  1.0 if is_2d else work / px, None if hard is None else rim_points(hard))


MAX_RIM_POINTS = 20000


def rim_points(mask):
    """(N, 3) voxels on the in-plane rim of ``mask`` (Z, Y, X): inside it, with a 4-neighbour in the same slice
    outside it. Evenly thinned to at most MAX_RIM_POINTS, as the sampler only draws centres from them."""
    rim = mask & ~ndimage.binary_erosion(mask, structure=np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], bool),
                                         border_value=1)
    points = np.argwhere(rim).astype(np.int32)
    return points[::int(np.ceil(len(points) / MAX_RIM_POINTS))] if len(points) > MAX_RIM_POINTS else points


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


def pairs_pixel_size(images_dir):
    """The pixel size ``gan generate`` recorded in pairs.json beside an images folder, or None."""
    path = os.path.join(os.path.dirname(os.path.abspath(images_dir)), PAIRS_JSON)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f).get("pixel_size")


def load_items(volumes, image_pairs, config, volume_pixel_size=None, image_pixel_size=None, groups=None):
    """Samples of tomograms with label maps (``volumes``: (tomogram, labels) paths) and of 2D images with masks
    (``image_pairs``: (image, mask, folder) as ``core.inputs.image_pairs`` gives them), at the model's pixel size.
    A 2D image's group comes from ``groups`` (``read_groups``), else its folder."""
    items = [load_volume_pair(t, l, config, volume_pixel_size) for t, l in volumes]
    items += [load_image_pair(i, m, config, image_pixel_size, image_group(i, groups, folder))
              for i, m, folder in image_pairs]
    return items
