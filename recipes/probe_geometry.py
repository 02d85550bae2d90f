"""Probe: how far pixel Dice on the shared slices can go when a membrane is found but drawn a pixel off.

Two measurements per group, both on the held-out slices of recipes/default_model.py:

- the annotation alone: the mean width of its membranes (pixels above 127 per pixel of their skeleton), and the
  Dice of each mask with itself shifted by 1 and by 2 pixels (along rows and columns, both signs). A model that
  found every annotated membrane exactly but placed it one pixel off would score the 1-pixel figure;
- an arm's fold models (optional): the distance of each predicted pixel to the nearest annotated pixel, and of
  each annotated pixel to the nearest predicted one, binned as 0, 1, 1.4 (diagonal), 2 and more than 2 pixels,
  and the predicted membranes' width, at the threshold calibrated over all held-out groups pooled; and whether
  thinning the prediction helps: keeping only pixels at least ALPHA times the highest probability of their 3x3
  neighbourhood, the threshold chosen again for each ALPHA.

    .venv/bin/python recipes/probe_geometry.py [--arm NAME] [--every 1]
"""
import argparse
import json
import logging
import os
import sys

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import default_model as recipe  # noqa: E402
import probe_scoring as probe  # noqa: E402
from membraneseg.engine.core import io
from membraneseg.engine.measurement import metrics

log = logging.getLogger("probe")
SHIFTS = ((0, 1), (1, 0), (0, -1), (-1, 0))
DISTANCE_BINS = (0.5, 1.2, 1.5, 2.1)            # edges: 0 | 1 | sqrt 2 | 2 | more than 2 pixels
DISTANCE_LABELS = ("0", "1", "1.4", "2", ">2")
THIN_ALPHAS = (0.0, 0.5, 0.6, 0.7, 0.8)          # 0: no thinning
THIN_THRESHOLDS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)


def width(mask):
    """Mean width in pixels: area over skeleton length."""
    return mask.sum() / max(1, skeletonize(mask).sum())


def shifted_dice(mask, step):
    """Mean Dice of ``mask`` with itself moved ``step`` pixels along each axis, both ways (edges padded empty)."""
    scores = []
    for dy, dx in SHIFTS:
        moved = ndimage.shift(mask.astype(np.uint8), (dy * step, dx * step), order=0, cval=0) > 0
        scores.append(metrics.dice_from(*metrics.confusion(moved, mask)[:3]))
    return float(np.mean(scores))


def distance_histogram(points, target):
    """Fractions of the ``points`` pixels at each distance bin from the nearest ``target`` pixel."""
    if not points.any():
        return np.zeros(len(DISTANCE_LABELS))
    if not target.any():
        return np.eye(len(DISTANCE_LABELS))[-1]
    d = ndimage.distance_transform_edt(~target)[points]
    return np.bincount(np.digitize(d, DISTANCE_BINS), minlength=len(DISTANCE_LABELS)) / d.size


def annotation_figures(groups, every):
    out = {}
    for g, pairs in groups.items():
        masks = [np.squeeze(np.asarray(io.read(m).data)) > 127 for _, m in pairs[::every]]
        out[g] = dict(slices=len(masks), width=float(np.mean([width(m) for m in masks])),
                      dice_shift1=float(np.mean([shifted_dice(m, 1) for m in masks])),
                      dice_shift2=float(np.mean([shifted_dice(m, 2) for m in masks])))
        log.info("%s annotation (%d slices): width %.2f px; Dice with itself shifted 1 px %.3f, 2 px %.3f", g,
                 len(masks), out[g]["width"], out[g]["dice_shift1"], out[g]["dice_shift2"])
    return out


def model_figures(cfg, groups, arm, every):
    probs, _ = probe.held_out_probabilities(cfg, {g: v[::every] for g, v in groups.items()}, arm, False)
    threshold = probe.calibrate(probs)
    out = {}
    for g, pairs in probs.items():
        preds = [(p[0] >= threshold, ref) for p, ref in pairs]
        pred_to_ref = np.mean([distance_histogram(p, r) for p, r in preds], axis=0)
        ref_to_pred = np.mean([distance_histogram(r, p) for p, r in preds], axis=0)
        out[g] = dict(threshold=float(threshold), width=float(np.mean([width(p) for p, _ in preds])),
                      predicted_to_annotation=dict(zip(DISTANCE_LABELS, pred_to_ref.round(3).tolist())),
                      annotation_to_predicted=dict(zip(DISTANCE_LABELS, ref_to_pred.round(3).tolist())))
        log.info("%s prediction at %.2f: width %.2f px; predicted px at distance %s from the annotation: %s; "
                 "annotated px from the prediction: %s", g, threshold, out[g]["width"], "/".join(DISTANCE_LABELS),
                 " ".join("%.2f" % v for v in pred_to_ref), " ".join("%.2f" % v for v in ref_to_pred))
    return out, thinning_figures(probs, cfg["tolerance_px"])


def thinning_figures(probs, tol):
    """Pooled figures of the thinned prediction for each ALPHA, at the threshold that maximises pooled Dice."""
    out = {}
    for alpha in THIN_ALPHAS:
        def keep(p):
            return p >= alpha * ndimage.maximum_filter(p, size=3)
        best = max((dict(probe.figures_at(probs, t, 0, tol, keep)[1], threshold=t) for t in THIN_THRESHOLDS),
                   key=lambda f: f["dice"])
        out[str(alpha)] = best
        log.info("thinning to %.1f of the 3x3 maximum: pooled Dice %.3f, tolerant %.3f at threshold %.2f", alpha,
                 best["dice"], best["tolerant_dice"], best["threshold"])
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arm", help="also measure this arm's fold models (cached LOGO runs)")
    parser.add_argument("--every", type=int, default=1, help="use every N-th slice of each group")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "probe-geometry.json"))
    args, cfg, groups = probe.start(parser)
    if cfg is None:
        return
    result = dict(annotation=annotation_figures(groups, args.every))
    if args.arm:
        model, thinned = model_figures(cfg, groups, args.arm, args.every)
        result.update(arm=args.arm, model=model, thinning=thinned)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
