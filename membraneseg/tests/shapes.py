"""Membrane shells drawn where we know them, for the vesicle tests (numpy only: no Scipion)."""
import numpy as np

from membraneseg.engine.vesicles import fit


def shell(shape, centre, axes, half_width=1.5, rot=np.eye(3), caps=None):
    """Boolean (Z, Y, X): voxels within ``half_width`` of an ellipsoid's surface (``axes``: semi-axes along the
    columns of ``rot``, voxels). ``caps`` (degrees) leaves out the membrane whose normal is within that angle of z,
    as the missing wedge does."""
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).reshape(-1, 3)
    surface = fit.Surface(np.asarray(centre, float), np.asarray(axes, float), rot, 0.0)
    out = np.abs(fit.distance(surface, grid)) <= half_width
    if caps:
        local = (grid - surface.centre) @ rot / surface.axes ** 2
        normal_z = np.abs(local[:, 0]) / np.maximum(np.linalg.norm(local, axis=1), 1e-9)
        out &= normal_z < np.cos(np.deg2rad(caps))
    return out.reshape(shape)
