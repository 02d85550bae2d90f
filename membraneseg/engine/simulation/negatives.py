"""Things in a tomogram that look like membranes and are not: the edge of the carbon film and crystalline ice
contamination. Drawn into a scene's density and label map after ``simulate.render``, with labels of their own, so
that a model learns them as background (or as classes of their own). Microtubules, actin, gold and dense particle
crowding are in the scene itself (``scene``).
"""
import numpy as np
from scipy import ndimage

CARBON = 2.0          # amorphous carbon against ice, relative to protein (2.0 g/cm³ against 1.35)
CONTAMINATION = 1.5   # crystalline ice: its diffraction contrast, drawn as a dense body
LABELS = {"carbon": 5, "contamination": 6}


def _texture(shape, rng, sigma=1.0, amount=0.25):
    """A smooth random field around 1 (amorphous material is not uniform)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return 1.0 + amount * field / max(float(field.std()), 1e-6)


def add_carbon_edge(density, labels, voxel_size, rng):
    """A carbon film 10-25 nm thick, near the top or bottom of the slab, covering the volume outside a round hole
    whose edge crosses the field of view. Returns True when the edge crosses the volume."""
    nz, ny, nx = density.shape
    nm = 10.0 / voxel_size
    thickness = max(1.0, rng.uniform(10, 25) * nm)
    top = rng.random() < 0.5
    z0 = rng.uniform(0, max(nz * 0.2 - thickness, 0)) if top else rng.uniform(nz * 0.8, max(nz - thickness, nz * 0.8))
    # the hole: a circle of radius 300-1000 nm whose edge passes near the centre of the field
    radius = rng.uniform(300, 1000) * nm
    angle = rng.uniform(0, 2 * np.pi)
    through = np.array([ny / 2, nx / 2]) + rng.uniform(-0.3, 0.3, 2) * [ny, nx]
    centre = through + radius * np.array([np.sin(angle), np.cos(angle)])
    y, x = np.ogrid[:ny, :nx]
    outside = np.hypot(y - centre[0], x - centre[1]) - radius          # > 0 on the film
    film = 0.5 + 0.5 * np.tanh(outside / 0.7)                          # a one-voxel soft edge
    z = np.arange(nz, dtype=np.float32)[:, None, None]
    slab = ((z >= z0) & (z < z0 + thickness)).astype(np.float32)
    body = slab * film[None]
    zs = slice(max(int(z0) - 1, 0), min(int(z0 + thickness) + 2, nz))
    density[zs] += CARBON * body[zs] * _texture(body[zs].shape, rng)
    labels[zs][body[zs] >= 0.5] = LABELS["carbon"]
    return bool((outside > 0).any() and (outside < 0).any())


def attenuation(removed):
    """Attenuation per Å of crystalline ice that removes the fraction ``removed`` of the electrons along 100 nm."""
    return -np.log1p(-min(float(removed), 0.99)) / 1000.0


def add_contamination(density, labels, voxel_size, rng, count=None, absorption=None, removed=0.6):
    """Ice crystals of 20-80 nm radius sitting on the top or bottom surface of the slab (partly outside it).

    ``absorption`` (an array like ``density``, or None): where to draw the crystals' amplitude contrast, as an
    attenuation per Å. A crystal near a zone axis scatters electrons out of the objective aperture (Bragg
    diffraction), so it is darker than its phase contrast alone makes it: ``removed`` is the fraction of electrons
    100 nm of it removes, varied 0.5-1.5 times per crystal with its orientation."""
    nz, ny, nx = density.shape
    nm = 10.0 / voxel_size
    count = rng.integers(1, 4) if count is None else count
    for _ in range(count):
        radius = rng.uniform(20, 80) * nm
        axes = radius * rng.uniform(0.6, 1.0, 3)
        centre = np.array([rng.choice([0.0, nz - 1.0]) + rng.uniform(-0.5, 0.3) * radius * rng.choice([-1, 1]),
                           rng.uniform(0, ny), rng.uniform(0, nx)])
        lo = np.maximum(np.floor(centre - axes - 2), 0).astype(int)
        hi = np.minimum(np.ceil(centre + axes + 3), density.shape).astype(int)
        if np.any(hi <= lo):
            continue
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        grids = np.ogrid[box]
        r = np.sqrt(sum(((g - c) / a) ** 2 for g, c, a in zip(grids, centre, axes)))
        body = 0.5 - 0.5 * np.tanh((r - 1.0) * radius / 0.7)
        density[box] += CONTAMINATION * body * _texture(body.shape, rng, sigma=2.0, amount=0.15)
        labels[box][body >= 0.5] = LABELS["contamination"]
        if absorption is not None:      # drawn only then, so that phase-only volumes keep their random stream
            absorption[box] += attenuation(removed) * rng.uniform(0.5, 1.5) * body
