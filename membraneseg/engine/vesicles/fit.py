"""Spheres and ellipsoids fitted to points on a vesicle's membrane, and points and distances on a fitted surface.

Both fits are algebraic least squares (linear, so fast and with no starting guess): a sphere
|p|^2 = 2 c.p + d, and a general quadric with nine terms whose matrix must be positive definite for an ellipsoid.
Points are centred and scaled first, so the quadric's normal equations stay well conditioned. The points of a
vesicle in a tomogram cover a band around its equator (the missing wedge erases its poles), which fixes a sphere
well and an ellipsoid's z axis poorly; the caller keeps the ellipsoid only where it agrees with the sphere.
"""
from typing import NamedTuple

import numpy as np

GOLDEN_ANGLE = np.pi * (3 - np.sqrt(5))


class Surface(NamedTuple):
    centre: np.ndarray   # (z, y, x), voxels
    axes: np.ndarray     # semi-axes, voxels, largest first
    rot: np.ndarray      # columns: the directions of the semi-axes in (z, y, x)
    rms: float           # root mean square distance of the fitted points from the surface, voxels

    @property
    def radius(self):
        """The radius of the sphere of the same volume."""
        return float(np.prod(self.axes) ** (1 / 3))


def fit_sphere(points):
    """The sphere through ``points`` (n, 3) in the least-squares sense."""
    points = np.asarray(points, np.float64)
    mean = points.mean(axis=0)
    p = points - mean
    design = np.column_stack([2 * p, np.ones(len(p))])
    solution = np.linalg.lstsq(design, (p ** 2).sum(axis=1), rcond=None)[0]
    centre, radius = solution[:3], np.sqrt(max(solution[3] + solution[:3] @ solution[:3], 0.0))
    rms = float(np.sqrt(np.mean((np.linalg.norm(p - centre, axis=1) - radius) ** 2)))
    return Surface(centre + mean, np.full(3, radius), np.eye(3), rms)


def fit_ellipsoid(points):
    """The ellipsoid through ``points`` (n, 3) in the least-squares sense, or None when the best quadric is not an
    ellipsoid (too few points, or points that fix only part of it)."""
    points = np.asarray(points, np.float64)
    if len(points) < 12:
        return None
    mean = points.mean(axis=0)
    scale = float(np.sqrt(((points - mean) ** 2).sum(axis=1).mean())) or 1.0
    p = (points - mean) / scale
    z, y, x = p.T
    design = np.column_stack([z * z, y * y, x * x, 2 * z * y, 2 * z * x, 2 * y * x, 2 * z, 2 * y, 2 * x])
    v = np.linalg.lstsq(design, np.ones(len(p)), rcond=None)[0]
    quad = np.array([[v[0], v[3], v[4]], [v[3], v[1], v[5]], [v[4], v[5], v[2]]])
    try:
        centre = -np.linalg.solve(quad, v[6:])
    except np.linalg.LinAlgError:
        return None
    k = 1 + centre @ quad @ centre
    values, vectors = np.linalg.eigh(quad / k) if k > 0 else (np.array([-1.0]), None)
    if np.any(values <= 0):
        return None
    order = np.argsort(values)            # smallest eigenvalue: the longest axis
    axes = scale / np.sqrt(values[order])
    surface = Surface(centre * scale + mean, axes, vectors[:, order], 0.0)
    return surface._replace(rms=float(np.sqrt(np.mean(distance(surface, points) ** 2))))


def distance(surface, points):
    """Signed distance (voxels, positive outside) of ``points`` (n, 3) from the surface, to first order: the
    implicit function over its gradient's length, exact for a sphere."""
    local = (np.asarray(points, np.float64) - surface.centre) @ surface.rot / surface.axes
    level = np.linalg.norm(local, axis=1)
    slope = np.linalg.norm(local / surface.axes, axis=1)
    return (level - 1) * level / np.maximum(slope, 1e-9)


def surface_points(surface, n=600):
    """``n`` points spread evenly over the surface (a Fibonacci lattice on the unit sphere, stretched)."""
    i = np.arange(n) + 0.5
    cos_polar = 1 - 2 * i / n
    sin_polar = np.sqrt(1 - cos_polar ** 2)
    unit = np.column_stack([cos_polar, sin_polar * np.cos(GOLDEN_ANGLE * i), sin_polar * np.sin(GOLDEN_ANGLE * i)])
    return surface.centre + (unit * surface.axes) @ surface.rot.T


def best_surface(points, max_axis_ratio=2.0, gain=0.8):
    """The sphere fit, replaced by the ellipsoid fit where that is an ellipsoid close to the sphere (its centre
    within a quarter of the radius, its axes within ``max_axis_ratio`` of the radius) and fits the points clearly
    more closely (rms below ``gain`` times the sphere's: with six more free terms it always fits a little
    better)."""
    sphere = fit_sphere(points)
    ellipsoid = fit_ellipsoid(points)
    if ellipsoid is None:
        return sphere, False
    r = sphere.axes[0]
    close = (np.linalg.norm(ellipsoid.centre - sphere.centre) <= 0.25 * r
             and ellipsoid.axes[0] <= max_axis_ratio * r and ellipsoid.axes[-1] >= r / max_axis_ratio)
    if close and ellipsoid.rms < gain * sphere.rms:
        return ellipsoid, True
    return sphere, False
