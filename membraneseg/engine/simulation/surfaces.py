"""Smooth parametric membrane surfaces for the realistic phantoms (scene.py places them): ellipsoids, tori and
undulating sheets, each with a signed distance (exact or first order), points sampled on it, its bounds and area,
all in voxel units (z, y, x); and Membrane, a surface with the bilayer drawn on it.
"""
from dataclasses import dataclass

import numpy as np


def _local(rot, centre, z, y, x):
    """Coordinates in a surface's own frame (columns of ``rot`` are its axes); broadcasts open grids."""
    d = (z - float(centre[0]), y - float(centre[1]), x - float(centre[2]))
    return [sum(float(rot[j, i]) * d[j] for j in range(3)) for i in range(3)]


@dataclass(eq=False)
class Ellipsoid:
    centre: np.ndarray
    axes: np.ndarray
    rot: np.ndarray

    def distance(self, z, y, x):
        """Signed distance to the surface to first order (exact for a sphere): implicit function over its
        gradient, which stays right where the surface is oblique to the radius."""
        q = _local(self.rot, self.centre, z, y, x)
        r = np.sqrt(sum((qi / float(a)) ** 2 for qi, a in zip(q, self.axes)))
        grad = np.sqrt(sum((qi / float(a) ** 2) ** 2 for qi, a in zip(q, self.axes)))
        return (r - 1) * r / np.maximum(grad, 1e-6)

    def sample(self, rng, n):
        u = rng.normal(size=(n, 3))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        return self.centre + (u * self.axes) @ self.rot.T

    def bounds(self):
        return self.centre - self.axes.max(), self.centre + self.axes.max()

    def area(self):
        return 4 * np.pi * np.mean(self.axes) ** 2


@dataclass(eq=False)
class Torus:
    centre: np.ndarray
    major: float
    minor: float
    rot: np.ndarray

    def distance(self, z, y, x):
        q = _local(self.rot, self.centre, z, y, x)
        ring = np.sqrt(q[0] ** 2 + q[1] ** 2) - self.major
        return np.sqrt(ring ** 2 + q[2] ** 2) - self.minor

    def sample(self, rng, n):
        phi, psi = rng.uniform(0, 2 * np.pi, (2, n))
        ring = self.major + self.minor * np.cos(psi)
        q = np.stack([ring * np.cos(phi), ring * np.sin(phi), self.minor * np.sin(psi)], axis=1)
        return self.centre + q @ self.rot.T

    def bounds(self):
        return self.centre - self.major - self.minor, self.centre + self.major + self.minor

    def area(self):
        return 4 * np.pi ** 2 * self.major * self.minor


@dataclass(eq=False)
class Sheet:
    """An undulating sheet: height h(u, v) = sum of a few sine waves over a plane, whose curvature varies."""
    centre: np.ndarray
    rot: np.ndarray
    waves: np.ndarray       # rows (k_u, k_v, amplitude, phase)
    extent: float           # half-size of the region sampled for surface points

    def _height(self, u, v):
        h = gu = gv = 0
        for ku, kv, amp, phase in self.waves:
            arg = float(ku) * u + float(kv) * v + float(phase)
            h = h + float(amp) * np.sin(arg)
            c = float(amp) * np.cos(arg)
            gu, gv = gu + float(ku) * c, gv + float(kv) * c
        return h, gu, gv

    def distance(self, z, y, x):
        u, v, w = _local(self.rot, self.centre, z, y, x)
        h, gu, gv = self._height(u, v)
        return (w - h) / np.sqrt(1 + gu ** 2 + gv ** 2)

    def sample(self, rng, n):
        u, v = rng.uniform(-self.extent, self.extent, (2, n))
        h = self._height(u, v)[0] + np.zeros(n)
        return self.centre + np.stack([u, v, h], axis=1) @ self.rot.T

    def bounds(self):
        return None         # crosses the whole volume

    def area(self):
        return (2 * self.extent) ** 2


@dataclass(eq=False)
class Membrane:
    surface: object
    kind: str               # "membrane" or "vesicle" (a vesicle membrane)
    thickness: float        # voxels between leaflet centres
    sigma: float            # rendered leaflet sigma, voxels
    amplitude: float

    @property
    def half_width(self):
        """Half-thickness of the labelled band."""
        return max(self.thickness / 2 + self.sigma, 1.0)

    @property
    def reach(self):
        return self.thickness / 2 + 4 * self.sigma


def distance_at(surface, points):
    points = np.asarray(points, float).reshape(-1, 3)
    return surface.distance(points[:, 0], points[:, 1], points[:, 2])


def normals_at(surface, points, eps=0.5):
    """Unit normals (direction of increasing distance) by central differences."""
    grad = np.stack([distance_at(surface, points + e) - distance_at(surface, points - e)
                     for e in np.eye(3) * eps], axis=1)
    return grad / np.maximum(np.linalg.norm(grad, axis=1, keepdims=True), 1e-9)
