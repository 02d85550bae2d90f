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
    from keras import ops

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

    if classes > 1:
        ce, focal = keras.losses.CategoricalCrossentropy(), keras.losses.CategoricalFocalCrossentropy(gamma=2.0)

        def fg(f):   # over the foreground classes: background would dominate it
            return lambda y, p: f(y[..., 1:], p[..., 1:])
        dice, tolerant, names = fg(soft_dice), fg(soft_tolerant_dice), {"cce": ce}
    else:
        ce, focal = keras.losses.BinaryCrossentropy(), keras.losses.BinaryFocalCrossentropy(gamma=2.0)
        dice, tolerant, names = soft_dice, soft_tolerant_dice, {}
    names.update({"bce": ce, "dice": dice, "focal": focal,
                  "bce+dice": lambda y, p: ce(y, p) + dice(y, p),
                  "bce+dice+tolerant": lambda y, p: ce(y, p) + dice(y, p) + tolerant(y, p)})
    return names[name]
