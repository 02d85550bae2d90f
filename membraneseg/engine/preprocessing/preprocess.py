"""Normalisation and resampling of tomogram slices: the basics that training, prediction and the preprocessing
recipes (see ``recipes``) share.

Normalisation is robust: statistics come from the voxels between the 0.5th and 99.5th percentiles of a subsample,
so gold beads and carbon edges do not set the scale. The same statistics are used for every slab of a volume, so
slab-by-slab processing gives the same result as processing the whole volume at once.
"""
import logging
from typing import NamedTuple

import numpy as np

from ..core import io

log = logging.getLogger(__name__)

SAMPLE_VOXELS = 2_000_000
CLIP_PERCENTILES = (0.5, 99.5)


class Stats(NamedTuple):
    mean: float
    std: float
    low: float   # values are clipped to [low, high] before normalising
    high: float


def sample(volume, n=SAMPLE_VOXELS, max_slices=64, finite_only=True):
    """A deterministic, evenly spread subsample of a (possibly memory-mapped) volume (Z, Y, X), read slice by
    slice from at most ``max_slices`` slices, with non-finite values left out unless ``finite_only`` is False."""
    z, y, x = volume.shape
    zs = np.unique(np.linspace(0, z - 1, min(z, max_slices)).astype(int))
    step = max(1, int(np.sqrt(y * x * len(zs) / n)))
    values = np.concatenate([np.asarray(volume[i, ::step, ::step], dtype=np.float64).ravel() for i in zs])
    return values[np.isfinite(values)] if finite_only else values


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


def finite(block, stats: Stats):
    """A float32 copy of ``block`` in which NaN voxels are the mean and -Inf/+Inf the clip limits: left alone, one
    NaN spreads through every filter and convolution it touches (EED, resampling, the network)."""
    return np.nan_to_num(np.asarray(block, dtype=np.float32), nan=stats.mean, neginf=stats.low, posinf=stats.high)


def normalize(block, stats: Stats, out=None):
    """Clip to the robust range and scale to zero mean, unit standard deviation (float32); NaN voxels become 0."""
    block = np.asarray(block, dtype=np.float32)
    out = np.clip(block, stats.low, stats.high, out=out)
    np.copyto(out, np.float32(stats.mean), where=np.isnan(out))
    out -= stats.mean
    out /= stats.std
    return out


def check_volume(vol):
    """Refuse inputs that cannot give a meaningful result, before any output is created; warn about NaN or Inf
    voxels, which ``normalize`` and ``finite`` neutralise."""
    values = sample(vol.data, n=200_000, finite_only=False)
    good = values[np.isfinite(values)]
    if good.size == 0:
        raise io.InputError(vol.path, "no finite voxel values (all NaN or Inf)")
    if float(good.max()) == float(good.min()):
        raise io.InputError(vol.path, "all voxels have the same value (%g), so it holds no image; is it an empty or "
                                          "failed reconstruction?" % good.max())
    if good.size < values.size:
        log.warning("%s: %.2g%% of the voxels sampled are NaN or Inf; they are treated as the mean intensity",
                    vol.path, 100.0 * (values.size - good.size) / values.size)


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


def working_pixel_size(model_pixel, pixel, max_upsampling=None):
    """The pixel size a tomogram of ``pixel`` Å is given to a model of ``model_pixel`` Å at, in training and in
    segmentation alike: the model's, unless that means upsampling it by more than ``max_upsampling`` (None: no
    bound)."""
    return max(model_pixel, pixel / max_upsampling) if max_upsampling else model_pixel


def resize_nearest(labels, shape):
    """Resample a label image to ``shape`` without inventing labels."""
    import cv2
    if labels.shape == tuple(shape):
        return labels
    return cv2.resize(labels, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_NEAREST)
