"""Imaging a density map like a cryo-ET specimen: tilt series, misalignment, noise, weighted back-projection (WBP).

Geometry: volumes are (Z, Y, X) with the beam along Z at 0° and the tilt axis along Y, so every Y row is an
independent 2D problem in the (Z, X) plane. A tilt series is (n_tilts, Y, U) with U = X detector pixels centred on
the volume; a slab thinner than X * tan(tilt_range / 2) (0.58 X at ±60°) is never truncated by the detector.

Both operators are sparse matrices that act on all Y rows at once. Projection uses Joseph's method (one linearly
interpolated sample per row or column crossed, weighted by the path length); back-projection is pixel-driven (each
voxel reads its detector position by linear interpolation), the usual pair in WBP programs. They depend only on the
shape and the angles, so they are cached for a run of phantoms of one size. Nothing is reconstructed outside the
tilt range, so the missing wedge and its artefacts are those of a real tomogram.
"""
import functools

import numpy as np
from scipy import ndimage, sparse

# IMOD tilt's default radial filter: the ramp is rolled off by a Gaussian above 0.35 cycles/pixel (sigma 0.035).
RADIAL_CUTOFF = 0.35
RADIAL_FALLOFF = 0.035


def tilt_angles(tilt_range=60.0, tilt_step=3.0):
    """Tilt angles in degrees from -tilt_range to +tilt_range (inclusive) every tilt_step."""
    if not (tilt_step > 0 and 0 <= tilt_range <= 90):
        raise ValueError("need 0 <= tilt range <= 90 and a positive tilt step (degrees)")
    n = int(np.floor(tilt_range / tilt_step + 1e-9))
    return np.arange(-n, n + 1) * float(tilt_step)


def _linear(rows, offset, pos, n, stride, weight):
    """Sparse entries (rows, columns, values) that read fractional index ``pos`` of an axis of length ``n`` by
    linear interpolation; the column of index i is offset + i * stride. Samples off the axis read zero."""
    rows, offset, pos = (a.ravel() for a in np.broadcast_arrays(rows, offset, pos))
    low = np.floor(pos).astype(np.int64)
    frac = (pos - low).astype(np.float32)
    out = []
    for index, w in ((low, (1 - frac) * weight), (low + 1, frac * weight)):
        ok = (index >= 0) & (index < n) & (w != 0)
        out.append((rows[ok], (offset + index * stride)[ok], w[ok]))
    return [np.concatenate(parts) for parts in zip(*out)]


def _csr(entries, shape):
    rows, cols, vals = (np.concatenate(parts) for parts in zip(*entries))
    return sparse.csr_matrix((vals.astype(np.float32), (rows, cols)), shape=shape)


@functools.lru_cache(maxsize=2)
def _projector(nz, nx, angles):
    """Matrix from a (Z*X, Y) volume to (n_tilts*U, Y) line integrals, U = X (Joseph's method)."""
    nu = nx
    cz, cx, cu = (nz - 1) / 2, (nx - 1) / 2, (nu - 1) / 2
    t = (np.arange(nu) - cu)[:, None]                       # detector coordinate of each ray
    entries = []
    for a, theta in enumerate(np.deg2rad(angles)):
        s, c = np.sin(theta), np.cos(theta)
        rows = a * nu + np.arange(nu)[:, None]
        # a ray holds the points with (z - cz) sin + (x - cx) cos = t; step along the axis it crosses faster
        if abs(c) >= abs(s):
            k = np.arange(nz)[None, :]
            entries.append(_linear(rows, k * nx, cx + (t - (k - cz) * s) / c, nx, 1, 1 / abs(c)))
        else:
            j = np.arange(nx)[None, :]
            entries.append(_linear(rows, j, cz + (t - (j - cx) * c) / s, nz, nx, 1 / abs(s)))
    return _csr(entries, (len(angles) * nu, nz * nx))


@functools.lru_cache(maxsize=2)
def _backprojector(nz, nx, angles):
    """Matrix from (n_tilts*U, Y) filtered projections to a (Z*X, Y) volume: every voxel reads its detector
    position at every tilt."""
    nu = nx
    cz, cx, cu = (nz - 1) / 2, (nx - 1) / 2, (nu - 1) / 2
    z, x = np.arange(nz)[:, None], np.arange(nx)[None, :]
    rows = z * nx + x
    entries = [_linear(rows, a * nu, cu + (z - cz) * np.sin(theta) + (x - cx) * np.cos(theta), nu, 1, 1.0)
               for a, theta in enumerate(np.deg2rad(angles))]
    return _csr(entries, (nz * nx, len(angles) * nu))


def _key(angles):
    return tuple(float(a) for a in np.asarray(angles).ravel())


def project(volume, angles):
    """Line integrals (voxel units) of ``volume`` (Z, Y, X) at each tilt angle (degrees): (n_tilts, Y, X)."""
    nz, ny, nx = volume.shape
    columns = np.ascontiguousarray(np.asarray(volume, np.float32).transpose(0, 2, 1)).reshape(nz * nx, ny)
    sino = _projector(nz, nx, _key(angles)) @ columns
    return np.ascontiguousarray(sino.reshape(len(angles), nx, ny).transpose(0, 2, 1))


def ramp_filter(projections, cutoff=RADIAL_CUTOFF, falloff=RADIAL_FALLOFF, sirt_iterations=0):
    """The weighting of WBP along the detector axis: the discrete ramp (Ram-Lak) filter, rolled off above ``cutoff``
    cycles/pixel by a Gaussian of sigma ``falloff`` (cutoff None: no roll-off). Edges are padded with their value
    so that a structure cut by the detector edge does not ring.

    With ``sirt_iterations`` N > 0, the ramp is multiplied by 1 - (1 - f0 / f)^N (f0 the lowest frequency of the
    detector): what N iterations of SIRT (Landweber) reach at each frequency, as the SIRT-like filter of Zeng
    (2012, Med. Phys. 39:2446) and IMOD's -FakeSIRTiterations give. Low frequencies converge first, so the result
    looks like a SIRT reconstruction: smoother than WBP."""
    nu = projections.shape[-1]
    n = 1 << int(np.ceil(np.log2(2 * nu)))
    k = np.minimum(np.arange(n), n - np.arange(n))
    kernel = np.zeros(n)
    kernel[0] = 0.25                                         # the spatial Ram-Lak kernel: no DC offset
    odd = k % 2 == 1
    kernel[odd] = -1.0 / (np.pi * k[odd]) ** 2
    response = np.fft.rfft(kernel).real
    f = np.fft.rfftfreq(n)
    if cutoff is not None:
        response *= np.where(f > cutoff, np.exp(-0.5 * ((f - cutoff) / falloff) ** 2), 1.0)
    if sirt_iterations:
        reached = np.minimum(1.0, 1.0 / (nu * np.maximum(f, 1e-12)))
        response *= 1.0 - (1.0 - reached) ** sirt_iterations
    pad = [(0, 0)] * (projections.ndim - 1) + [((n - nu) // 2, n - nu - (n - nu) // 2)]
    padded = np.pad(projections, pad, mode="edge")
    filtered = np.fft.irfft(np.fft.rfft(padded, axis=-1) * response, n, axis=-1)
    return filtered[..., pad[-1][0]:pad[-1][0] + nu].astype(np.float32)


def backproject(projections, angles, nz):
    """Sum each projection (n_tilts, Y, U) back through a volume of thickness ``nz``: (Z, Y, U)."""
    n, ny, nu = projections.shape
    columns = np.ascontiguousarray(projections.transpose(0, 2, 1)).reshape(n * nu, ny)
    volume = _backprojector(nz, nu, _key(angles)) @ columns
    return np.ascontiguousarray(volume.reshape(nz, nu, ny).transpose(0, 2, 1))


def wbp(projections, angles, nz, cutoff=RADIAL_CUTOFF, falloff=RADIAL_FALLOFF, sirt_iterations=0):
    """Weighted back-projection: ramp-filter, back-project, and weight by the angular step (radians), so a full
    ±90° series gives back the density that was projected. ``sirt_iterations``: see ramp_filter."""
    angles = np.asarray(angles, float)
    step = np.deg2rad(np.gradient(angles)) if len(angles) > 1 else np.full(1, np.pi)
    filtered = ramp_filter(projections, cutoff, falloff, sirt_iterations) * step[:, None, None].astype(np.float32)
    return backproject(filtered, angles, nz)


def misalignment(angles, rng, mean=1.0, maximum=1.5):
    """Residual alignment errors (pixels) per tilt as (n_tilts, 2) shifts (dy, dx): random directions, with a
    magnitude growing with |sin(tilt)| (the sinusoidal profile of PolNet) from its value at 0° up to ``maximum``
    at the highest tilt, and averaging ``mean`` over the series."""
    angles = np.asarray(angles, float)
    weight = np.abs(np.sin(np.deg2rad(angles)))
    if weight.max() > 0:
        weight /= weight.max()
    w_mean = weight.mean()
    # magnitude = low + (maximum - low) * weight, with low chosen so that its mean is ``mean``
    low = mean if w_mean >= 1 else float(np.clip((mean - maximum * w_mean) / (1 - w_mean), 0, mean))
    magnitude = np.minimum(low + (maximum - low) * weight, maximum)
    direction = rng.uniform(0, 2 * np.pi, len(angles))
    return np.stack([magnitude * np.sin(direction), magnitude * np.cos(direction)], axis=1)


def shift_projections(projections, shifts):
    """Move each projection by its (dy, dx) shift in pixels (cubic spline; edges extended)."""
    return np.stack([ndimage.shift(p, s, order=3, mode="nearest") for p, s in zip(projections, shifts)])


def add_noise(projections, snr, rng):
    """Add zero-mean Gaussian noise of one sigma for the whole series, chosen so that the variance of the noiseless
    projections over that of the noise is ``snr``. Returns (noisy, sigma)."""
    sigma = float(np.sqrt(projections.var(dtype=np.float64) / snr))
    noise = rng.standard_normal(projections.shape, dtype=np.float32)
    return projections + sigma * noise, sigma


def measure_snr(clean, noisy):
    """Variance of the noiseless signal over variance of the noise, over a whole tilt series."""
    return float(clean.var(dtype=np.float64) / (noisy - clean).var(dtype=np.float64))
