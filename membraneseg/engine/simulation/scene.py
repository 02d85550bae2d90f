"""Random cell-like scenes for the realistic phantoms (simulate.py): what is where, in voxel units (z, y, x).

Membranes are smooth parametric surfaces (surfaces.py): spheres and ellipsoids (vesicles of many sizes, some
nested, some touching; organelles with a double membrane; large cell-like boundaries crossing the volume), tori,
and undulating sheets (single, or as ER-like cisternae of two). Filaments (microtubules, actin bundles) are
worm-like paths that stop at membranes; particles are macromolecules of one to three lobes, in cytosolic clusters
or sitting on membranes, and gold beads. Sizes are drawn in nm and converted with the voxel size; counts scale
with the field of view. New structures keep clear of the membranes already placed (checked at points about 2
voxels apart, at most 20000 per surface), so bilayers do not cross inside the volume.
"""
from dataclasses import dataclass, field

import numpy as np

from .phantoms import _rotation
from .surfaces import Ellipsoid, Membrane, Sheet, Torus, distance_at, normals_at

REFERENCE_AREA_NM2 = 256 * 256  # structure counts are per 256 nm x 256 nm of field of view
# microtubule: wall centred 10.5 nm from the axis, 5 nm thick (sigma 2 nm); actin: 7 nm across (sigma 3 nm)
FILAMENTS = {"microtubule": dict(radius=10.5, sigma=2.0, persistence=2000.0, protofilaments=13),
             "actin": dict(radius=0.0, sigma=3.0, persistence=500.0)}


@dataclass(eq=False)
class Scene:
    shape: tuple
    voxel_size: float
    membranes: list = field(default_factory=list)
    filaments: list = field(default_factory=list)   # (kind, (n, 3) path points)
    particles: list = field(default_factory=list)   # lists of lobes (centre, radius) in voxels
    gold: list = field(default_factory=list)        # (centre, radius)

    @property
    def nm(self):
        """Voxels per nanometre."""
        return 10.0 / self.voxel_size

    def inside(self, points, margin=0.0):
        points = np.atleast_2d(points)
        return np.all((points >= -margin) & (points <= np.array(self.shape) - 1 + margin), axis=1)

    def clearance(self, points, skip=()):
        """Distance from each point to the nearest membrane mid-surface (inf without membranes)."""
        points = np.atleast_2d(points)
        best = np.full(len(points), np.inf)
        for m in self.membranes:
            if m not in skip:
                best = np.minimum(best, np.abs(distance_at(m.surface, points)))
        return best

    def particle_clearance(self, points):
        """Distance from each point to the nearest particle lobe or gold bead surface."""
        points = np.atleast_2d(points)
        spheres = [lobe for p in self.particles for lobe in p] + list(self.gold)
        if not spheres:
            return np.full(len(points), np.inf)
        centres = np.array([c for c, _ in spheres])
        radii = np.array([r for _, r in spheres])
        return (np.linalg.norm(points[:, None] - centres[None], axis=2) - radii).min(axis=1)

    def fits(self, surface, gap, skip, rng):
        """Whether ``surface`` keeps at least ``gap`` voxels from every membrane inside the volume, checked at
        points about 2 voxels apart (at most 20000)."""
        points = surface.sample(rng, int(np.clip(surface.area() / 4, 400, 20000)))
        points = points[self.inside(points)]
        return len(points) == 0 or self.clearance(points, skip).min() >= gap


# ----------------------------------------------------------------------------- building a scene
# Leaflet (head-group layer) sigma in Å: about 8-12 Å full width at half maximum, as in the electron-density profiles
# of phosphatidylcholine bilayers (e.g. Kucerka et al. 2008, Biophys J 95:2356, DOPC).
LEAFLET_SIGMA = (3.5, 5.0)


def _membrane(scene, rng, surface, kind):
    """A membrane on ``surface``: leaflets 25-35 Å apart (the paper's PolNet range), each of LEAFLET_SIGMA.

    A leaflet is rendered no sharper than sigma 0.5 voxel (a narrower Gaussian sampled on the grid aliases) and
    keeps its mass when widened: its peak falls as its width grows, so that a bilayer carries the same density per
    area at every voxel size. Widening it at a fixed peak, as before, gave a membrane at 40 Å per voxel four to six
    times the contrast of the same membrane at 10 Å."""
    thickness = rng.uniform(25, 35) / scene.voxel_size
    true_sigma = rng.uniform(*LEAFLET_SIGMA) / scene.voxel_size
    sigma = max(true_sigma, 0.5)
    return Membrane(surface, kind, thickness, sigma, rng.uniform(0.8, 1.2) * true_sigma / sigma)


def _try_add(scene, rng, make_surface, kind, gap_nm=1.0, tries=20, skip=()):
    """Add the first surface made by ``make_surface()`` that leaves ``gap_nm`` between bilayers; None if none fits."""
    for _ in range(tries):
        membrane = _membrane(scene, rng, make_surface(), kind)
        if scene.fits(membrane.surface, membrane.thickness + gap_nm * scene.nm, skip, rng):
            scene.membranes.append(membrane)
            return membrane
    return None


def _random_point(scene, rng):
    return rng.uniform(0, 1, 3) * (np.array(scene.shape) - 1)


def _add_large_membranes(scene, rng, count):
    """Cell-like boundaries, organelles with double membranes, ER-like cisternae, single sheets and tori."""
    nm, size = scene.nm, np.array(scene.shape, float)
    for _ in range(count):
        kind = rng.choice(["cell", "organelle", "cisterna", "sheet", "torus"], p=[0.3, 0.2, 0.2, 0.15, 0.15])
        if kind == "cell":
            # a large ellipsoid through a random point of the volume: a gently curved arc of a cell boundary
            def make():
                axes = rng.uniform(1.0, 3.0, 3) * size.max()
                rot, on = _rotation(rng), rng.normal(size=3)
                return Ellipsoid(_random_point(scene, rng) - (axes * on / np.linalg.norm(on)) @ rot.T, axes, rot)
            _try_add(scene, rng, make, "membrane")
        elif kind == "organelle":
            def make():
                return Ellipsoid(_random_point(scene, rng), rng.uniform(60, 200, 3) * nm, _rotation(rng))
            outer = _try_add(scene, rng, make, "membrane")
            if outer is not None:   # the inner membrane 8-20 nm inside, as in mitochondria and nuclei
                s, inset = outer.surface, outer.thickness + rng.uniform(8, 20) * nm
                if s.axes.min() > 2 * inset:
                    _try_add(scene, rng, lambda: Ellipsoid(s.centre, s.axes - inset, s.rot),
                             "membrane", tries=1, skip=(outer,), gap_nm=0.5)
        elif kind in ("cisterna", "sheet"):
            def make():
                k = 2 * np.pi / (rng.uniform(150, 600, 3) * nm)     # wavelengths 150-600 nm
                direction = rng.uniform(0, 2 * np.pi, 3)
                slope = rng.uniform(0.05, 0.35, 3)
                waves = np.stack([k * np.cos(direction), k * np.sin(direction), slope / k,
                                  rng.uniform(0, 2 * np.pi, 3)], axis=1)
                return Sheet(_random_point(scene, rng), _rotation(rng), waves, float(np.linalg.norm(size)) / 2)
            first = _try_add(scene, rng, make, "membrane")
            if first is not None and kind == "cisterna":   # a parallel sheet 20-60 nm away
                s = first.surface
                offset = s.rot[:, 2] * rng.choice([-1, 1]) * (first.thickness + rng.uniform(20, 60) * nm)
                _try_add(scene, rng, lambda: Sheet(s.centre + offset, s.rot, s.waves, s.extent),
                         "membrane", tries=1, skip=(first,))
        else:
            def make():
                minor = rng.uniform(10, 25) * nm
                return Torus(_random_point(scene, rng), minor + rng.uniform(15, 60) * nm, minor, _rotation(rng))
            _try_add(scene, rng, make, "membrane")


def _add_vesicles(scene, rng, count):
    """Vesicles of many sizes (radius 15-60 nm, most of them small, 40% ellipsoidal), some nested in a larger one,
    some touching another."""
    nm = scene.nm
    vesicles = []

    def free():
        radius = np.exp(rng.uniform(np.log(15), np.log(60))) * nm
        axes = radius * (rng.uniform(0.75, 1.25, 3) if rng.random() < 0.4 else np.ones(3))
        return Ellipsoid(_random_point(scene, rng), axes, _rotation(rng))

    def beside(host, inside):
        """A sphere at a random point of ``host``, inside it 3-15 nm from it, or outside it with mid-surfaces
        3.5-5.5 nm apart: the outer leaflets (at most 35 Å apart) nearly touch, and at 10 Å per voxel the two
        bilayers merge into one dark band."""
        points = host.surface.sample(rng, 20)
        point = points[np.argmax(scene.inside(points))]
        normal = normals_at(host.surface, point)[0]
        if inside:
            radius = rng.uniform(0.3, 0.7) * host.surface.axes.min()
            return Ellipsoid(point - normal * (radius + rng.uniform(3, 15) * nm), np.full(3, radius), np.eye(3))
        radius = np.exp(rng.uniform(np.log(15), np.log(40))) * nm
        gap = 35 / scene.voxel_size + rng.uniform(0, 2) * nm
        return Ellipsoid(point + normal * (radius + gap), np.full(3, radius), np.eye(3))

    for _ in range(count):
        mode = rng.choice(["free", "nested", "touching"], p=[0.6, 0.2, 0.2]) if vesicles else "free"
        host = vesicles[rng.integers(len(vesicles))] if vesicles else None
        if mode == "nested" and host.surface.axes.min() > 30 * nm:
            added = _try_add(scene, rng, lambda: beside(host, True), "vesicle")
        elif mode == "touching":
            added = _try_add(scene, rng, lambda: beside(host, False), "vesicle", gap_nm=0.0, skip=(host,))
        else:
            added = _try_add(scene, rng, free, "vesicle", gap_nm=2.0, tries=30)
        if added is not None:
            vesicles.append(added)


def _unit(rng):
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _grow(scene, rng, start, direction, kind, max_length):
    """A worm-like path through ``start``: grown both ways in steps of 5 nm that turn by random angles of variance
    step/persistence, until it leaves the volume, would touch a membrane, or reaches ``max_length`` (voxels)."""
    nm, spec = scene.nm, FILAMENTS[kind]
    step, reach = 5 * nm, (spec["radius"] + 2 * spec["sigma"] + 3) * nm
    halves = []
    for sign in (1, -1):
        p, d, path = np.array(start, float), sign * direction, []
        while len(path) * step < max_length / 2:
            p = p + step * d
            if not scene.inside(p, margin=reach)[0] or scene.clearance(p)[0] < reach:
                break
            path.append(p)
            d = d + rng.normal(0, np.sqrt(step / (spec["persistence"] * nm)), 3)
            d /= np.linalg.norm(d)
        halves.append(path)
    return np.array(halves[1][::-1] + [np.array(start, float)] + halves[0])


def _add_filaments(scene, rng, microtubules, actin_bundles):
    nm = scene.nm
    for kind, count in (("microtubule", microtubules), ("actin", actin_bundles)):
        reach = (FILAMENTS[kind]["radius"] + 2 * FILAMENTS[kind]["sigma"] + 3) * nm
        for _ in range(count):
            starts = [_random_point(scene, rng) for _ in range(10)]
            clear = [s for s in starts if scene.clearance(s)[0] >= reach]
            if not clear:
                continue
            direction = _unit(rng)
            if kind == "microtubule":   # long and stiff, so in a thin lamella mostly in its plane
                direction[0] *= 0.3
                direction /= np.linalg.norm(direction)
            strands = 1 if kind == "microtubule" else rng.integers(1, 5)
            length = (rng.uniform(300, 2000) if kind == "microtubule" else rng.uniform(50, 400)) * nm
            side = np.cross(direction, _unit(rng))
            side /= np.linalg.norm(side)
            for i in range(strands):    # actin bundles: parallel filaments 10 nm apart
                path = _grow(scene, rng, clear[0] + i * 10 * nm * side, direction, kind, length)
                if len(path) > 1:
                    scene.filaments.append((kind, path))


def _lobes(rng, centre, radius):
    """A particle as one to three overlapping spheres, so the shapes are irregular."""
    lobes = [(np.asarray(centre, float), radius)]
    for _ in range(rng.integers(0, 3)):
        lobes.append((centre + _unit(rng) * 0.6 * radius, radius * rng.uniform(0.5, 0.8)))
    return lobes


def _place(scene, rng, centre, radius, skip=()):
    """Add a particle if it keeps clear of membranes (except ``skip``) and of other particles."""
    if (scene.inside(centre)[0] and scene.clearance(centre, skip)[0] > radius + 3 * scene.nm
            and scene.particle_clearance(centre)[0] > radius):
        scene.particles.append(_lobes(rng, centre, radius))
        return True
    return False


def _add_particles(scene, rng, clusters, per_membrane):
    """Clusters of ribosome-sized particles (5-13 nm radius) in the cytosol, and smaller particles (3-7 nm) sitting
    on membranes, half embedded in them."""
    nm = scene.nm
    for _ in range(clusters):
        centre, spread = _random_point(scene, rng), rng.uniform(15, 40) * nm
        for _ in range(rng.integers(3, 16)):
            _place(scene, rng, centre + rng.normal(0, spread, 3), rng.uniform(5, 13) * nm)
    for membrane in list(scene.membranes):
        points = membrane.surface.sample(rng, 50)
        points = points[scene.inside(points)][:rng.poisson(per_membrane)]
        for p, n in zip(points, normals_at(membrane.surface, points)):
            radius = rng.uniform(3, 7) * nm
            centre = p + rng.choice([-1, 1]) * n * (membrane.thickness / 2 + 0.6 * radius)
            _place(scene, rng, centre, radius, skip=(membrane,))


def _add_gold(scene, rng, count):
    for _ in range(count):
        centre, radius = _random_point(scene, rng), rng.uniform(2.5, 7.5) * scene.nm
        if scene.clearance(centre)[0] > radius + 3 * scene.nm and scene.particle_clearance(centre)[0] > radius:
            scene.gold.append((centre, radius))


def build_scene(shape, voxel_size=10.0, rng=None, membranes=True, crowding=1.0, microtubules=None):
    """A random scene for a volume of ``shape`` (Z, Y, X) voxels of ``voxel_size`` Å. Counts scale with the field of
    view; however small the volume, one large membrane, two vesicles, one actin bundle and one particle cluster are
    tried (each is left out if it cannot be placed). ``membranes`` False leaves membranes out (a scene of
    negatives); ``crowding`` multiplies the number of particle clusters. ``microtubules`` (per reference field
    of view) makes a microtubule crop instead: that many microtubules (at least 3), the particles, no actin."""
    rng = rng if rng is not None else np.random.default_rng()
    scene = Scene(tuple(int(s) for s in shape), float(voxel_size))
    scale = scene.shape[1] * scene.shape[2] / scene.nm ** 2 / REFERENCE_AREA_NM2
    if membranes:
        _add_large_membranes(scene, rng, max(1, rng.poisson(1.5 * scale)))
        _add_vesicles(scene, rng, max(2, rng.poisson(10 * scale)))
    if microtubules:      # a crop around a microtubule bundle, as used to check what is called membrane there
        _add_filaments(scene, rng, max(3, rng.poisson(microtubules * scale)), 0)
    else:
        _add_filaments(scene, rng, rng.poisson(1.0 * scale), max(1, rng.poisson(3 * scale)))
    _add_particles(scene, rng, max(1, rng.poisson(3 * scale * crowding)), per_membrane=6 * min(scale, 1.0))
    _add_gold(scene, rng, rng.poisson(1.5 * scale))
    return scene
