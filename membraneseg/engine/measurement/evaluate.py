"""Evaluate predicted segmentations (masks or probability maps) against reference masks, per tomogram and pooled.

Pairs are matched by tomogram id (tsId). For each pair the volumes are read slab by slab from their memory maps;
only two boolean copies (1 byte per voxel each) and, for mCov, two int32 instance maps are held whole. The report
is a JSON-ready dict (``evaluate``); ``format_table`` prints it.
"""
import json
import logging
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..core import io
from . import metrics

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 2.0      # voxels: a membrane drawn 1-2 voxels off still counts
DEFAULT_THRESHOLD = 0.5
SLAB = 16                    # z-slices read at a time
KINDS = ("auto", "probability", "binary", "labels")
# Suffixes that the plugin's commands add to a tomogram's stem; removed when pairing files by name.
NAME_SUFFIXES = ("_mask", "_prob", "_clean", "_labels", "_seg", "_segmentation")
REPORT_FORMAT = 1


@dataclass
class Pair:
    ts_id: str
    pred: str
    ref: str
    threshold: Optional[float] = None   # for probability maps: the one recorded with the map, if any
    kind: str = "auto"                  # what ``pred`` holds: auto, probability, binary or labels


# ----------------------------------------------------------------------------- pairing
def tomogram_id(path):
    """A file's tomogram id: its name without folder, extension and the suffixes in NAME_SUFFIXES."""
    stem = os.path.splitext(os.path.basename(str(path)))[0]
    changed = True
    while changed:
        changed = False
        for suffix in NAME_SUFFIXES:
            if stem.endswith(suffix) and len(stem) > len(suffix):
                stem, changed = stem[:-len(suffix)], True
    return stem


def pair_by_name(preds, refs, allow_unmatched=False):
    """Pairs of prediction and reference files with the same tomogram id (see ``tomogram_id``). One prediction and
    one reference are one pair whatever their names: pairing by name is for folders and lists."""
    if len(preds) == 1 and len(refs) == 1:
        return [Pair(tomogram_id(preds[0]), preds[0], refs[0])]

    def by_id(paths, side):
        found = {}
        for p in paths:
            key = tomogram_id(p)
            if key in found:
                raise io.InputError(p, "%s files %s and %s both belong to tomogram %r; give one per tomogram"
                                    % (side, found[key], p, key))
            found[key] = p
        return found
    p, r = by_id(preds, "prediction"), by_id(refs, "reference")
    check_matched(set(p), set(r), allow_unmatched, where="--pred/--ref")
    return [Pair(k, p[k], r[k]) for k in sorted(set(p) & set(r))]


def check_matched(pred_ids, ref_ids, allow_unmatched=False, where="input"):
    """Raise InputError naming the tomogram ids present on one side only (unless allowed: then they are skipped
    with a warning). Refuses pairings with nothing in common."""
    no_ref, no_pred = sorted(pred_ids - ref_ids), sorted(ref_ids - pred_ids)
    problems = []
    if no_ref:
        problems.append("no reference for tomogram(s) %s" % ", ".join(no_ref))
    if no_pred:
        problems.append("no prediction for tomogram(s) %s" % ", ".join(no_pred))
    if not pred_ids & ref_ids:
        raise io.InputError(where, "no tomogram has both a prediction and a reference (%s)" % "; ".join(problems))
    if problems and not allow_unmatched:
        raise io.InputError(where, "%s. Pairs are matched by tomogram id (tsId); evaluate matching sets, or allow "
                                   "unmatched tomograms to skip them." % "; ".join(problems))
    for p in problems:
        log.warning("skipped: %s", p)


def read_pairs(path):
    """Pairs from a JSON list of {"tsId", "pred", "ref", optional "threshold" and "kind"} (what the Scipion
    protocol writes)."""
    try:
        with open(path) as f:
            rows = json.load(f)
        pairs = [Pair(str(r["tsId"]), str(r["pred"]), str(r["ref"]), r.get("threshold"), r.get("kind") or "auto")
                 for r in rows]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise io.InputError(path, "not a list of pairs {\"tsId\", \"pred\", \"ref\"} in JSON (%s)" % exc)
    ids = [p.ts_id for p in pairs]
    if len(set(ids)) != len(ids):
        raise io.InputError(path, "tomogram ids appear more than once: %s"
                            % ", ".join(sorted({i for i in ids if ids.count(i) > 1})))
    for p in pairs:
        if p.kind not in KINDS:
            raise io.InputError(path, "%s: kind %r is not one of %s" % (p.ts_id, p.kind, ", ".join(KINDS)))
    return pairs


# ----------------------------------------------------------------------------- one pair
def _slabs(depth, size=SLAB):
    for z0 in range(0, depth, size):
        yield z0, min(depth, z0 + size)


def detect_kind(vol):
    """'probability' for data with fractional values, 'labels' for more than one non-zero value, else 'binary'.
    Reads slabs until it knows."""
    data = vol.data
    values = set()
    for z0, z1 in _slabs(data.shape[0]):
        block = np.asarray(data[z0:z1])
        nonzero = block[block != 0]
        if data.dtype.kind == "f" and np.any(nonzero != np.round(nonzero)):
            return "probability"
        values.update(np.unique(nonzero)[:2].tolist())
        if len(values) > 1:
            return "labels"
    return "binary"


def _reference_mask(block, ref_labels, path):
    if block.dtype.kind == "f" and np.any(block != np.round(block)):
        raise io.InputError(path, "the reference holds fractional values (%g..%g); it must be a mask or a label "
                                  "map, not a probability map" % (block.min(), block.max()))
    return block != 0 if not ref_labels else np.isin(block, ref_labels)


def evaluate_pair(pair: Pair, threshold=None, tolerance=DEFAULT_TOLERANCE, per_slice=False, ref_labels=None,
                  instances=True):
    """Metrics of one prediction against its reference. ``threshold`` (if given) overrides the pair's own for
    probability maps. Returns (result dict, ThresholdCurve or None)."""
    pred, ref = io.read(pair.pred), io.read(pair.ref)
    if pred.data.shape != ref.data.shape:
        raise io.InputError(pair.pred, "%s voxels (X x Y x Z) but its reference %s has %s; both must cover the "
                                       "same voxels" % ("x".join(map(str, pred.data.shape[::-1])), pair.ref,
                                                        "x".join(map(str, ref.data.shape[::-1]))))
    if pred.voxel_size and ref.voxel_size and abs(pred.voxel_size - ref.voxel_size) > 0.01 * ref.voxel_size:
        log.warning("%s: voxel size %.3f Å differs from the reference's %.3f Å", pair.ts_id, pred.voxel_size,
                    ref.voxel_size)
    kind = detect_kind(pred) if pair.kind == "auto" else pair.kind
    probability = kind == "probability"
    if probability:
        threshold = threshold if threshold is not None else (
            pair.threshold if pair.threshold is not None else DEFAULT_THRESHOLD)
    curve = metrics.ThresholdCurve() if probability else None
    shape = pred.data.shape
    pred_bin, ref_bin = np.zeros(shape, bool), np.zeros(shape, bool)
    for z0, z1 in _slabs(shape[0]):
        r = _reference_mask(np.asarray(ref.data[z0:z1]), ref_labels, pair.ref)
        if probability:
            p = np.asarray(pred.data[z0:z1], np.float32)
            if p.min() < -1e-3 or p.max() > 1 + 1e-3:
                raise io.InputError(pair.pred, "values from %g to %g are not probabilities in [0, 1]; threshold "
                                               "the map first or say it is a mask" % (p.min(), p.max()))
            curve.add(p, r)
            pred_bin[z0:z1] = p >= threshold
        else:
            pred_bin[z0:z1] = np.asarray(pred.data[z0:z1]) != 0
        ref_bin[z0:z1] = r
    tp, fp, fn, tn = metrics.confusion(pred_bin, ref_bin)
    result = dict(tsId=pair.ts_id, pred=pair.pred, ref=pair.ref, kind=kind,
                  threshold=float(threshold) if probability else None, shape_xyz=list(shape[::-1]),
                  counts=dict(tp=tp, fp=fp, fn=fn, tn=tn))
    result.update(metrics.scores(tp, fp, fn, tn))
    tolerant = _tolerant(pred_bin, ref_bin, tolerance, per_slice)
    result["tolerant_counts"] = dict(zip(("pred_near", "pred", "ref_near", "ref"), tolerant))
    result.update(metrics.tolerant_scores(*tolerant))
    if instances:
        result.update(_instances(pred_bin, ref_bin, per_slice))
    if curve is not None:
        result["best_threshold"], result["best_f1"] = curve.best()
    return result, curve


def _tolerant(pred_bin, ref_bin, tolerance, per_slice):
    """Tolerant counts summed over slabs; in 3D each slab carries ceil(tolerance) slices of context each side."""
    halo = 0 if per_slice else int(np.ceil(tolerance))
    depth = pred_bin.shape[0]
    total = np.zeros(4, np.int64)
    for z0, z1 in _slabs(depth):
        a, b = max(0, z0 - halo), min(depth, z1 + halo)
        total += metrics.tolerant_counts(pred_bin[a:b], ref_bin[a:b], tolerance, per_slice,
                                         core=slice(z0 - a, z1 - a))
    return tuple(int(v) for v in total)


def _instances(pred_bin, ref_bin, per_slice):
    """Instance counts and coverage; the sums are kept so that pooling over tomograms stays exact."""
    ref_labels, n_ref = metrics.label_instances(ref_bin, per_slice)
    pred_labels, n_pred = metrics.label_instances(pred_bin, per_slice)
    ref_sizes = np.bincount(ref_labels.ravel(), minlength=n_ref + 1)
    pred_sizes = np.bincount(pred_labels.ravel(), minlength=n_pred + 1)
    tables = [metrics.overlap_table(pred_labels[z0:z1], ref_labels[z0:z1]) for z0, z1 in _slabs(len(ref_bin))]
    best = metrics.coverage(ref_sizes, pred_sizes, tables)
    mcov, mwcov = metrics.mcov_from(best, ref_sizes[1:], n_pred > 0)
    return dict(mcov=mcov, mwcov=mwcov, reference_instances=n_ref, predicted_instances=n_pred,
                coverage_sums=dict(best_iou=float(best.sum()), weighted_best_iou=float((best * ref_sizes[1:]).sum()),
                                   instance_voxels=int(ref_sizes[1:].sum())))


# ----------------------------------------------------------------------------- all pairs
def evaluate(pairs, threshold=None, tolerance=DEFAULT_TOLERANCE, per_slice=False, ref_labels=None,
             instances=True):
    """The report: settings, one entry per tomogram, and pooled results (voxel counts summed over tomograms,
    mCov over all reference instances) plus the plain mean of the per-tomogram values."""
    if not pairs:
        raise io.InputError("input", "nothing to evaluate: no pair of prediction and reference")
    per_tomo, pooled_curve = [], metrics.ThresholdCurve()
    n_prob = 0
    for pair in pairs:
        log.info("evaluating %s: %s against %s", pair.ts_id, pair.pred, pair.ref)
        result, curve = evaluate_pair(pair, threshold, tolerance, per_slice, ref_labels, instances)
        per_tomo.append(result)
        if curve is not None:
            pooled_curve.merge(curve)
            n_prob += 1
    report = dict(format=REPORT_FORMAT, settings=dict(
        threshold=threshold, tolerance_voxels=tolerance, distances="2d" if per_slice else "3d",
        reference_labels=list(ref_labels) if ref_labels else "non-zero", instances=instances),
        tomograms=per_tomo, pooled=_pooled(per_tomo, instances))
    if n_prob:
        best_t, best_f1 = pooled_curve.best()
        report["pr_curve"] = dict(pooled_curve.curve(), tomograms=n_prob, best_threshold=best_t, best_f1=best_f1)
    return report


METRIC_KEYS = ("accuracy", "precision", "recall", "f1", "dice", "iou", "tolerant_dice", "mcov")


def _pooled(per_tomo, instances):
    c = {k: sum(r["counts"][k] for r in per_tomo) for k in ("tp", "fp", "fn", "tn")}
    t = [sum(r["tolerant_counts"][k] for r in per_tomo) for k in ("pred_near", "pred", "ref_near", "ref")]
    pooled = dict(tomograms=len(per_tomo), counts=c)
    pooled.update(metrics.scores(c["tp"], c["fp"], c["fn"], c["tn"]))
    pooled.update(metrics.tolerant_scores(*t))
    if instances:
        n_ref = sum(r["reference_instances"] for r in per_tomo)
        sums = {k: sum(r["coverage_sums"][k] for r in per_tomo) for k in per_tomo[0]["coverage_sums"]}
        if n_ref:
            pooled["mcov"] = sums["best_iou"] / n_ref
            pooled["mwcov"] = sums["weighted_best_iou"] / sums["instance_voxels"]
        else:
            pooled["mcov"] = pooled["mwcov"] = 0.0 if any(r["predicted_instances"] for r in per_tomo) else 1.0
        pooled["reference_instances"] = n_ref
    pooled["mean_of_tomograms"] = {k: float(np.mean([r[k] for r in per_tomo])) for k in METRIC_KEYS
                                   if k in per_tomo[0]}
    return pooled


# ----------------------------------------------------------------------------- output
def write_report(report, path):
    """Write the report as JSON, atomically."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with io.atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(report, f, indent=1)
    return path


TABLE_COLUMNS = (("accuracy", "Acc"), ("precision", "Prec"), ("recall", "Rec"), ("f1", "F1"), ("dice", "Dice"),
                 ("iou", "IoU"), ("tolerant_dice", "tolDice"), ("mcov", "mCov"))


def table_rows(report):
    """Header and rows (strings) of the metrics table: one row per tomogram, then the pooled row."""
    columns = [(k, name) for k, name in TABLE_COLUMNS if k in report["pooled"]]
    header = ["tomogram", "threshold"] + [name for _, name in columns]
    rows = []
    for r in report["tomograms"] + [dict(report["pooled"], tsId="pooled", threshold=None)]:
        thr = "%.3f" % r["threshold"] if r.get("threshold") is not None else "-"
        rows.append([r["tsId"], thr] + ["%.4f" % r[k] for k, _ in columns])
    return header, rows


def format_table(report):
    header, rows = table_rows(report)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)) for line in [header] + rows]
    s = report["settings"]
    lines.append("tolerant Dice: within %g voxel(s), %s distances" % (s["tolerance_voxels"], s["distances"]))
    if "pr_curve" in report:
        c = report["pr_curve"]
        lines.append("best threshold (pooled over %d probability map(s)): %.3f, F1 = Dice %.4f"
                     % (c["tomograms"], c["best_threshold"], c["best_f1"]))
    return "\n".join(lines)
