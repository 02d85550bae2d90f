"""Training patches: random, augmented patches cut from the training ``Sample``s (with their 2.5D z-context), the
fixed validation patches, and the targets the network learns (one channel, or one per class). With
``config.ignore_labels`` or ``config.annotated_slices``, targets carry one more channel, 1 where the voxel is
annotated and 0 where it is not, which the losses and the validation figures use as a weight; patches are then
centred on annotated voxels. With ``config.hard_negative_bias``, some patches are centred on the rims of labelled
negatives (``config.hard_negative_labels``), which look most like membrane.
"""
from dataclasses import asdict

import numpy as np

from ..core import tiling
from . import augment
from .config import TrainConfig
from .data import IGNORE

VAL_PATCHES = 8                 # fixed validation patches per item


class PatchSampler:
    """Random augmented patches from a list of Samples; with ``synthetic`` Samples (GAN pairs), a fraction
    ``config.synthetic_fraction`` of the patches is cut from those instead, whatever their number."""

    def __init__(self, samples, config: TrainConfig, seed, synthetic=()):
        self.pools = [(list(group), _size_weights(group)) for group in (samples, synthetic) if len(group)]
        self.c = config
        self.rng = np.random.default_rng(seed)

    def batch(self, n):
        xs, ys = zip(*(self.one() for _ in range(n)))
        return np.stack(xs), np.stack(ys)

    def one(self):
        c, rng = self.c, self.rng
        # without synthetic pairs, no draw: the patch stream stays what it was before they existed
        mixed = len(self.pools) > 1 and rng.random() < c.synthetic_fraction
        pool, weights = self.pools[-1 if mixed else 0]
        s = pool[rng.choice(len(pool), p=weights)]
        depth = s.image.shape[0]
        # cut a region larger than the patch, so rotation and zoom do not pull in much fill
        size = int(np.ceil(c.patch * 1.5))
        z, r0, c0 = self._centre(s, size)
        neighbours = tiling.context_slices(z, depth, c.context, s.z_spacing, c.context_step)
        if s.is_2d or rng.random() < c.context_dropout:
            neighbours = [((z, 1.0),)] * c.context
        reflect = c.border == "reflect"
        stack = tiling.blend_slices(lambda i: tiling.crop(s.image[i], r0, c0, size, reflect=reflect), neighbours)
        label = tiling.crop(s.labels[z], r0, c0, size, reflect=reflect)
        if c.augment:
            stack, label = augment.geometric(stack, label, rng, c.patch, c.rot90, reflect)
            if c.style > 0:
                stack = augment.restyle(stack, rng, c.style)
            if c.intensity > 0:
                stack = augment.jitter_intensity(stack, rng, c.intensity)
            if c.invert > 0 and rng.random() < c.invert:
                stack = [-a for a in stack]
        else:
            off = (size - c.patch) // 2
            stack = [a[off:off + c.patch, off:off + c.patch] for a in stack]
            label = label[off:off + c.patch, off:off + c.patch]
        x = np.stack(stack)[..., None] if c.context > 1 else stack[0][..., None]
        return x.astype(np.float32), _target(label, c.classes, is_partial(c))

    def _centre(self, s, size):
        depth, rows, cols = s.image.shape
        partial = is_partial(self.c)
        membrane = ((s.labels > 0) & (s.labels != IGNORE)) if partial else s.labels
        # no draw when off, so that the patch stream stays what it was before rims could be chosen
        if self.c.hard_negative_bias > 0 and self.rng.random() < self.c.hard_negative_bias \
                and s.hard_rims is not None and len(s.hard_rims):
            z, y, x = s.hard_rims[self.rng.integers(len(s.hard_rims))]
        elif self.rng.random() < self.c.foreground_bias and membrane.any():
            zz, yy, xx = np.nonzero(membrane[:, ::4, ::4])
            i = self.rng.integers(len(zz))
            z, y, x = zz[i], yy[i] * 4, xx[i] * 4
        else:
            z, y, x = self.rng.integers(depth), self.rng.integers(rows), self.rng.integers(cols)
            # partial annotations: draw again until the centre is annotated (a few tries; most maps are dense)
            for _ in range(20 if partial else 0):
                if s.labels[z, y, x] != IGNORE:
                    break
                z, y, x = self.rng.integers(depth), self.rng.integers(rows), self.rng.integers(cols)
        return int(z), int(y) - size // 2, int(x) - size // 2


def _size_weights(samples):
    """Draw items in proportion to their size, so that every pixel is equally likely."""
    w = np.array([s.image.size for s in samples], float)
    return w / w.sum()


def is_partial(config):
    """Whether the label maps may leave voxels unannotated (their targets then carry a weight channel)."""
    return bool(config.ignore_labels or config.annotated_slices)


def _target(label, classes, weighted=False):
    known = label != IGNORE
    if classes == 1:
        target = ((label > 0) & known).astype(np.float32)[..., None]
    else:
        target = np.eye(classes, dtype=np.float32)[np.minimum(np.where(known, label, 0), classes - 1)]
    return np.concatenate([target, known[..., None].astype(np.float32)], axis=-1) if weighted else target


def split_target(targets, classes):
    """(the class channels, the annotated-voxel weight or None) of targets (..., C) or (..., C + 1)."""
    if targets.shape[-1] > classes:
        return targets[..., :classes], targets[..., classes] > 0.5
    return targets, None


def foreground(a):
    """The membrane probability of network outputs (or class targets) (..., C): the one channel of a binary
    model, 1 - P(background) of a multi-class one, as ``segment`` writes it."""
    return a[..., 0] if a.shape[-1] == 1 else 1.0 - a[..., 0]


def fixed_patches(samples, config, per_sample=VAL_PATCHES, seed=1234):
    """A deterministic validation set: un-augmented patches with full context, ``per_sample`` from each item."""
    c = TrainConfig(**dict(asdict(config), augment=False, context_dropout=0.0, foreground_bias=0.5))
    xs, ys = [], []
    for i, s in enumerate(samples):
        sampler = PatchSampler([s], c, seed + i)
        x, y = sampler.batch(per_sample)
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)
