"""Simple synthetic tomograms: vesicles (spheres and ellipsoids) with a double-Gaussian bilayer profile, in noise.

These are quick to make (well under a second for 64x128x128) and have exact labels, which is what the demo, the
tests and the starter model need. Membranes are dark, as in reconstructed cryo-ET tomograms. The label map has
0 for background and 1 for membrane voxels (those within half a bilayer thickness plus one leaflet sigma of the
mid-surface).
"""
import numpy as np
from scipy import ndimage


def _rotation(rng):
    """A random rotation matrix (uniform over orientations)."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    a, b, c, d = q
    return np.array([[a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                     [2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)],
                     [2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d]])


def bilayer(distance, thickness, sigma):
    """Density of a lipid bilayer at signed ``distance`` from its mid-surface: two Gaussian leaflets
    ``thickness`` apart (all in voxels)."""
    half = thickness / 2.0
    return (np.exp(-0.5 * ((distance - half) / sigma) ** 2) + np.exp(-0.5 * ((distance + half) / sigma) ** 2))


def simple_phantom(shape=(64, 128, 128), voxel_size=10.0, seed=0, vesicles=None, snr=1.5):
    """Return (tomogram float32, labels uint8) of ``shape`` (Z, Y, X) at ``voxel_size`` Å."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    density = np.zeros(shape, np.float32)
    labels = np.zeros(shape, np.uint8)
    n = vesicles if vesicles is not None else max(2, int(np.prod(shape) / 250_000))
    for _ in range(n):
        radius_a = rng.uniform(150, 600)                        # Å: small vesicles to organelle-like compartments
        axes = radius_a / voxel_size * rng.uniform(0.7, 1.3, size=3)
        axes[0] = min(axes[0], max(3.0, shape[0] / 2.5))
        centre = rng.uniform(0, 1, size=3) * np.array(shape)
        thickness = rng.uniform(30, 45) / voxel_size            # Å between leaflet centres
        sigma = max(rng.uniform(5, 10) / voxel_size, 0.5)       # rendered no sharper than half a voxel
        _draw_ellipsoid(density, labels, centre, axes, _rotation(rng), thickness, sigma)
    tomogram = -density                                          # membranes are dark
    tomogram = ndimage.gaussian_filter(tomogram, 0.7)
    signal_std = float(tomogram[labels > 0].std()) if labels.any() else 1.0
    noise = rng.normal(size=shape).astype(np.float32)
    noise = ndimage.gaussian_filter(noise, 0.6)
    noise *= signal_std / (snr * noise.std())
    return (tomogram + noise).astype(np.float32), labels


def _draw_ellipsoid(density, labels, centre, axes, rot, thickness, sigma):
    """Add one ellipsoidal membrane, working only in its bounding box."""
    reach = axes.max() + thickness + 3 * sigma
    lo = np.maximum(np.floor(centre - reach), 0).astype(int)
    hi = np.minimum(np.ceil(centre + reach) + 1, density.shape).astype(int)
    if np.any(hi <= lo):
        return
    zz, yy, xx = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij")
    p = np.stack([zz - centre[0], yy - centre[1], xx - centre[2]], axis=-1) @ rot
    r = np.sqrt(((p / axes) ** 2).sum(-1))
    # distance to the surface, to first order: (r - 1) times the local radius along the ray
    local = np.linalg.norm(p, axis=-1) / np.maximum(r, 1e-6)
    distance = (r - 1.0) * local
    box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
    density[box] += bilayer(distance, thickness, sigma).astype(np.float32)
    labels[box] |= (np.abs(distance) <= thickness / 2 + sigma).astype(np.uint8)
