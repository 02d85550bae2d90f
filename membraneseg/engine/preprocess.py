"""Normalisation and resampling of tomogram slices: the basics that training, prediction and the preprocessing
recipes (see ``recipes``) share.

Normalisation is robust: statistics come from the voxels between the 0.5th and 99.5th percentiles of a subsample,
so gold beads and carbon edges do not set the scale. The same statistics are used for every slab of a volume, so
slab-by-slab processing gives the same result as processing the whole volume at once.
"""
from typing import NamedTuple

import numpy as np

SAMPLE_VOXELS = 2_000_000
CLIP_PERCENTILES = (0.5, 99.5)


class Stats(NamedTuple):
    mean: float
    std: float
    low: float   # values are clipped to [low, high] before normalising
    high: float


def sample(volume, n=SAMPLE_VOXELS, max_slices=64):
    """A deterministic, evenly spread subsample of a (possibly memory-mapped) volume (Z, Y, X), read slice by
    slice from at most ``max_slices`` slices, with non-finite values left out."""
    z, y, x = volume.shape
    zs = np.unique(np.linspace(0, z - 1, min(z, max_slices)).astype(int))
    step = max(1, int(np.sqrt(y * x * len(zs) / n)))
    values = np.concatenate([np.asarray(volume[i, ::step, ::step], dtype=np.float64).ravel() for i in zs])
    return values[np.isfinite(values)]


def robust_stats(volume) -> Stats:
    values = sample(volume)
    if values.size == 0:
        return Stats(0.0, 1.0, -np.inf, np.inf)
    low, high = np.percentile(values, CLIP_PERCENTILES)
    inside = values[(values >= low) & (values <= high)]
    if inside.size == 0:
        inside = values
    std = float(inside.std())
    return Stats(float(inside.mean()), std if std > 0 else 1.0, float(low), float(high))


def normalize(block, stats: Stats, out=None):
    """Clip to the robust range and scale to zero mean, unit standard deviation (float32)."""
    block = np.asarray(block, dtype=np.float32)
    out = np.clip(block, stats.low, stats.high, out=out)
    out -= stats.mean
    out /= stats.std
    return out


def resize_slice(image, shape):
    """Resample a 2D slice to ``shape`` (rows, cols): area averaging when shrinking (no aliasing), bilinear when
    enlarging."""
    import cv2
    rows, cols = int(shape[0]), int(shape[1])
    if image.shape == (rows, cols):
        return np.asarray(image, dtype=np.float32)
    shrink = rows < image.shape[0] or cols < image.shape[1]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(np.asarray(image, dtype=np.float32), (cols, rows), interpolation=interp)


def scaled_shape(shape, from_pixel, to_pixel):
    """The 2D shape of a slice of ``shape`` at ``from_pixel`` Å once resampled to ``to_pixel`` Å."""
    if not from_pixel or not to_pixel:
        return tuple(shape)
    f = from_pixel / to_pixel
    return tuple(max(1, int(round(s * f))) for s in shape)


def resize_nearest(labels, shape):
    """Resample a label image to ``shape`` without inventing labels."""
    import cv2
    if labels.shape == tuple(shape):
        return labels
    return cv2.resize(labels, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_NEAREST)
