"""Binning of a volume by a whole or fractional factor, streamed slab by slab: block averaging, or (by default)
antialiasing with a Lanczos-3 filter, as IMOD's binvol and newstack do.
"""
import logging

import numpy as np

from ..core import io
from ..core.streaming import CHUNK_VOXELS, Lazy

log = logging.getLogger(__name__)

LANCZOS_LOBES = 3   # IMOD's default antialiasing filter (Lanczos, 3 lobes)


def _lanczos(x):
    return np.where(np.abs(x) < LANCZOS_LOBES, np.sinc(x) * np.sinc(x / LANCZOS_LOBES), 0.0)


def resampling_matrix(n, factor, antialias=True):
    """Sparse (n_out, n) float32 matrix that reduces an axis of ``n`` voxels by ``factor``.

    An integer factor N gives n // N output voxels; the n % N voxels left over are dropped, half (rounded down) at
    the start and the rest at the end, so each output voxel is exactly one block of N input voxels. A fractional
    factor gives floor(n / factor) voxels, centred on the input. Without antialiasing an output voxel is the
    average of the input it covers (block averaging); with it, a Lanczos-3 filter stretched by the factor, as
    IMOD's binvol and newstack do. Beyond the ends the input is mirrored."""
    from scipy import sparse
    integer = abs(factor - round(factor)) < 1e-6
    if integer:
        factor = int(round(factor))
        n_out = n // factor
        offset = (n - n_out * factor) // 2
    else:
        n_out = int(np.floor(n / factor))
        offset = (n - n_out * factor) / 2.0
    if n_out < 1:
        raise ValueError("an axis of %d voxels cannot be binned by %g" % (n, factor))
    centres = offset + (np.arange(n_out) + 0.5) * factor      # voxel k spans [k, k + 1)
    half = LANCZOS_LOBES * factor if antialias else factor / 2.0
    first = np.floor(centres - half).astype(int)
    k = first[:, None] + np.arange(int(np.ceil(2 * half)) + 2)[None, :]
    if antialias:
        weights = _lanczos((k + 0.5 - centres[:, None]) / factor)
    else:  # the length of voxel k inside the output voxel's interval
        weights = np.clip(np.minimum(k + 1, centres[:, None] + half) - np.maximum(k, centres[:, None] - half), 0, 1)
    weights /= weights.sum(axis=1, keepdims=True)
    folded = np.mod(k, 2 * n)
    folded = np.where(folded < n, folded, 2 * n - 1 - folded)  # mirror about the faces
    rows = np.broadcast_to(np.arange(n_out)[:, None], k.shape)
    matrix = sparse.coo_matrix((weights.ravel(), (rows.ravel(), folded.ravel())), shape=(n_out, n)).tocsr()
    matrix.eliminate_zeros()
    return matrix.astype(np.float32)


def binned(volume, factor, antialias=True, bin_z=True):
    """``volume`` reduced by ``factor`` along X, Y and (if ``bin_z``) Z, computed slab by slab. Read in order,
    every input plane is read and reduced in X and Y once, even where the Z filter needs it for two slabs."""
    nz, ny, nx = volume.shape
    mz = resampling_matrix(nz, factor, antialias) if bin_z else None
    my, mx = resampling_matrix(ny, factor, antialias), resampling_matrix(nx, factor, antialias)
    shape = (mz.shape[0] if bin_z else nz, my.shape[0], mx.shape[0])

    def reduce_xy(block):
        d = block.shape[0]
        block = np.ascontiguousarray((mx @ np.ascontiguousarray(block.reshape(-1, nx).T)).T)
        block = my @ np.ascontiguousarray(block.reshape(d, ny, -1).transpose(1, 0, 2)).reshape(ny, -1)
        return np.ascontiguousarray(block.reshape(shape[1], d, shape[2]).transpose(1, 0, 2))

    chunk = max(1, int(4 * CHUNK_VOXELS / factor ** 3))   # input slabs of about 4 x CHUNK_VOXELS
    if mz is None:
        return Lazy(shape, lambda a, b: reduce_xy(np.asarray(volume[a:b], np.float32)), chunk)
    cache = {"first": 0, "planes": np.empty((0,) + shape[1:], np.float32)}   # the last input planes reduced

    def planes(a, b):
        rows = mz[a:b]
        k0, k1 = int(rows.indices.min()), int(rows.indices.max()) + 1
        first, done = cache["first"], cache["planes"]
        reuse = done[k0 - first:k1 - first] if first <= k0 < first + len(done) else done[:0]
        start = k0 + len(reuse)
        if start < k1:
            reuse = np.concatenate([reuse, reduce_xy(np.asarray(volume[start:k1], np.float32))])
        cache.update(first=k0, planes=reuse)
        return (rows[:, k0:k1] @ reuse.reshape(k1 - k0, -1)).reshape(b - a, shape[1], shape[2])
    return Lazy(shape, planes, chunk)


def bin_factor(step, pixel_size, path="input"):
    """The factor a recipe's "bin" step asks for: the given integer, or target / input pixel size (snapped to
    an integer when within 0.1% of one). Binning never enlarges: a finer target gives 1."""
    if "factor" in step:
        return int(step["factor"])
    if not pixel_size:
        raise io.InputError(path, "binning to %g Å/px needs the input pixel size, which the header does not "
                                  "give; pass --pixel-size" % step["pixel_size"])
    factor = step["pixel_size"] / pixel_size
    if abs(factor - round(factor)) < 1e-3 * factor:
        factor = int(round(factor))
    if factor < 1:
        log.warning("%s is already at %.3f Å/px, finer than the %.3f Å/px asked for; it is not binned",
                    path, pixel_size, step["pixel_size"])
        return 1
    return factor
