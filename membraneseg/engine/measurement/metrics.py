"""Agreement between a predicted and a reference segmentation (paper, section 2.3 and Table 3).

Voxel counts give accuracy, precision, recall, F1, Dice and IoU. Membranes are a few voxels thick, so a mask one
voxel off scores badly on those; the boundary-tolerant Dice forgives such shifts. mCov compares instances
(connected pieces), as TARDIS does. ``ThresholdCurve`` gives precision and recall of a probability map at every
threshold from one pass over the data, which is how the best threshold is found.

Every function works on blocks (slabs of z-slices), so callers can sum counts over a volume larger than RAM.

Empty masks (defined so that no metric is ever NaN, and F1 always equals Dice):
- A ratio whose denominator is 0 is 1 when prediction and reference are both empty, else 0. So: both empty ->
  precision = recall = F1 = Dice = IoU = tolerant Dice = mCov = 1; prediction empty, reference not -> all 0;
  reference empty, prediction not -> all 0 (every predicted voxel is a false positive).
- Accuracy is always (TP + TN) / voxels.
"""
import numpy as np
from scipy import ndimage

# Thin membranes touch their neighbours diagonally: count voxels sharing a face, an edge or a corner as connected.
CONNECTIVITY_3D = ndimage.generate_binary_structure(3, 3)
CONNECTIVITY_2D = ndimage.generate_binary_structure(2, 2)


# ----------------------------------------------------------------------------- voxel counts
def confusion(pred, ref):
    """(TP, FP, FN, TN) of two boolean arrays of the same shape."""
    pred = np.asarray(pred, bool)
    ref = np.asarray(ref, bool)
    tp = int(np.count_nonzero(pred & ref))
    fp = int(np.count_nonzero(pred & ~ref))
    fn = int(np.count_nonzero(~pred & ref))
    tn = int(pred.size - tp - fp - fn)
    return tp, fp, fn, tn


def _ratio(num, den, both_empty):
    """num / den, or (no denominator) 1 when both masks are empty and 0 otherwise (see the module docstring)."""
    if den:
        return float(num) / den
    return 1.0 if both_empty else 0.0


def dice_from(tp, fp, fn):
    return _ratio(2 * tp, 2 * tp + fp + fn, tp + fp + fn == 0)


def iou_from(tp, fp, fn):
    return _ratio(tp, tp + fp + fn, tp + fp + fn == 0)


def precision_from(tp, fp, fn):
    return _ratio(tp, tp + fp, tp + fp + fn == 0)


def recall_from(tp, fp, fn):
    return _ratio(tp, tp + fn, tp + fp + fn == 0)


def f1_from(precision, recall):
    # The paper's section 2.3 prints F1 = P*R / (P+R), without the factor 2; its Table 3 values (e.g. 0.7033 from
    # P 0.7145 and R 0.6925) are the correct harmonic mean 2PR / (P+R), which is what we compute.
    return 0.0 if precision + recall == 0 else 2.0 * precision * recall / (precision + recall)


def dice(pred, ref):
    tp, fp, fn, _ = confusion(pred, ref)
    return dice_from(tp, fp, fn)


def iou(pred, ref):
    tp, fp, fn, _ = confusion(pred, ref)
    return iou_from(tp, fp, fn)


def scores(tp, fp, fn, tn):
    """The section 2.3 metrics from voxel counts. F1 equals Dice at voxel level; both are reported because the
    paper lists both."""
    precision, recall = precision_from(tp, fp, fn), recall_from(tp, fp, fn)
    total = tp + fp + fn + tn
    return dict(accuracy=(tp + tn) / total if total else 1.0, precision=precision, recall=recall,
                f1=f1_from(precision, recall), dice=dice_from(tp, fp, fn), iou=iou_from(tp, fp, fn))


# ----------------------------------------------------------------------------- boundary tolerance
def _plane_distances(plane):
    """Euclidean distance (pixels) of every pixel of a 2D slice to its nearest True pixel; None when there is none.
    OpenCV's exact transform is many times faster than scipy's on large slices."""
    import cv2
    if not plane.any():
        return None
    return cv2.distanceTransform((~plane).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def _near(mask, other, tolerance, per_slice, core):
    """Voxels of ``mask`` in the ``core`` z-slices that lie within ``tolerance`` voxels of a voxel of ``other``.
    In 3D the squared distance is dz² + (in-plane distance)², so the nearest voxel is found from the 2D distance
    maps of the slices at most ``tolerance`` away: exact, and one slice's map at a time."""
    reach = 0 if per_slice else int(np.floor(tolerance))
    planes = {}
    count = 0
    for z in range(*core.indices(mask.shape[0])):
        if not mask[z].any():
            continue
        near = np.zeros(mask.shape[1:], bool)
        for dz in range(-reach, reach + 1):
            if 0 <= z + dz < mask.shape[0]:
                if z + dz not in planes:
                    planes[z + dz] = _plane_distances(other[z + dz])
                if planes[z + dz] is not None:
                    # the small margin keeps exact distances (1, √2, 2 ...) inside despite float32 rounding
                    near |= planes[z + dz] <= np.sqrt(tolerance ** 2 - dz ** 2) + 1e-4
        for done in [k for k in planes if k < z - reach]:
            del planes[done]
        count += int(np.count_nonzero(mask[z] & near))
    return count


def tolerant_counts(pred, ref, tolerance, per_slice=False, core=slice(None)):
    """(predicted voxels near the reference, predicted voxels, reference voxels near the prediction, reference
    voxels), 'near' meaning within ``tolerance`` voxels (Euclidean). Distances are measured in 3D, or in the xy
    plane of each z-slice with ``per_slice``. Only the z-slices ``core`` of the boolean blocks are counted; the
    others are context, so a volume can be done in slabs carrying ceil(tolerance) extra slices on each side."""
    pred = np.asarray(pred, bool)
    ref = np.asarray(ref, bool)
    return (_near(pred, ref, tolerance, per_slice, core), int(np.count_nonzero(pred[core])),
            _near(ref, pred, tolerance, per_slice, core), int(np.count_nonzero(ref[core])))


def tolerant_scores(pred_near, pred_total, ref_near, ref_total):
    """Boundary-tolerant precision (predicted voxels near the reference), recall (reference voxels near the
    prediction) and Dice = 2PR / (P+R). With a tolerance of 0 they are the plain precision, recall and Dice."""
    both_empty = pred_total == 0 and ref_total == 0
    precision = _ratio(pred_near, pred_total, both_empty)
    recall = _ratio(ref_near, ref_total, both_empty)
    return dict(tolerant_precision=precision, tolerant_recall=recall, tolerant_dice=f1_from(precision, recall))


# ----------------------------------------------------------------------------- instances and mCov
def label_instances(mask, per_slice=False):
    """Connected pieces of a boolean volume (Z, Y, X), numbered 1..n (int32, 0 is background), and n. With
    ``per_slice`` each z-slice is labelled on its own (2D connectivity) and numbers continue across slices."""
    mask = np.asarray(mask, bool)
    if not per_slice:
        labels, n = ndimage.label(mask, CONNECTIVITY_3D, output=np.int32)
        return labels, int(n)
    labels = np.zeros(mask.shape, np.int32)
    n = 0
    for z in range(mask.shape[0]):
        k = ndimage.label(mask[z], CONNECTIVITY_2D, output=labels[z])
        labels[z][labels[z] > 0] += n
        n += int(k)
    return labels, n


def _pack(ref_ids, pred_ids):
    # one int64 per (reference, predicted) pair: a 1D unique is much faster than a unique over rows
    return (np.asarray(ref_ids, np.int64) << 32) | np.asarray(pred_ids, np.int64)


def overlap_table(pred_labels, ref_labels):
    """Voxels shared by each (reference instance, predicted instance) pair of a block, as (ref ids, pred ids,
    counts); blocks are combined with ``coverage``."""
    both = (ref_labels > 0) & (pred_labels > 0)
    keys, counts = np.unique(_pack(ref_labels[both], pred_labels[both]), return_counts=True)
    return keys >> 32, keys & 0xFFFFFFFF, counts


def coverage(ref_sizes, pred_sizes, tables):
    """Best IoU of each reference instance with any predicted instance. ``ref_sizes[i]`` and ``pred_sizes[j]``
    are the voxel counts of instances i and j (index 0, the background, is ignored); ``tables`` are
    ``overlap_table`` results of all blocks. Returns an array of len(ref_sizes) - 1 values."""
    best = np.zeros(len(ref_sizes), np.float64)
    if tables and sum(len(t[2]) for t in tables):
        # the same pair can appear in several blocks: sum its counts first
        keys, inverse = np.unique(np.concatenate([_pack(t[0], t[1]) for t in tables]), return_inverse=True)
        inter = np.bincount(inverse, weights=np.concatenate([t[2] for t in tables]))
        r, p = keys >> 32, keys & 0xFFFFFFFF
        ious = inter / (np.asarray(ref_sizes)[r] + np.asarray(pred_sizes)[p] - inter)
        np.maximum.at(best, r, ious)
    return best[1:]


def mcov_from(best_ious, sizes, predicted_any):
    """mCov (mean over reference instances of their best IoU, as TARDIS's ``mcov``) and mwCov (the same mean
    weighted by instance size, TARDIS's second value). Without reference instances: 1 when nothing was predicted
    either, else 0."""
    best_ious = np.asarray(best_ious, np.float64)
    if best_ious.size == 0:
        value = 0.0 if predicted_any else 1.0
        return value, value
    sizes = np.asarray(sizes, np.float64)
    return float(best_ious.mean()), float((best_ious * sizes).sum() / sizes.sum())


def mcov(pred, ref, per_slice=False):
    """(mCov, mwCov) of two boolean volumes, instances being their connected pieces (see ``label_instances``)."""
    ref_labels, _ = label_instances(ref, per_slice)
    pred_labels, _ = label_instances(pred, per_slice)
    ref_sizes, pred_sizes = np.bincount(ref_labels.ravel()), np.bincount(pred_labels.ravel())
    best = coverage(ref_sizes, pred_sizes, [overlap_table(pred_labels, ref_labels)])
    return mcov_from(best, ref_sizes[1:], pred_sizes.size > 1)


# ----------------------------------------------------------------------------- probability maps
class ThresholdCurve:
    """Histograms of the probabilities of reference-positive and reference-negative voxels, in 1000 bins of
    width 0.001. Blocks are added one by one; any threshold that is a multiple of 0.001 is then exact (a voxel
    counts as membrane when its probability is >= the threshold, as ``segment`` does)."""
    BINS = 1000

    def __init__(self):
        self.pos = np.zeros(self.BINS, np.int64)
        self.neg = np.zeros(self.BINS, np.int64)

    def add(self, probs, ref):
        probs = np.asarray(probs, np.float64)
        ref = np.asarray(ref, bool)
        # the small offset puts a float32 value that rounds to a bin edge (0.7 is 0.69999999) in the bin of the
        # edge, so that ``probs >= 0.7`` in float32 and the histogram agree
        index = np.clip(np.floor(probs * self.BINS + 1e-3), 0, self.BINS - 1).astype(np.int64)
        self.pos += np.bincount(index[ref], minlength=self.BINS)
        self.neg += np.bincount(index[~ref], minlength=self.BINS)
        return self

    def merge(self, other):
        self.pos += other.pos
        self.neg += other.neg
        return self

    def counts(self, thresholds):
        """(TP, FP, FN) arrays at each threshold."""
        tp_above = np.concatenate([np.cumsum(self.pos[::-1])[::-1], [0]])
        fp_above = np.concatenate([np.cumsum(self.neg[::-1])[::-1], [0]])
        index = np.clip(np.round(np.asarray(thresholds, np.float64) * self.BINS).astype(np.int64), 0, self.BINS)
        tp, fp = tp_above[index], fp_above[index]
        return tp, fp, self.pos.sum() - tp

    def curve(self, thresholds=None):
        """Precision, recall and F1 (= Dice) at each threshold (default 0.01, 0.02, ... 0.99), as lists."""
        thresholds = np.round(np.arange(1, 100) / 100.0, 3) if thresholds is None else np.asarray(thresholds)
        rows = [(precision_from(tp, fp, fn), recall_from(tp, fp, fn), dice_from(tp, fp, fn))
                for tp, fp, fn in zip(*self.counts(thresholds))]
        precision, recall, f1 = (list(map(float, c)) for c in zip(*rows))
        return dict(thresholds=[float(t) for t in thresholds], precision=precision, recall=recall, f1=f1)

    def best(self, thresholds=None):
        """(threshold, F1) with the highest F1 (= Dice); the lowest such threshold on ties."""
        c = self.curve(thresholds)
        i = int(np.argmax(c["f1"]))
        return c["thresholds"][i], c["f1"][i]


def calibrate_threshold(probs, refs, grid=None):
    """The probability threshold that maximises pooled Dice over ``probs`` (any shape) against boolean ``refs``.
    Returns (threshold, dice). Uses a histogram, so it is one pass over the data whatever the grid."""
    grid = np.round(np.arange(0.05, 0.951, 0.025), 3) if grid is None else np.asarray(grid)
    return ThresholdCurve().add(probs, refs).best(grid)
