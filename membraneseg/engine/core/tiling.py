"""Overlapping square patches over a slice, their blending weights, the z-slices a model sees, square
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


def context_slices(z, depth, k, spacing=1.0, step=1):
    """What the model sees as slice ``z`` and its k - 1 z-neighbours (k odd), for a model whose voxel is
    ``spacing`` input slices deep (its pixel size over the input's): per neighbour, ``((slice, weight), ...)``.

    The neighbours lie ``step`` model voxels (``step * spacing`` input slices) apart, mirrored at the volume's
    ends; each is one model voxel deep, whatever the step. A model voxel deeper than an input
    slice (a 5 Å input for a 10 Å model) is the mean of the slices it spans, as binning makes it: a single 5 Å
    slice, only resampled in XY, carries several times the noise of a 10 Å one. A thinner one (a coarse input
    upsampled) is interpolated linearly; rounding its position instead gave, at spacing 0.5, even slices no
    context and odd ones neighbours a whole slice away. With depth 1 (a 2D image) every neighbour is slice 0: the
    context is missing and the slice is repeated, as the model was trained to accept."""
    out = []
    for j in range(-(k // 2), k // 2 + 1):
        p = z + j * spacing * step
        terms = {}
        if depth == 1:
            terms[0] = 1.0
        elif spacing > 1:
            # input slice i fills [i - 0.5, i + 0.5); the model voxel [p - spacing / 2, p + spacing / 2)
            lo, hi = p - spacing / 2, p + spacing / 2
            for i in range(int(np.floor(lo + 0.5)), int(np.ceil(hi - 0.5)) + 1):
                w = min(hi, i + 0.5) - max(lo, i - 0.5)
                if w > 1e-9:
                    m = int(_mirror(np.array(i), depth))
                    terms[m] = terms.get(m, 0.0) + w / spacing
        else:
            q = float(_mirror(np.array(p, float), depth))
            below = min(int(np.floor(q + 1e-9)), depth - 1)
            w = q - below if q - below > 1e-6 else 0.0
            terms[below] = 1.0 - w
            if w:
                terms[below + 1] = w
        out.append(tuple(sorted(terms.items())))
    return out


def blend_slices(slice_at, neighbours):
    """The neighbours of context_slices as arrays, ``slice_at(i)`` giving slice i."""
    return [slice_at(terms[0][0]) if len(terms) == 1 else sum(w * slice_at(i) for i, w in terms)
            for terms in neighbours]


def _mirror(i, n):
    """Indices (or fractional positions) mirrored into [0, n - 1] about the edges, however far outside they are."""
    if n == 1:
        return np.zeros_like(i)
    i = np.abs(i) % (2 * (n - 1))
    return np.where(i > n - 1, 2 * (n - 1) - i, i)


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
