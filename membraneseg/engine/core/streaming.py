"""Volumes computed slab by slab when indexed, so that a chain of preprocessing steps streams through a tomogram
with memory bounded by the slab, whatever the size of the tomogram.
"""
import numpy as np


class Lazy:
    """A (Z, Y, X) float32 volume whose planes are computed when indexed, so that a chain of steps streams
    slab by slab. Supports what the steps use: ``shape`` and indexing whose first index is an int or a slice.
    ``chunk_voxels`` is the slab size that suits the computation (see ``chunks``)."""
    ndim = 3

    def __init__(self, shape, planes, chunk_voxels=None):
        self.shape = tuple(int(s) for s in shape)
        self.size = int(np.prod(self.shape))
        self.chunk_voxels = chunk_voxels
        self._planes = planes          # planes(z0, z1) -> float32 array (z1 - z0, Y, X)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        z, rest = key[0], key[1:]
        if isinstance(z, (int, np.integer)):
            z = int(z) % self.shape[0]
            return self._planes(z, z + 1)[(0,) + rest]
        start, stop, step = z.indices(self.shape[0])
        if stop <= start:
            return np.empty((0,) + self.shape[1:], np.float32)[(slice(None),) + rest]
        return self._planes(start, stop)[::step][(slice(None),) + rest]


CHUNK_VOXELS = 8_000_000   # about 32 MB of float32 per slab when streaming


def chunks(volume):
    """(z0, z1) slabs covering a volume, of about the size its computation prefers."""
    voxels = getattr(volume, "chunk_voxels", None) or CHUNK_VOXELS
    planes = max(1, voxels // max(1, volume.shape[1] * volume.shape[2]))
    return [(z, min(volume.shape[0], z + planes)) for z in range(0, volume.shape[0], planes)]


def pointwise(volume, function):
    """The volume with ``function`` applied to every slab (float32)."""
    return Lazy(volume.shape, lambda a, b: function(np.asarray(volume[a:b], dtype=np.float32)))
