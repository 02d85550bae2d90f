"""The training losses by name (``config.LOSSES``): cross-entropy, soft Dice, focal, and the boundary-tolerant Dice
that forgives a membrane drawn a pixel or two off the annotator's line, for binary and multi-class models.
"""
import math

import keras

from .config import LOSS_TOLERANCE_PX


def dilate_disk(p, radius):
    """Grey dilation of (N, H, W, C) in-plane by a Euclidean disk of ``radius`` pixels: the union of the
    (2a+1) x (2b+1) boxes with a² + b² <= radius², as the evaluation's tolerance counts distance."""
    from keras import ops
    out = None
    for a in range(radius + 1):
        b = int(math.isqrt(radius * radius - a * a))
        box = ops.max_pool(p, (2 * a + 1, 2 * b + 1), strides=1, padding="same")
        out = box if out is None else ops.maximum(out, box)
    return out


def make_loss(name, classes):
    """The loss ``name`` (config.LOSSES). Targets with one channel more than the output carry a weight, 1 where a
    voxel is annotated: the others never reach the loss (cross-entropies are averaged over annotated voxels, Dice
    terms count annotated voxels only)."""
    plain, weighted = _losses(name, classes, None), _losses(name, classes, "mean_with_sample_weight")

    def loss(y, p):
        if y.shape[-1] == p.shape[-1]:
            return plain(y, p, None)
        w = y[..., -1:]
        return weighted(y[..., :-1] * w, p, w)
    return loss


def _losses(name, classes, reduction):
    """loss(y, p, w): w is None, or (..., 1) weights that also zero y where they are 0."""
    from keras import ops
    extra = {} if reduction is None else {"reduction": reduction}

    def soft_dice(y, p):
        inter = ops.sum(y * p)
        return 1.0 - (2.0 * inter + 1.0) / (ops.sum(y) + ops.sum(p) + 1.0)

    def soft_tolerant_dice(y, p):
        # precision: predicted mass near a labelled pixel; recall: labelled pixels near predicted mass. A thin
        # membrane predicted one pixel off scores 0 in soft_dice but fully here, so the gradient pushes to find
        # missed membranes rather than only to nudge found ones onto the annotator's line.
        precision = (ops.sum(p * dilate_disk(y, LOSS_TOLERANCE_PX)) + 1.0) / (ops.sum(p) + 1.0)
        recall = (ops.sum(y * dilate_disk(p, LOSS_TOLERANCE_PX)) + 1.0) / (ops.sum(y) + 1.0)
        return 1.0 - 2.0 * precision * recall / (precision + recall)

    def pixelwise(f):   # cross-entropies: weighted mean over annotated voxels
        return lambda y, p, w: f(y, p) if w is None else f(y, p, sample_weight=w[..., 0])

    def masked(f):      # Dice terms: predictions outside the annotation do not count
        return lambda y, p, w: f(y, p if w is None else p * w)

    if classes > 1:
        ce = pixelwise(keras.losses.CategoricalCrossentropy(**extra))
        focal = pixelwise(keras.losses.CategoricalFocalCrossentropy(gamma=2.0, **extra))

        def fg(f):   # over the foreground classes: background would dominate it
            return lambda y, p: f(y[..., 1:], p[..., 1:])
        dice, tolerant, names = masked(fg(soft_dice)), masked(fg(soft_tolerant_dice)), {"cce": ce}
    else:
        ce = pixelwise(keras.losses.BinaryCrossentropy(**extra))
        focal = pixelwise(keras.losses.BinaryFocalCrossentropy(gamma=2.0, **extra))
        dice, tolerant, names = masked(soft_dice), masked(soft_tolerant_dice), {}
    names.update({"bce": ce, "dice": dice, "focal": focal,
                  "bce+dice": lambda y, p, w: ce(y, p, w) + dice(y, p, w),
                  "bce+dice+tolerant": lambda y, p, w: ce(y, p, w) + dice(y, p, w) + tolerant(y, p, w)})
    return names[name]
