"""Overlapping square patches over a slice, their blending weights, the z-neighbours of 2.5D context, square
crops that may reach past the border (training patches), and the box of an array around a region.

Patches overlap by a fraction of their size and are blended with a smooth window that falls towards the patch
border, so predictions near a patch edge (where the network sees little context) count less, and no seam shows.
"""
import numpy as np


def starts(length, patch, overlap):
    """Start offsets of patches covering [0, length) with at least ``overlap`` (fraction) between neighbours; the
    last patch ends exactly at ``length``. ``length`` must be >= ``patch`` (pad smaller slices first)."""
    if length <= patch:
        return [0]
    step = max(1, int(patch * (1.0 - overlap)))
    n = int(np.ceil((length - patch) / step)) + 1
    return [int(round(i * (length - patch) / (n - 1))) for i in range(n)]


def grid(shape, patch, overlap):
    """(row, col) starts of every patch of a 2D slice of ``shape``."""
    return [(r, c) for r in starts(shape[0], patch, overlap) for c in starts(shape[1], patch, overlap)]


def window(patch, floor=1e-3):
    """2D blending weights: a squared sine per axis, kept above ``floor`` so that every pixel has some weight."""
    ramp = np.sin(np.pi * (np.arange(patch) + 0.5) / patch) ** 2
    w = np.outer(ramp, ramp).astype(np.float32)
    return np.maximum(w, floor)


def padded_shape(shape, patch):
    """The slice shape after padding up to at least one patch in each direction."""
    return max(shape[0], patch), max(shape[1], patch)


def pad_to(image, shape):
    """Reflect-pad a 2D slice at its far edges up to ``shape``."""
    pr, pc = shape[0] - image.shape[0], shape[1] - image.shape[1]
    if pr <= 0 and pc <= 0:
        return image
    mode = "reflect" if pr < image.shape[0] and pc < image.shape[1] else "symmetric"
    return np.pad(image, ((0, max(pr, 0)), (0, max(pc, 0))), mode=mode)


def context_slices(z, depth, k, spacing=1.0):
    """The k z-neighbours centred on slice ``z`` (k odd), ``spacing`` input slices apart (the model's pixel size
    over the input's), mirrored at the volume's ends, each as ``(below, above, weight)``: the neighbour is slice
    ``below`` blended with slice ``above`` at ``weight`` (linear interpolation; weight 0 where it falls on a
    slice). Rounding a fractional position instead would give, at spacing 0.5, no context to even slices (Python
    rounds halves to even) and neighbours 2 slices apart to odd ones. With depth 1 (a 2D image) every neighbour is
    slice 0: the context is missing and the slice is repeated, as the model was trained to accept."""
    out = []
    for j in range(-(k // 2), k // 2 + 1):
        if depth == 1:
            out.append((0, 0, 0.0))
            continue
        period = 2 * (depth - 1)
        p = (z + j * spacing) % period
        p = period - p if p > depth - 1 else p
        below = min(int(np.floor(p + 1e-9)), depth - 1)
        weight = p - below if p - below > 1e-6 else 0.0
        out.append((below, min(below + 1, depth - 1), weight))
    return out


def blend_slices(slice_at, neighbours):
    """The neighbours of context_slices as arrays, ``slice_at(i)`` giving slice i."""
    return [slice_at(lo) if w == 0 else (1 - w) * slice_at(lo) + w * slice_at(hi) for lo, hi, w in neighbours]


def _mirror(i, n):
    """Indices mirrored into 0..n-1 about the edges, however far outside they are."""
    if n == 1:
        return np.zeros_like(i)
    i = np.abs(i) % (2 * (n - 1))
    return np.where(i >= n, 2 * (n - 1) - i, i)


def crop(a, r0, c0, size, fill=None, reflect=False):
    """A size x size crop from (r0, c0): outside ``a`` the border is replicated, mirrored (``reflect``, without
    repeating the edge row), or ``fill`` when given."""
    rows, cols = a.shape
    r = np.arange(r0, r0 + size)
    c = np.arange(c0, c0 + size)
    inside = _mirror if reflect else (lambda i, n: np.clip(i, 0, n - 1))
    out = a[np.ix_(inside(r, rows), inside(c, cols))]
    if fill is not None:
        out[(r < 0) | (r >= rows), :] = fill
        out[:, (c < 0) | (c >= cols)] = fill
    return out


def box_around(shape, lo, hi, margin):
    """The part of an array of ``shape`` within ``margin`` of the region [lo, hi] (per axis, in index units; the
    whole array when ``lo`` is None): its slices and open coordinate grids (float32, broadcasting against each
    other), or (None, None) when that part is empty."""
    ndim = len(shape)
    if lo is None:
        lo, hi = np.zeros(ndim), np.array(shape) - 1.0
    a = np.maximum(np.floor(np.asarray(lo) - margin), 0).astype(int)
    b = np.minimum(np.ceil(np.asarray(hi) + margin) + 1, shape).astype(int)
    if np.any(b <= a):
        return None, None
    grids = [np.arange(i, j, dtype=np.float32).reshape([-1 if k == axis else 1 for k in range(ndim)])
             for axis, (i, j) in enumerate(zip(a, b))]
    return tuple(slice(i, j) for i, j in zip(a, b)), grids
