"""Realistic synthetic tomograms with exact labels, in the spirit of PolNet (Martínez-Sánchez et al. 2024).

A random scene (scene.py) of membranes (spheres, ellipsoids, tori, undulating sheets and cell-like boundaries),
filaments (microtubules, actin) and dense particles (macromolecule clusters in the cytosol and on membranes, gold
beads) is rendered here as a density map (positive where there is matter, 0 for ice) and a label map, and imaged by
tomography.py: a tilt series with misalignment and noise, reconstructed by WBP, so the missing wedge and its
artefacts are real. The tomogram is negated (membranes dark, as in real data) and normalised to mean 0 and
standard deviation 1.

Sizes are physical and converted with the voxel size. Membranes have the double-Gaussian profile of
phantoms.bilayer: leaflet centres 25-35 Å apart, leaflet sigma 3.5-5 Å (scene.LEAFLET_SIGMA). A leaflet is
rendered no sharper than sigma 0.5 voxel, as a narrower Gaussian sampled on the grid aliases, with its peak lowered
to keep its mass: at 10 Å per voxel every leaflet is 0.5 voxel wide and the leaflets of a 30 Å bilayer are 3
voxels apart; at 40 Å the two leaflets merge into one faint line, as in a real tomogram binned that far.

Labels (LABELS): 0 background; 1 membrane (cell boundaries, sheets, organelles, tori); 2 vesicle membrane (closed
spheres and ellipsoids of radius 15 to about 60 nm); 3 filament (microtubule walls, actin); 4 macromolecule (protein
particles and gold beads, the dense non-membrane particles). A membrane voxel lies within half the bilayer
thickness plus one rendered leaflet sigma of the mid-surface, and within at least 1 voxel, so the band is 3-5
voxels thick at 10 Å and never thinner than 2; the other classes are labelled where their own density reaches half
its peak. Membranes are drawn last and win where classes touch.
"""
import time
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from ..core.tiling import box_around
from . import tomography
from .phantoms import bilayer
from .scene import FILAMENTS, build_scene
from .surfaces import normals_at

LABELS = {"background": 0, "membrane": 1, "vesicle": 2, "filament": 3, "macromolecule": 4}
HIDDEN_LABEL = 7        # raw phantoms: membrane the missing wedge hides (5 and 6 are negatives.LABELS)
HIDDEN_ANGLE = 10.0     # degrees: a membrane never seen closer than this to edge-on is labelled hidden
MEMBRANE_LABELS = (LABELS["membrane"], LABELS["vesicle"])
SNR_RANGE = (1.0, 2.0)          # the paper's, for tilt series (see tomography.add_noise)
PROTEIN, GOLD = 1.0, 4.0        # density relative to ice; a membrane leaflet peaks at 0.8-1.2


def membrane_mask(labels):
    """The binary membrane mask (uint8 0/1) of a label map: membranes and vesicle membranes."""
    return np.isin(labels, MEMBRANE_LABELS).astype(np.uint8)


# ----------------------------------------------------------------------------- rendering
def _render_particles(scene, density, labels):
    """Protein particles: points spread evenly through each lobe, splatted (trilinear) and blurred by a Gaussian of
    1.5 nm, so every particle is a lumpy body of density PROTEIN with a soft edge. One small box per particle."""
    sigma = max(1.5 * scene.nm, 0.7)
    rng = np.random.default_rng(len(scene.particles))     # texture only: rendering depends on the scene alone
    for lobes in scene.particles:
        points, weights = [], []
        for centre, radius in lobes:
            volume = 4 / 3 * np.pi * radius ** 3
            n = max(1, int(round(volume / sigma ** 3)))
            u = rng.normal(size=(n, 3))
            u *= rng.uniform(0, 1, (n, 1)) ** (1 / 3) * radius / np.linalg.norm(u, axis=1, keepdims=True)
            points.append(centre + u)
            weights.append(np.full(n, PROTEIN * volume / n))
        points, weights = np.concatenate(points), np.concatenate(weights)
        box, _ = box_around(scene.shape, points.min(0), points.max(0), 3 * sigma + 2)
        if box is None:
            continue
        size = tuple(s.stop - s.start for s in box)
        base = np.floor(points).astype(int)
        frac = points - base
        base -= [s.start for s in box]
        flat, vals = [], []
        for corner in np.ndindex(2, 2, 2):
            idx = base + corner
            ok = np.all((idx >= 0) & (idx < size), axis=1)
            flat.append(np.ravel_multi_index(idx[ok].T, size))
            vals.append((weights * np.prod(np.where(corner, frac, 1 - frac), axis=1))[ok])
        splat = np.bincount(np.concatenate(flat), np.concatenate(vals), int(np.prod(size))).reshape(size)
        blurred = ndimage.gaussian_filter(splat.astype(np.float32), sigma, truncate=3.0)
        density[box] += blurred
        labels[box][blurred >= 0.5 * PROTEIN] = LABELS["macromolecule"]


def _render_gold(scene, density, labels):
    for centre, radius in scene.gold:
        box, grids = box_around(scene.shape, centre - radius, centre + radius, 3)
        if box is None:
            continue
        z, y, x = grids
        r = np.sqrt((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2)
        density[box] += GOLD * (0.5 - 0.5 * np.tanh((r - radius) / 0.5))   # a solid sphere with a 1-voxel edge
        labels[box][r <= radius] = LABELS["macromolecule"]


def _render_filaments(scene, density, labels, texture=False):
    """Each path is a chain of segments; the profile of the distance to the axis is merged by maximum, so joints
    and crossings are not counted twice. ``texture``: microtubule walls as rings of protofilaments."""
    work = np.zeros(scene.shape, np.float32)
    for kind, path in scene.filaments:
        spec = FILAMENTS[kind]
        radius, sigma = spec["radius"] * scene.nm, spec["sigma"] * scene.nm
        for a, b in zip(path[:-1], path[1:]):
            box, grids = box_around(scene.shape, np.minimum(a, b), np.maximum(a, b), radius + 3 * sigma)
            if box is None:
                continue
            z, y, x = grids
            ab = b - a
            pa = (z - a[0], y - a[1], x - a[2])
            t = np.clip(sum(float(ab[i]) * pa[i] for i in range(3)) / float(ab @ ab), 0, 1)
            radial = [pa[i] - t * float(ab[i]) for i in range(3)]
            dist = np.sqrt(sum(r ** 2 for r in radial))
            wall = PROTEIN * np.exp(-0.5 * ((dist - radius) / sigma) ** 2)
            if texture and spec.get("protofilaments"):
                # the wall is a ring of protofilaments: density varies around the axis, not a smooth tube
                e1 = np.cross(ab, [1.0, 0.0, 0.0] if abs(ab[0]) < 0.9 * np.linalg.norm(ab) else [0.0, 1.0, 0.0])
                e1 /= np.linalg.norm(e1)
                e2 = np.cross(ab / np.linalg.norm(ab), e1)
                angle = np.arctan2(sum(radial[i] * e2[i] for i in range(3)), sum(radial[i] * e1[i] for i in range(3)))
                wall = wall * (0.7 + 0.3 * np.cos(spec["protofilaments"] * angle))
            np.maximum(work[box], wall, out=work[box])
    density += work
    labels[work >= 0.5 * PROTEIN] = LABELS["filament"]


def hidden_by_wedge(normals, tilt_range, limit=HIDDEN_ANGLE):
    """True where a membrane of these unit normals (N, 3; z, y, x) is never seen within ``limit`` degrees of
    edge-on by a beam tilted about Y up to ±``tilt_range`` degrees: the missing wedge hides it (the tops and
    bottoms of vesicles). The beam at tilt a is (cos a, 0, sin a); n.b = A cos(a - phi) is 0 at some tilt when
    phi +- 90° is within the range, else smallest at an end of the range."""
    nz, nx = normals[:, 0], normals[:, 2]
    amplitude, phi = np.hypot(nz, nx), np.arctan2(nx, nz)
    r = np.deg2rad(tilt_range)
    edge_on = np.minimum(np.abs(phi - np.pi / 2), np.abs(phi + np.pi / 2)) <= r
    best = np.where(edge_on, 0.0, np.minimum(np.abs(amplitude * np.cos(r - phi)),
                                             np.abs(amplitude * np.cos(-r - phi))))
    return np.arcsin(np.clip(best, 0, 1)) > np.deg2rad(limit)


def _render_membranes(scene, density, labels, chunk_voxels=1 << 21, wedge=None):
    """Bilayers around each surface, a slab of Z planes at a time: the temporaries stay in cache, which makes a
    surface crossing the whole volume about 5 times faster than one pass over it. With ``wedge`` (the tilt range,
    degrees), membrane voxels the missing wedge hides are labelled HIDDEN_LABEL instead."""
    for m in scene.membranes:
        bounds = m.surface.bounds()
        box, grids = box_around(scene.shape, *(bounds or (None, None)), m.reach + 1)
        if box is None:
            continue
        z, y, x = grids
        planes = max(1, chunk_voxels // (y.size * x.size))
        for i in range(0, len(z), planes):
            slab = (slice(box[0].start + i, box[0].start + i + len(z[i:i + planes])), box[1], box[2])
            d = m.surface.distance(z[i:i + planes], y, x)
            density[slab] += m.amplitude * bilayer(d, m.thickness, m.sigma)
            band = np.abs(d) <= m.half_width
            labels[slab][band] = LABELS[m.kind]
            if wedge is not None and band.any():
                where = np.nonzero(band)
                points = np.stack([where[k] + s.start for k, s in enumerate(slab)], axis=1).astype(float)
                hidden = hidden_by_wedge(normals_at(m.surface, points), wedge)
                labels[tuple(w[hidden] + s.start for w, s in zip(where, slab))] = HIDDEN_LABEL


def render(scene, texture=False, wedge=None):
    """(density float32, labels uint8) of a scene; density is 0 for ice and positive for matter. ``texture`` draws
    microtubules with their protofilaments, ``wedge`` (a tilt range in degrees) labels the membrane the missing
    wedge hides apart (both off for the cell phantoms, whose figures were measured without)."""
    density = np.zeros(scene.shape, np.float32)
    labels = np.zeros(scene.shape, np.uint8)
    _render_particles(scene, density, labels)
    _render_gold(scene, density, labels)
    _render_filaments(scene, density, labels, texture)
    _render_membranes(scene, density, labels, wedge=wedge)
    return density, labels


# ----------------------------------------------------------------------------- the whole simulation
class Phantom(NamedTuple):
    tomogram: np.ndarray    # float32 (Z, Y, X), membranes dark, mean 0 and standard deviation 1
    labels: np.ndarray      # uint8 (Z, Y, X), values of LABELS
    density: np.ndarray     # float32, the noiseless specimen that was imaged
    angles: np.ndarray      # tilt angles, degrees
    shifts: np.ndarray      # (n_tilts, 2) misalignment (dy, dx) in pixels
    snr: float              # measured on the tilt series: noiseless variance over noise variance
    timings: dict           # seconds per stage
    vesicles: tuple = ()    # the scene's vesicles (truth_vesicles)


def truth_vesicles(scene):
    """The vesicles of a scene as the truth for finding them: dicts with ``centre`` (z, y, x) and ``axes`` (semi-axes,
    largest first) in voxels at the middle of the membrane, and ``radius``, that of the sphere of the same
    volume."""
    out = []
    for m in scene.membranes:
        if m.kind == "vesicle":
            axes = np.sort(np.asarray(m.surface.axes, float))[::-1]
            out.append(dict(centre=np.asarray(m.surface.centre, float), axes=axes,
                            radius=float(np.prod(axes) ** (1 / 3))))
    return tuple(out)


def generate(shape=(128, 256, 256), voxel_size=10.0, seed=0, tilt_range=60.0, tilt_step=3.0, snr=None):
    """Simulate one tomogram of ``shape`` (Z, Y, X) voxels of ``voxel_size`` Å; tilts every ``tilt_step`` degrees
    in ±``tilt_range``; ``snr`` as defined by tomography.add_noise, random in SNR_RANGE when None. The same seed
    gives the same phantom (the scene does not depend on ``snr``)."""
    rng = np.random.default_rng(seed)
    drawn_snr = rng.uniform(*SNR_RANGE)
    snr = drawn_snr if snr is None else float(snr)
    if snr <= 0:
        raise ValueError("the SNR must be positive")
    timings, clock = {}, [time.perf_counter()]

    def lap(stage):
        now = time.perf_counter()
        timings[stage] = now - clock[0]
        clock[0] = now

    scene = build_scene(shape, voxel_size, rng)
    lap("scene")
    density, labels = render(scene)
    lap("render")
    angles = tomography.tilt_angles(tilt_range, tilt_step)
    clean = tomography.project(density, angles)
    lap("project")
    shifts = tomography.misalignment(angles, rng)
    clean = tomography.shift_projections(clean, shifts)
    noisy, _ = tomography.add_noise(clean, snr, rng)
    measured = tomography.measure_snr(clean, noisy)
    del clean
    lap("misalign+noise")
    rec = tomography.wbp(noisy, angles, density.shape[0])
    lap("wbp")
    rec -= rec.mean()
    rec /= -max(float(rec.std()), 1e-12)        # negated: membranes dark
    return Phantom(rec.astype(np.float32), labels, density, angles, shifts, measured, timings, truth_vesicles(scene))


def cell_phantom(shape=(128, 256, 256), voxel_size=10.0, seed=0, tilt_range=60.0, tilt_step=3.0, snr=None):
    """(tomogram float32, labels uint8) of a realistic phantom; see generate()."""
    p = generate(shape, voxel_size, seed, tilt_range, tilt_step, snr)
    return p.tomogram, p.labels
