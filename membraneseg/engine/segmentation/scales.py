"""Test-time scales: a volume is also segmented after being made coarser (smoothed and resampled by a factor in
X, Y and Z), and the probability maps of all scales, brought back to the volume's grid, are averaged.

Why: on simulated raw tomograms the tomogram model finds more membrane when it also sees the volume at 2x and 4x
its pixel size (recipes/probe_scale.py, recipes/results/raw-model.md): tolerant Dice at 10 Å 0.749 -> 0.851, at
60 e/Å² 0.626 -> 0.745, at 20 Å 0.885 -> 0.898, with fewer voxels invented in volumes without membrane. A coarser
copy is a denoised one, and the network, applied at its own pixel size, sees membranes as thicker, smoother
bands. Each extra scale costs about 1/f of the single-scale time (fewer z-slices; each slice still goes to the
model's pixel size, up to its largest upsampling).

Resampling is linear and centre-aligned (voxel i of n covers [i, i+1) on every grid), after a Gaussian of sigma
0.4 x factor voxels against aliasing, and goes slab by slab, so memory stays bounded by the reduced volume (1/f³
of the input) plus a slab. A 2D image (one slice) gets them only when asked for, and in-plane: on the shared real
slices, held out, they lowered the slice model's tolerant Dice from 0.708 to 0.684 (1 2) and 0.551 (1 2 4)
(recipes/probe_scale_slices.py, recipes/results/probe-scale-slices.txt), so a model card's scales apply to
volumes only.
"""
import logging

import numpy as np
from scipy import ndimage

log = logging.getLogger(__name__)

SMOOTHING = 0.4         # Gaussian sigma per unit of reduction, in input voxels
# No copy coarser than this (Å per voxel). At 80 Å a 25 nm microtubule spans 3 voxels and looks like a band: the
# tomogram model called a microtubule of a 40 Å volume membrane from its 80 Å copy, and marked 0.35 % of
# membrane-free 40 Å volumes instead of 0.13 %. At 60 Å it still spans 4 and stays a tube.
COARSEST = 60.0
SLAB = 32               # output z-slices resampled at a time


def check_factors(factors, name="--scales"):
    """The factors as floats, the first 1 (the volume as given is always segmented), then the others in order:
    over 1 a coarser copy, under 1 (but over 0) a finer pass (see finer_passes)."""
    factors = [float(f) for f in factors]
    if not factors or any(not f > 0 for f in factors):
        raise ValueError("%s: every factor must be over 0, not %s" % (name, " ".join("%g" % f for f in factors)))
    return [1.0] + sorted(set(f for f in factors if f != 1))


def finer_passes(factors, working, finest):
    """Pixel sizes (Å) of the finer passes that the factors under 1 ask for: the first pass's ``working`` pixel
    size times each, never finer than the model's own (``finest``), dropping any that is not finer than the first
    pass. Only a tomogram coarser than the model's largest upsampling allows gets one: a 40 Å one, worked at 20 Å
    by a 10 Å model trained with upsampling up to 2x, is also segmented at 10 Å with factor 0.5.

    Why: on simulated 40 Å tomograms the tomogram model (version 3) working at 20 Å finds membranes (tolerant Dice
    0.720) but calls 0.75 % of microtubule crops membrane; at 10 Å it calls 0.13 % but finds few (0.388); the mean
    of both maps finds 0.662 and calls 0.22 % of microtubule crops and 0.16 % of membrane-free volumes membrane
    (recipes/probe_working_scales.py, recipes/results/probe-working-scales.txt)."""
    sizes = {max(finest, working * f) for f in factors if f < 1}
    return sorted(w for w in sizes if w < working * 0.999)


def reduced_shape(shape, factor):
    return tuple(max(1, int(round(n / factor))) for n in shape)


def coordinates(n_in, n_out):
    """For each of ``n_out`` voxels, the two input voxels that bracket its centre and the weight of the second."""
    x = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(x).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (x - lo).astype(np.float32)


def blend(a, lo, hi, w, axis=0):
    """Linear interpolation of ``a`` along ``axis``: for each output position, its ``lo`` and ``hi`` slices
    weighted by 1 - ``w`` and ``w``."""
    shape = [1] * a.ndim
    shape[axis] = len(w)
    w = w.reshape(shape)
    return np.take(a, lo, axis=axis) * (1 - w) + np.take(a, hi, axis=axis) * w


def resample_axis(a, axis, n_out):
    """``a`` linearly resampled to ``n_out`` voxels along ``axis`` (centre-aligned)."""
    return blend(a, *coordinates(a.shape[axis], n_out), axis=axis)


def _z_window(n_in, n_out, z0, z1, margin):
    """Input z-range [a, b) the output z-slices [z0, z1) read, with ``margin`` voxels either side."""
    lo, hi, _ = coordinates(n_in, n_out)
    return max(0, int(lo[z0]) - margin), min(n_in, int(hi[z1 - 1]) + 1 + margin)


def reduce(data, factor):
    """``data`` (Z, Y, X; may be memory-mapped) smoothed and resampled to reduced_shape(shape, factor), float32."""
    shape = data.shape
    out_shape = reduced_shape(shape, factor)
    sigma = SMOOTHING * factor
    margin = int(np.ceil(4 * sigma))
    lo, hi, w = coordinates(shape[0], out_shape[0])
    out = np.empty(out_shape, np.float32)
    for z0 in range(0, out_shape[0], SLAB):
        z1 = min(out_shape[0], z0 + SLAB)
        a, b = _z_window(shape[0], out_shape[0], z0, z1, margin)
        block = ndimage.gaussian_filter(np.asarray(data[a:b], np.float32), sigma, mode="nearest")
        block = blend(block, lo[z0:z1] - a, hi[z0:z1] - a, w[z0:z1])
        out[z0:z1] = resample_axis(resample_axis(block, 1, out_shape[1]), 2, out_shape[2])
    return out


def add_restored(total, small):
    """Add ``small`` (a reduced probability map) brought back to ``total``'s grid into ``total`` (may be a
    memory-mapped output), slab by slab."""
    shape = total.shape
    lo, hi, w = coordinates(small.shape[0], shape[0])
    for z0 in range(0, shape[0], SLAB):
        z1 = min(shape[0], z0 + SLAB)
        block = blend(small, lo[z0:z1], hi[z0:z1], w[z0:z1])
        total[z0:z1] += resample_axis(resample_axis(block, 1, shape[1]), 2, shape[2])


def segment_scales(segment, data, px_in, factors, prob_out, mask_out, threshold, name, planar=False, finer=()):
    """Average over ``factors`` (check_factors) the probability maps of ``segment(data, pixel_size, prob, mask)``
    (the single-scale segmentation, which fills prob and mask) into ``prob_out``, then threshold into
    ``mask_out``. The first factor (1) writes straight into the outputs. ``finer``: working pixel sizes
    (finer_passes) at which the volume as given is also segmented, by ``segment(..., work=size)``. A 2D image (one
    slice) is segmented at its own scale only, unless ``planar``."""
    segment(data, px_in, prob_out, mask_out)
    extra = [f for f in factors if f > 1 and px_in * f <= COARSEST * 1.001]
    if not (extra or finer) or (len(data) < 2 and not planar):
        return          # one pass: its outputs stand (a multi-class model's mask holds labels, not a threshold)
    for work in finer:
        log.info("%s: finer test-time pass: the network at %.2f Å per voxel", name, work)
        fine_prob = np.zeros(data.shape, np.float32)
        segment(data, px_in, fine_prob, np.zeros(data.shape, np.uint8), work=work)
        for z0 in range(0, prob_out.shape[0], SLAB):
            prob_out[z0:z0 + SLAB] = np.asarray(prob_out[z0:z0 + SLAB]) + fine_prob[z0:z0 + SLAB]
    for f in extra:
        small = reduce(data, f)
        log.info("%s: test-time scale %gx: %s voxels at %.2f Å", name, f, "x".join(map(str, small.shape[::-1])),
                 px_in * f)
        small_prob = np.zeros(small.shape, np.float32)
        segment(small, px_in * f, small_prob, np.zeros(small.shape, np.uint8))
        add_restored(prob_out, small_prob)
    n = 1 + len(extra) + len(finer)
    for z0 in range(0, prob_out.shape[0], SLAB):
        block = np.asarray(prob_out[z0:z0 + SLAB]) / n
        prob_out[z0:z0 + SLAB] = block
        mask_out[z0:z0 + SLAB] = block >= threshold
