"""Edge-enhancing diffusion (EED) of a 3D volume, after Fernández & Li (2003) and TomoEED (Moreno et al. 2018).

Each iteration: smooth the volume with a Gaussian of ``sigma`` voxels; take the structure tensor of the smoothed
volume, J = ∇Iσ ∇Iσᵀ (no integration scale, as in the EED mode of those papers); its eigenvector of largest
eigenvalue μ = |∇Iσ|² is ∇Iσ / |∇Iσ|, the other two span the plane of the edge. The diffusion tensor keeps those
eigenvectors with diffusivity g(μ) = 1 - exp(-3.31488 / (μ/K²)⁴) across the edge and 1 along it (Weickert's EED),
so D = 1 + (g - 1) v vᵀ. One explicit step then gives I ← I + τ div(D ∇I), with Neumann boundaries. K is fixed, or
(default, as tomoeed does) the mean |∇Iσ| of the whole volume, re-estimated every iteration.

The volume is processed in z-slabs with enough neighbouring planes that every slab's result equals that of the
whole volume at once: memory is two volume buffers (given by the caller, in RAM or memory-mapped) plus one slab's
work arrays. The kernels are compiled with numba and run in parallel over the rows of a slab; every reduction is
summed per plane in a fixed order, so the result does not depend on the number of threads or the slab size.
"""
import logging
import math

import numba
import numpy as np

log = logging.getLogger(__name__)

MAX_STABLE_STEP = 0.15          # the explicit scheme is stable up to this time step (3D, |D| <= 1)
EED_CONSTANT = 3.31488          # Weickert's C_4: makes the flux g(s)·s decrease for |∇Iσ| > K
SLAB_VOXELS = 4_000_000         # target voxels per slab: about 100 MB of work arrays
MIN_SLAB_PLANES = 8             # fewer planes would spend most time on the halo


def gaussian_radius(sigma):
    """Half-width in voxels of scipy's Gaussian kernel (truncated at 4 sigma): the halo the smoothing needs."""
    return int(4.0 * sigma + 0.5) if sigma > 0 else 0


def slab_planes(shape):
    plane = shape[1] * shape[2]
    return int(min(shape[0], max(MIN_SLAB_PLANES, SLAB_VOXELS // max(plane, 1))))


def gaussian_weights(sigma):
    """The 1D Gaussian kernel scipy.ndimage uses (truncated at 4 sigma, normalised to sum 1)."""
    r = gaussian_radius(sigma)
    w = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2) if sigma > 0 else np.ones(1)
    return (w / w.sum()).astype(np.float32)


def _smoothed(volume, a, b, sigma):
    """Gaussian-smoothed planes [a, b) of ``volume``, read with the halo the kernel needs (reflected at the
    volume's faces, as for the whole volume at once)."""
    n = volume.shape[0]
    r = gaussian_radius(sigma)
    lo, hi = max(0, a - r), min(n, b + r)
    block = np.ascontiguousarray(volume[lo:hi], dtype=np.float32)   # may be a view of the volume: read only
    if sigma <= 0:
        return block[a - lo:b - lo]
    w = gaussian_weights(sigma)
    one, two = np.empty_like(block), np.empty_like(block)
    _gaussian_pass(block, w, 2, one)
    _gaussian_pass(one, w, 1, two)
    _gaussian_pass(two, w, 0, one)
    return one[a - lo:b - lo]


# ----------------------------------------------------------------------------- compiled kernels
# Each kernel works on rows (z, y) in parallel. Neighbour indices are clamped at the array's faces, which gives
# Neumann boundaries. The first and last voxel of a row are done apart from the others, so that the inner loop
# has plain x - 1 / x + 1 neighbours that the compiler can vectorise; the voxel code is inlined in all three.
@numba.njit(inline="always")
def _reflect(j, n):
    """Index j mirrored into [0, n) about the faces (d c b a | a b c d | d c b a), as scipy's 'reflect'."""
    m = j % (2 * n)
    return m if m < n else 2 * n - 1 - m


@numba.njit(parallel=True, cache=True)
def _gaussian_pass(a, w, axis, out):
    """out = a convolved with the odd kernel w along ``axis`` (0, 1 or 2), mirrored at the faces."""
    nz, ny, nx = a.shape
    r = (w.shape[0] - 1) // 2
    for row in numba.prange(nz * ny):
        z, y = row // ny, row % ny
        o = out[z, y]
        o[:] = 0.0
        for t in range(-r, r + 1):
            wt = w[t + r]
            if axis == 2:
                src = a[z, y]
                lo, hi = max(0, -t), min(nx, nx - t)        # where x + t needs no mirroring
                for x in range(lo, hi):
                    o[x] += wt * src[x + t]
                for x in range(0, min(lo, nx)):
                    o[x] += wt * src[_reflect(x + t, nx)]
                for x in range(max(hi, lo), nx):
                    o[x] += wt * src[_reflect(x + t, nx)]
            else:
                src = a[_reflect(z + t, nz), y] if axis == 0 else a[z, _reflect(y + t, ny)]
                for x in range(nx):
                    o[x] += wt * src[x]


@numba.njit(inline="always")
def _gradient(s, z, zm, zp, y, ym, yp, x, xm, xp):
    return (0.5 * (s[z, y, xp] - s[z, y, xm]), 0.5 * (s[z, yp, x] - s[z, ym, x]),
            0.5 * (s[zp, y, x] - s[zm, y, x]))


@numba.njit(inline="always")
def _gradient_norm(s, z, zm, zp, y, ym, yp, x, xm, xp):
    gx, gy, gz = _gradient(s, z, zm, zp, y, ym, yp, x, xm, xp)
    return math.sqrt(gx * gx + gy * gy + gz * gz)


@numba.njit(parallel=True, cache=True)
def _gradient_norm_per_plane(s, first, count, out):
    """out[i] = sum of |∇s| (central differences) over plane first+i of s."""
    nz, ny, nx = s.shape
    rows = np.zeros((count, ny))
    for r in numba.prange(count * ny):
        i, y = r // ny, r % ny
        z = first + i
        zm, zp = max(z - 1, 0), min(z + 1, nz - 1)
        ym, yp = max(y - 1, 0), min(y + 1, ny - 1)
        acc = _gradient_norm(s, z, zm, zp, y, ym, yp, 0, 0, min(1, nx - 1))
        for x in range(1, nx - 1):
            acc += _gradient_norm(s, z, zm, zp, y, ym, yp, x, x - 1, x + 1)
        if nx > 1:
            acc += _gradient_norm(s, z, zm, zp, y, ym, yp, nx - 1, nx - 2, nx - 1)
        rows[i, y] = acc
    for i in range(count):       # summed in a fixed order: the same K whatever the threads
        total = 0.0
        for y in range(ny):
            total += rows[i, y]
        out[i] = total


@numba.njit(inline="always")
def _tensor_voxel(s, inv_k2, d, i, z, zm, zp, y, ym, yp, x, xm, xp):
    gx, gy, gz = _gradient(s, z, zm, zp, y, ym, yp, x, xm, xp)
    mu = gx * gx + gy * gy + gz * gz          # largest eigenvalue of the structure tensor
    c = 0.0                                   # flat: isotropic diffusion
    if mu > 1e-20:
        ratio = mu * inv_k2
        c = -math.exp(-EED_CONSTANT / (ratio * ratio * ratio * ratio)) / mu   # (g - 1) / mu
    # D = 1 + (g - 1) v vᵀ with v = ∇Iσ / |∇Iσ|
    d[0, i, y, x] = 1.0 + c * gx * gx
    d[1, i, y, x] = 1.0 + c * gy * gy
    d[2, i, y, x] = 1.0 + c * gz * gz
    d[3, i, y, x] = c * gx * gy
    d[4, i, y, x] = c * gx * gz
    d[5, i, y, x] = c * gy * gz


@numba.njit(parallel=True, cache=True)
def _diffusion_tensor(s, first, count, k, d):
    """EED diffusion tensor at planes first..first+count-1 of the smoothed volume s, written to planes
    0..count-1 of d = (xx, yy, zz, xy, xz, yz)."""
    nz, ny, nx = s.shape
    inv_k2 = 1.0 / (k * k)
    for r in numba.prange(count * ny):
        i, y = r // ny, r % ny
        z = first + i
        zm, zp = max(z - 1, 0), min(z + 1, nz - 1)
        ym, yp = max(y - 1, 0), min(y + 1, ny - 1)
        _tensor_voxel(s, inv_k2, d, i, z, zm, zp, y, ym, yp, 0, 0, min(1, nx - 1))
        for x in range(1, nx - 1):
            _tensor_voxel(s, inv_k2, d, i, z, zm, zp, y, ym, yp, x, x - 1, x + 1)
        if nx > 1:
            _tensor_voxel(s, inv_k2, d, i, z, zm, zp, y, ym, yp, nx - 1, nx - 2, nx - 1)


@numba.njit(inline="always")
def _step_voxel(u, d, tau, out, i, z, zm, zp, y, ym, yp, x, xm, xp):
    dxx, dyy, dzz, dxy, dxz, dyz = d[0], d[1], d[2], d[3], d[4], d[5]
    u0 = u[z, y, x]
    # diagonal terms: two-point fluxes with averaged diffusivities
    div = 0.5 * ((dxx[z, y, xp] + dxx[z, y, x]) * (u[z, y, xp] - u0)
                 - (dxx[z, y, x] + dxx[z, y, xm]) * (u0 - u[z, y, xm]))
    div += 0.5 * ((dyy[z, yp, x] + dyy[z, y, x]) * (u[z, yp, x] - u0)
                  - (dyy[z, y, x] + dyy[z, ym, x]) * (u0 - u[z, ym, x]))
    div += 0.5 * ((dzz[zp, y, x] + dzz[z, y, x]) * (u[zp, y, x] - u0)
                  - (dzz[z, y, x] + dzz[zm, y, x]) * (u0 - u[zm, y, x]))
    # mixed terms: d/dx(dxy du/dy) + d/dy(dxy du/dx) and the same for xz and yz, central differences
    mixed = (dxy[z, y, xp] * (u[z, yp, xp] - u[z, ym, xp]) - dxy[z, y, xm] * (u[z, yp, xm] - u[z, ym, xm])
             + dxy[z, yp, x] * (u[z, yp, xp] - u[z, yp, xm]) - dxy[z, ym, x] * (u[z, ym, xp] - u[z, ym, xm])
             + dxz[z, y, xp] * (u[zp, y, xp] - u[zm, y, xp]) - dxz[z, y, xm] * (u[zp, y, xm] - u[zm, y, xm])
             + dxz[zp, y, x] * (u[zp, y, xp] - u[zp, y, xm]) - dxz[zm, y, x] * (u[zm, y, xp] - u[zm, y, xm])
             + dyz[z, yp, x] * (u[zp, yp, x] - u[zm, yp, x]) - dyz[z, ym, x] * (u[zp, ym, x] - u[zm, ym, x])
             + dyz[zp, y, x] * (u[zp, yp, x] - u[zp, ym, x]) - dyz[zm, y, x] * (u[zm, yp, x] - u[zm, ym, x]))
    out[i, y, x] = u0 + tau * (div + 0.25 * mixed)


@numba.njit(parallel=True, cache=True)
def _explicit_step(u, d, first, tau, out):
    """out = u + tau div(D ∇u) at planes first..first+len(out)-1 of u; d starts at the same plane as u."""
    nz, ny, nx = u.shape
    count = out.shape[0]
    for r in numba.prange(count * ny):
        i, y = r // ny, r % ny
        z = first + i
        zm, zp = max(z - 1, 0), min(z + 1, nz - 1)
        ym, yp = max(y - 1, 0), min(y + 1, ny - 1)
        _step_voxel(u, d, tau, out, i, z, zm, zp, y, ym, yp, 0, 0, min(1, nx - 1))
        for x in range(1, nx - 1):
            _step_voxel(u, d, tau, out, i, z, zm, zp, y, ym, yp, x, x - 1, x + 1)
        if nx > 1:
            _step_voxel(u, d, tau, out, i, z, zm, zp, y, ym, yp, nx - 1, nx - 2, nx - 1)


# ----------------------------------------------------------------------------- driver
def _slabs(n, planes):
    return [(z, min(n, z + planes)) for z in range(0, n, planes)]


def mean_gradient(volume, sigma, planes=None):
    """Mean |∇Iσ| over the whole volume: the automatic contrast parameter K."""
    n = volume.shape[0]
    per_plane = np.zeros(n)
    for z0, z1 in _slabs(n, planes or slab_planes(volume.shape)):
        a, b = max(0, z0 - 1), min(n, z1 + 1)
        _gradient_norm_per_plane(_smoothed(volume, a, b, sigma), z0 - a, z1 - z0, per_plane[z0:z1])
    return float(per_plane.sum() / volume.size)


def _iterate(src, dst, sigma, k, step, planes, tensor):
    """One explicit EED step from src to dst, slab by slab; ``tensor`` is a work array (6, planes + 2, Y, X),
    passed whole so that the kernels always see the same array layout (and are compiled once)."""
    n = src.shape[0]
    for z0, z1 in _slabs(n, planes):
        ua, ub = max(0, z0 - 1), min(n, z1 + 1)      # u and D are needed one plane beyond the slab
        sa, sb = max(0, ua - 1), min(n, ub + 1)      # the smoothed volume one plane beyond that, for ∇Iσ
        _diffusion_tensor(_smoothed(src, sa, sb, sigma), ua - sa, ub - ua, np.float32(k), tensor)
        _explicit_step(np.asarray(src[ua:ub], dtype=np.float32), tensor, z0 - ua, np.float32(step),
                       np.asarray(dst[z0:z1]))


def diffuse(volume, scratch, sigma=0.5, iterations=10, step=0.1, k=None, planes=None):
    """Run EED on ``volume`` (Z, Y, X float32, writable; it is overwritten) using ``scratch``, a second writable
    array of the same shape. Returns (the array holding the result: ``volume`` or ``scratch``, the K of each
    iteration)."""
    if not 0 < step <= MAX_STABLE_STEP:
        raise ValueError("EED time step %g is outside (0, %g], where the explicit scheme is stable"
                         % (step, MAX_STABLE_STEP))
    if sigma < 0 or iterations < 0 or (k is not None and k <= 0):
        raise ValueError("EED needs sigma >= 0, iterations >= 0 and K > 0")
    planes = planes or slab_planes(volume.shape)
    tensor = np.empty((6, min(planes + 2, volume.shape[0])) + volume.shape[1:], np.float32)
    src, dst, ks = volume, scratch, []
    for it in range(iterations):
        kt = k if k is not None else mean_gradient(src, sigma, planes)
        if kt <= 0:          # a constant volume: nothing to diffuse
            break
        ks.append(kt)
        _iterate(src, dst, sigma, kt, step, planes, tensor)
        src, dst = dst, src
        log.debug("EED iteration %d/%d, K = %.4g", it + 1, iterations, kt)
    return src, ks
