"""Threshold and clean a probability map (or a mask) without running the network again.

In order: threshold (probability >= P is membrane), optional morphological closing of each z-slice with a square
kernel (the authors' notebook closes with 5x5), removal of connected pieces smaller than a size (26-connected in
3D, as for mCov), and optionally one label per remaining piece. Thresholding and closing go slab by slab; the
connected pieces need the whole volume, held as 1 byte (mask) plus 4 bytes (int32 labels) per voxel. CPU only.
"""
import json
import logging
import os

import numpy as np

from ..core import io
from . import metrics
from .evaluate import DEFAULT_THRESHOLD, SLAB, detect_kind

log = logging.getLogger(__name__)

CLEAN_SUFFIX = "_clean"
UNITS = ("voxels", "nm3")


def output_path(input_path, out_dir):
    """``<out_dir>/<stem>_clean.mrc`` (``.tif`` for 2D images); a trailing _prob or _mask of the stem is
    dropped, so phantom1_prob.mrc gives phantom1_clean.mrc."""
    stem = os.path.splitext(os.path.basename(str(input_path)))[0]
    for suffix in ("_prob", "_mask"):
        if stem.endswith(suffix) and len(stem) > len(suffix):
            stem = stem[:-len(suffix)]
            break
    ext = ".tif" if io.suffix_of(input_path) in io.IMAGE_SUFFIXES else ".mrc"
    return os.path.join(out_dir, stem + CLEAN_SUFFIX + ext)


def min_voxels(size, unit, voxel_size, path="input"):
    """The smallest piece to keep, in voxels: ``size`` is in voxels or in nm³ (converted with the voxel size in
    Å; 1 nm³ = 1000 Å³)."""
    if unit not in UNITS:
        raise ValueError("unit must be one of %s" % ", ".join(UNITS))
    if unit == "voxels" or not size:
        return float(size)
    if not voxel_size:
        raise io.InputError(path, "the voxel size is unknown, so %g nm³ cannot be converted to voxels; give the "
                                  "pixel size (--pixel-size) or the minimum size in voxels" % size)
    return size * 1000.0 / voxel_size ** 3


def binarize(data, kind, threshold, out, values=None):
    """Fill the boolean array ``out`` from ``data`` slab by slab: probability >= threshold, or for masks and label
    maps the voxels holding one of ``values`` (default: any non-zero value)."""
    for z0 in range(0, data.shape[0], SLAB):
        block = np.asarray(data[z0:z0 + SLAB])
        if kind == "probability":
            out[z0:z0 + SLAB] = block >= threshold
        else:
            out[z0:z0 + SLAB] = block != 0 if values is None else np.isin(block, values)
    return out


def close_slices(mask, size):
    """Morphological closing (dilation then erosion) of each z-slice with a size x size square, in place. OpenCV's
    default border makes the image edge neither add nor remove membrane."""
    import cv2
    kernel = np.ones((size, size), np.uint8)
    for z in range(mask.shape[0]):
        if mask[z].any():
            mask[z] = cv2.morphologyEx(mask[z].view(np.uint8), cv2.MORPH_CLOSE, kernel) != 0
    return mask


def components(mask, smallest):
    """Label the connected pieces of ``mask`` and a lookup table that maps each to its new number (1..kept) or
    to 0 when it has fewer than ``smallest`` voxels. Returns (labels, lut, kept, removed)."""
    labels, n = metrics.label_instances(mask)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= smallest
    keep[0] = False
    kept = int(keep.sum())
    lut = np.zeros(n + 1, np.uint32)
    lut[keep] = np.arange(1, kept + 1)
    return labels, lut, kept, n - kept


def read_mask(input_path, threshold=None, kind="auto", pixel_size=None, values=None):
    """Read a probability map, mask or label map as a boolean membrane mask (``values``: the label values that are
    membrane, default any non-zero). Returns (volume, kind, threshold used or None, voxel size in Å or 0.0 when
    unknown, mask)."""
    vol = io.read(input_path)
    kind = detect_kind(vol) if kind == "auto" else kind
    if values and kind == "probability":
        raise io.InputError(input_path, "is a probability map, not a label map: membrane label values do not "
                                        "apply to it")
    if kind == "probability":
        threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    elif threshold is not None:
        log.warning("%s is a %s mask, not a probability map: the threshold %g is not used", input_path, kind,
                    threshold)
        threshold = None
    voxel_size = io.resolve_pixel_size(vol.voxel_size, pixel_size, input_path)
    mask = binarize(vol.data, kind, threshold, np.zeros(vol.data.shape, bool), values)
    return vol, kind, threshold, voxel_size, mask


def clean_file(input_path, output, threshold=None, min_size=0.0, unit="voxels", closing=0, instance_labels=False,
               pixel_size=None, kind="auto"):
    """Threshold and clean one file; writes ``output`` (uint8 0/1, or uint16 labels) with the input's voxel size,
    and ``<output stem>.json`` with what was done. Returns that record."""
    vol, kind, threshold, voxel_size, mask = read_mask(input_path, threshold, kind, pixel_size)
    smallest = min_voxels(min_size, unit, voxel_size, input_path)
    if vol.is_2d and unit == "nm3" and min_size:
        raise io.InputError(input_path, "a 2D image has no volume: give the minimum size in voxels (pixels)")

    if closing > 1:
        close_slices(mask, closing)
    if smallest > 1 or instance_labels:
        labels, lut, kept, removed = components(mask, smallest)
        if not instance_labels:
            lut = (lut > 0).astype(np.uint8)
    else:
        labels, lut, kept, removed = None, None, None, 0
    dtype = np.uint16 if instance_labels and kept <= np.iinfo(np.uint16).max else np.uint8
    if instance_labels and kept > np.iinfo(np.uint16).max:
        dtype = np.float32   # exact up to 2**24 labels
    _write(output, mask, labels, lut, dtype, voxel_size, vol.is_2d)
    record = dict(input=str(input_path), output=str(output), input_kind=kind, threshold=threshold,
                  closing_px=int(closing) if closing > 1 else 0, min_size=min_size, min_size_unit=unit,
                  min_size_voxels=smallest, voxel_size=voxel_size, pieces_kept=kept, pieces_removed=removed,
                  output_kind="labels" if instance_labels else "binary")
    with io.atomic_path(record_path(output)) as tmp, open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    log.info("%s -> %s: %s pieces kept, %d removed", input_path, output, "all" if kept is None else kept, removed)
    return record


def record_path(output):
    return os.path.splitext(str(output))[0] + ".json"


def _write(path, mask, labels, lut, dtype, voxel_size, is_2d):
    """Write the mask (or the relabelled pieces) slab by slab into an MRC, or whole into a 2D image."""
    def block(z0, z1):
        return (mask[z0:z1] if lut is None else lut[labels[z0:z1]]).astype(dtype)
    if is_2d or io.suffix_of(path) not in io.MRC_SUFFIXES:
        io.write(path, block(0, mask.shape[0]), voxel_size)
        return
    with io.create_mrc(path, mask.shape, dtype, voxel_size) as out:
        for z0 in range(0, mask.shape[0], SLAB):
            out[z0:z0 + SLAB] = block(z0, z0 + SLAB)
