"""Closed membrane rings in each z-slice of a mask, and the chains they form across z.

A vesicle cut by a z-slice shows as a closed ring of membrane around its lumen. The missing wedge erases the top and
bottom of a vesicle in a tomogram, so its rings are what survives of it, and they stack into a chain through the
slices it crosses. A ring is found as a hole of the slice's mask: background the mask encloses, 4-connected as
scipy fills holes, so a ring closed only through a diagonal still counts. The lumen of the outer vesicle of a nested
pair is a hole with the inner vesicle in it; it is filled before it is measured, and the inner vesicle's lumen is
a hole of its own, so each gets its ring. Flat membranes that cross the slice enclose nothing, and neither do
vesicles cut off by the image border.

A ring's points lie in the middle of its membrane: from the inner face (half a pixel outside the boundary pixels
of the filled hole) half-way across the mask's band, walking away from the ring's centre. A band that sits off
the true membrane, or is wider than it, still gives its middle.
"""
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

# a hole less convex than this (area over the area of its convex hull) is a pocket between membranes, not a lumen
MIN_SOLIDITY = 0.8
# below this many pixels a hole's outline is too coarse to judge its convexity
SOLIDITY_MIN_AREA = 30


@dataclass
class Ring:
    z: int
    centre: np.ndarray       # (y, x) of the filled hole, pixels
    radius: float            # the filled hole's equivalent radius (sqrt(area / pi)), pixels
    points: np.ndarray       # (n, 3) z, y, x in the middle of the membrane
    half_width: float        # half the membrane's width across the ring, pixels (median)


@dataclass
class Chain:
    rings: list = field(default_factory=list)

    @property
    def last(self):
        return self.rings[-1]

    def points(self):
        return np.concatenate([r.points for r in self.rings])

    @property
    def z_extent(self):
        return self.rings[-1].z - self.rings[0].z + 1


def slice_rings(mask, z, min_area=4, max_area=None, max_width=12.0):
    """The rings of one z-slice (a 2D boolean mask): each hole of at least ``min_area`` and at most ``max_area``
    pixels once filled, convex enough to be a vesicle's lumen, with points in the middle of its membrane (at most
    ``max_width`` pixels wide)."""
    import cv2   # here, not at the top: the protocols import this package in Scipion's Python, which has no OpenCV
    holes = ndimage.binary_fill_holes(mask) & ~mask
    labels, _ = ndimage.label(holes)
    rings = []
    for i, box in enumerate(ndimage.find_objects(labels), 1):
        if box is None:
            continue
        lumen = ndimage.binary_fill_holes(labels[box] == i)
        area = int(lumen.sum())
        if area < min_area or (max_area is not None and area > max_area):
            continue
        padded = np.pad(lumen, 1).astype(np.uint8)
        contours, _ = cv2.findContours(padded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        outline = max(contours, key=len)[:, 0, ::-1].astype(np.float64) - 1   # (y, x) inside the box
        if area >= SOLIDITY_MIN_AREA:
            hull = cv2.contourArea(cv2.convexHull(outline[:, ::-1].astype(np.float32)))
            if hull <= 0 or cv2.contourArea(outline[:, ::-1].astype(np.float32)) / hull < MIN_SOLIDITY:
                continue
        origin = np.array([box[0].start, box[1].start], np.float64)
        ys, xs = np.nonzero(lumen)
        centre = np.array([ys.mean(), xs.mean()]) + origin
        outline += origin
        away = outline - centre
        away /= np.maximum(np.linalg.norm(away, axis=1, keepdims=True), 1e-9)
        middle, half = _across(mask, outline, away, max_width)
        points = np.column_stack([np.full(len(middle), float(z)), middle])
        rings.append(Ring(z, centre, float(np.sqrt(area / np.pi)), points, half))
    return rings


def _across(mask, outline, away, max_width, step=0.5):
    """Walk outwards from each boundary pixel of a lumen across the membrane: the points half-way between where the
    walk enters and leaves the mask's band (the middle of the membrane, however the band sits around the true
    membrane), and the median half width. A walk still in membrane after ``max_width`` pixels (a touching
    membrane merged with this one) takes the median width of the others."""
    steps = np.arange(0.0, max_width + 1 + step, step)
    where = outline[:, None, :] + steps[None, :, None] * away[:, None, :]
    idx = np.rint(where).astype(int)
    inside = np.all((idx >= 0) & (idx < np.array(mask.shape)), axis=2)
    idx = np.clip(idx, 0, np.array(mask.shape) - 1)
    on = mask[idx[..., 0], idx[..., 1]] & inside
    enter = np.argmax(on, axis=1)
    after = on | (np.arange(len(steps))[None, :] < enter[:, None])
    leave = np.argmin(after, axis=1)
    crossed = on.any(axis=1) & ~after.all(axis=1)
    typical = float(np.median(steps[leave[crossed]] - steps[enter[crossed]])) if crossed.any() else 1.0
    inner = np.where(on.any(axis=1), steps[enter] - step / 2, 0.5)
    width = np.where(crossed, steps[leave] - steps[enter], typical)
    return outline + (inner + width / 2)[:, None] * away, typical / 2


def link(rings_by_slice, max_gap=1):
    """Chains of rings across z: each ring joins the chain whose last ring (at most ``max_gap`` slices missing in
    between) is closest to it in centre and radius, if close enough to be the same vesicle, else starts a chain.
    Rings of a nested pair share a centre but not a radius, so the radius keeps them apart."""
    open_chains, done = [], []
    for z in sorted(rings_by_slice):
        still = []
        for chain in open_chains:
            (still if z - chain.last.z <= max_gap + 1 else done).append(chain)
        open_chains = still
        pairs = []
        for i, ring in enumerate(rings_by_slice[z]):
            for j, chain in enumerate(open_chains):
                if chain.last.z >= z:
                    continue
                cost = _step_cost(chain.last, ring)
                if cost is not None:
                    pairs.append((cost, i, j))
        taken_rings, taken_chains = set(), set()
        for cost, i, j in sorted(pairs):
            if i in taken_rings or j in taken_chains:
                continue
            taken_rings.add(i)
            taken_chains.add(j)
            open_chains[j].rings.append(rings_by_slice[z][i])
        open_chains += [Chain([r]) for i, r in enumerate(rings_by_slice[z]) if i not in taken_rings]
    return done + open_chains


def _step_cost(a, b):
    """How unlike two rings in nearby slices are (None: not the same vesicle). A sphere's rings share a centre and
    change radius slowly except near its poles, where the missing wedge has usually erased them anyway."""
    big = max(a.radius, b.radius)
    shift = float(np.linalg.norm(a.centre - b.centre))
    if shift > max(2.0, 0.35 * big) or not 0.6 <= (b.radius + 1) / (a.radius + 1) <= 1 / 0.6:
        return None
    return shift / big + abs(a.radius - b.radius) / big


def find_chains(mask, min_area=4, max_area=None, max_width=12.0, max_gap=1):
    """Every chain of rings of a (Z, Y, X) boolean mask."""
    found = {}
    for z in range(mask.shape[0]):
        if mask[z].any():
            rings = slice_rings(np.asarray(mask[z], bool), z, min_area, max_area, max_width)
            if rings:
                found[z] = rings
    return link(found, max_gap)
