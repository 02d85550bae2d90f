"""Find the vesicles of a membrane mask: closed, roughly spherical or ellipsoidal membrane compartments within a
size range, each with its centre, radius, semi-axes, how complete its membrane is, and a confidence.

The steps:
1. Rings of membrane around a lumen in each z-slice, with points in the middle of the membrane, chained across z
   (``rings``).
2. A sphere (or, where it fits clearly better and agrees, an ellipsoid) fitted to each chain's points (``fit``).
3. Chains of one vesicle split by a gap in z (where a nested vesicle touches it from inside and cuts its lumen in
   two, say) are merged: same centre and size. Nested vesicles, which share a centre but not a size, stay two.
   Vesicles whose rings cross too few slices for their size are dropped: a real vesicle's rings span most of its
   diameter, a speck's one or two slices.
4. The size range (diameter in nm: large compartments and organelles are not vesicles) and the completeness: the
   fraction of points spread over the fitted surface, inside the volume, that have membrane within the membrane's
   half width (measured across its rings) plus one voxel. The missing wedge leaves a whole vesicle in a tomogram
   about half to three quarters complete.

Confidence is completeness times exp(-rms / (half width + 1)), rms being how far the ring points lie from the
fitted surface: 1 for a whole, perfect sphere. A 2D image is one slice: each ring is a vesicle's cross-section and
its circle is reported (radius in the image plane, z 0).
"""
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..core.tiling import box_around
from . import fit, rings

SURFACE_SAMPLES = 600
MAX_MEMBRANE_NM = 15.0     # a mask's membrane band is narrower than this; wider means two membranes merged


@dataclass
class Search:
    """What counts as a vesicle."""
    min_diameter: float = 20.0        # nm, outer diameter at the middle of the membrane
    max_diameter: float = 150.0       # nm
    min_completeness: float = 0.4     # fraction of the fitted surface with membrane on it
    min_extent: float = 0.25          # z-slices with rings, as a fraction of the diameter (volumes only)

    def check(self):
        if not 0 < self.min_diameter < self.max_diameter:
            raise ValueError("the diameters must satisfy 0 < minimum < maximum (got %g and %g nm)"
                             % (self.min_diameter, self.max_diameter))
        if not 0 <= self.min_completeness <= 1 or not 0 <= self.min_extent <= 1:
            raise ValueError("the completeness and the extent are fractions between 0 and 1")
        return self


@dataclass
class Vesicle:
    surface: fit.Surface     # the middle of the membrane, voxels
    completeness: float
    confidence: float
    rings: int               # z-slices in which its membrane is a closed ring
    ellipsoid: bool          # the surface is a fitted ellipsoid (else a sphere)
    half_width: float        # half the width of its membrane in the mask, voxels

    @property
    def centre(self):
        return self.surface.centre

    @property
    def radius(self):
        return self.surface.radius


def find(mask, voxel_size, search=None):
    """The vesicles of a boolean (Z, Y, X) mask of ``voxel_size`` Å, sorted by z, y, x; and a dict of counts saying
    what was found and dropped at each step."""
    search = (search or Search()).check()
    mask = np.asarray(mask, bool)
    flat = mask.shape[0] == 1
    per_nm = 10.0 / voxel_size
    r_min, r_max = search.min_diameter / 2 * per_nm, search.max_diameter / 2 * per_nm
    chains = rings.find_chains(mask, min_area=4, max_area=np.pi * r_max ** 2 * 1.5,
                               max_width=max(3.0, MAX_MEMBRANE_NM * per_nm))
    info = dict(chains=len(chains), too_short=0, outside_size_range=0, merged=0, incomplete=0)
    candidates = []
    for chain in chains:
        if not flat and len(chain.rings) < 2:    # a lone ring in a volume: a speck, or a pole
            info["too_short"] += 1
            continue
        points = chain.points()
        surface, is_ellipsoid = (fit.fit_sphere(points), False) if flat else fit.best_surface(points)
        candidates.append(_Candidate(surface, is_ellipsoid, list(chain.rings), points))
    found = []
    for c in _merge(candidates, info):
        width = float(np.median([r.half_width for r in c.rings]))
        # a vesicle's rings span most of its diameter (a split chain counts whole once merged)
        if not flat and len(c.rings) < max(3, search.min_extent * 2 * c.surface.radius):
            info["too_short"] += 1
            continue
        if not r_min <= c.surface.radius <= r_max:
            info["outside_size_range"] += 1
            continue
        complete = completeness(mask, c.surface, width, flat)
        if complete < search.min_completeness:
            info["incomplete"] += 1
            continue
        confidence = complete * float(np.exp(-c.surface.rms / (width + 1)))
        found.append(Vesicle(c.surface, round(complete, 3), round(confidence, 3), len(c.rings), c.ellipsoid,
                             round(width, 2)))
    found.sort(key=lambda v: tuple(np.round(v.centre, 1)))
    info["vesicles"] = len(found)
    return found, info


@dataclass
class _Candidate:
    """A chain of rings (or several, once merged) and the surface fitted to their points."""
    surface: fit.Surface
    ellipsoid: bool
    rings: list
    points: np.ndarray


def _merge(candidates, info):
    """Join candidates that are one vesicle (centres within 30 % of the radius, radii within 25 %), refitting
    their points together, largest first."""
    kept = []
    for c in sorted(candidates, key=lambda c: -len(c.points)):
        for other in kept:
            r = max(c.surface.radius, other.surface.radius)
            if np.linalg.norm(c.surface.centre - other.surface.centre) <= 0.3 * r \
                    and 0.8 <= c.surface.radius / other.surface.radius <= 1.25:
                other.points = np.concatenate([other.points, c.points])
                other.surface, other.ellipsoid = fit.best_surface(other.points)
                other.rings += c.rings
                info["merged"] += 1
                break
        else:
            kept.append(c)
    return kept


def completeness(mask, surface, width, flat=False):
    """The fraction of points spread over ``surface`` (inside the volume) with membrane within ``width`` + 1
    voxels; for a 2D image, of points around the circle in the image plane."""
    if flat:
        angle = np.linspace(0, 2 * np.pi, SURFACE_SAMPLES // 4, endpoint=False)
        r = surface.axes[0]
        points = surface.centre + np.column_stack([0 * angle, r * np.cos(angle), r * np.sin(angle)])
    else:
        points = fit.surface_points(surface, SURFACE_SAMPLES)
    points = points[np.all((points >= -0.5) & (points <= np.array(mask.shape) - 0.5), axis=1)]
    if not len(points):
        return 0.0
    reach = width + 1.0
    box, _ = box_around(mask.shape, points.min(axis=0), points.max(axis=0), reach + 1)
    crop = np.asarray(mask[box], bool)
    if not crop.any():
        return 0.0
    to_membrane = ndimage.distance_transform_edt(~crop)
    lo = np.array([b.start for b in box])
    idx = np.clip(np.rint(points - lo).astype(int), 0, np.array(crop.shape) - 1)
    return float(np.mean(to_membrane[tuple(idx.T)] <= reach))


def label_map(mask, vesicles):
    """uint16 (Z, Y, X): the membrane voxels of each vesicle (mask voxels within its half width + 1 voxel of its
    fitted surface) numbered 1, 2, ... in the order of ``vesicles``; where two vesicles touch, each voxel goes to
    the nearer surface. Vesicle membrane the mask does not have (the poles) stays 0."""
    labels = np.zeros(mask.shape, np.uint16)
    nearest = np.full(mask.shape, np.inf, np.float32)
    for number, v in enumerate(vesicles, 1):
        s, reach = v.surface, v.half_width + 1.0
        box, grids = box_around(mask.shape, s.centre - s.axes[0], s.centre + s.axes[0], reach)
        if box is None:
            continue
        grid = np.stack(np.broadcast_arrays(*grids), -1)
        d = np.abs(fit.distance(s, grid.reshape(-1, 3))).reshape(grid.shape[:3]).astype(np.float32)
        take = np.asarray(mask[box], bool) & (d <= reach) & (d < nearest[box])
        labels[box][take] = number
        nearest[box][take] = d[take]
    return labels
