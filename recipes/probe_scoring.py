"""Probe: does anything at scoring time lift the default model's held-out figures? No training here.

Re-scores the cached fold models of one leave-one-group-out arm of recipes/default_model.py on their held-out
slices, with and without flip test-time augmentation (the Segment protocol's quality mode), and with connected
pieces smaller than N pixels removed (the "threshold and clean masks" protocol). The threshold of each variant
is calibrated over all held-out groups pooled, as the shipped model's is, and is reported with the figures.

    .venv/bin/python recipes/probe_scoring.py [--arm cpu-fine-k1-pretrained-allgroups] [--min-size 0 20 50]
"""
import argparse
import json
import logging
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import default_model as recipe  # noqa: E402
from membraneseg.engine.measurement import clean, metrics
from membraneseg.engine.core import io
from membraneseg.engine.segmentation import predict

log = logging.getLogger("probe")


def held_out_probabilities(cfg, groups, arm, tta, model_dir=None):
    """{group: [(probability slice, reference mask), ...]} from each fold model on its held-out slices: the arm's
    cached LOGO models, or ``model_dir(fold)``'s when given."""
    out, seconds = {}, 0.0
    for fold in cfg["folds"]:
        model_dir_of_fold = model_dir(fold) if model_dir else recipe.run_dir(arm, fold)
        p = predict.Predictor(model_dir_of_fold, batch_size=8, tta=tta)
        for g in cfg["folds"][fold]:
            t = time.time()
            out[g] = []
            for i, m in groups[g]:
                ref = np.asarray(io.read(m).data)
                ref = ref.reshape(ref.shape[-2:]) > 127
                out[g].append((p.predict_array(io.read(i).data, cfg["pixel_size"])[0].reshape(-1, *ref.shape), ref))
            seconds += time.time() - t
    return out, 1000 * seconds / sum(len(v) for v in out.values())


def figures_at(probs, threshold, min_size, tol, keep=None):
    """Per group and pooled Dice, IoU and tolerant Dice at ``threshold`` after removing pieces < min_size px;
    ``keep``, when given, maps a probability slice to the pixels that may stay foreground."""
    per_group = {}
    for g, pairs in probs.items():
        counts = np.zeros(3, np.int64)
        tolc = {"tp_p": 0, "n_p": 0, "tp_r": 0, "n_r": 0}
        for prob, ref in pairs:
            pred = prob[0] >= threshold
            if keep is not None:
                pred &= keep(prob[0])
            if min_size:
                labels, lut, _, _ = clean.components(pred[None], min_size)
                pred = lut[labels[0]] > 0
            counts += metrics.confusion(pred, ref)[:3]
            for k, v in recipe.tolerant_counts(pred[None], ref[None], tol).items():
                tolc[k] += v
        per_group[g] = dict(tp=int(counts[0]), fp=int(counts[1]), fn=int(counts[2]), tolerant=tolc)
    pooled = recipe.pooled_figures(per_group.values())
    return {g: recipe.figures(v["tp"], v["fp"], v["fn"], v["tolerant"]) for g, v in per_group.items()}, pooled


def calibrate(probs):
    curve = metrics.ThresholdCurve()
    for pairs in probs.values():
        for prob, ref in pairs:
            curve.add(prob[0], ref)
    return curve.best(np.round(np.arange(0.05, 0.951, 0.01), 3))[0]


def start(parser):
    """Parse the probe's arguments and set up its log; with the recipe's config and its slices by group, or
    ``None`` for both when the shared data are absent (the probe then says so and stops)."""
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    cfg = recipe.load_config()
    if not recipe.shared_data(cfg):
        return args, None, None
    return args, cfg, recipe.slices_by_group(cfg)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arm", default="cpu-fine-k1-pretrained-allgroups")
    parser.add_argument("--min-size", type=int, nargs="*", default=[0, 20, 50, 100])
    parser.add_argument("--out", default=os.path.join(HERE, "results", "probe-scoring.json"))
    args, cfg, groups = start(parser)
    if cfg is None:
        return
    rows = []
    for tta in (False, True):
        probs, ms = held_out_probabilities(cfg, groups, args.arm, tta)
        threshold = calibrate(probs)
        for min_size in args.min_size:
            per_group, pooled = figures_at(probs, threshold, min_size, cfg["tolerance_px"])
            rows.append(dict(tta=tta, min_size=min_size, threshold=float(threshold), ms_per_slice=round(ms, 1),
                             pooled=pooled, groups=per_group))
            log.info("tta %-5s min size %3d px, threshold %.2f, %.0f ms/slice: pooled Dice %.3f IoU %.3f "
                     "tolerant %.3f | %s", tta, min_size, threshold, ms, pooled["dice"], pooled["iou"],
                     pooled["tolerant_dice"], " ".join("%s %.3f" % (g, v["dice"]) for g, v in per_group.items()))
    with open(args.out, "w") as f:
        json.dump(dict(arm=args.arm, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
