"""Probe: does cleaning a model's mask after thresholding (dropping small connected pieces, or hysteresis) remove
the speckle it calls membrane on raw tomograms without losing membrane? No training here.

Each volume of bench/bench_volumes.py's conditions (dark polarity, fixed seeds) is segmented once; then every
variant is applied to the same probability map and scored as the bench scores:

- ``none``: the model's threshold, as ``membraneseg segment`` writes it;
- ``min N``: pieces (26-connected, 3D) under N nm³ dropped;
- ``hyst H``: pieces of the thresholded mask kept only where they reach probability H somewhere;
- ``thr T``: another threshold instead of the model's, not cleaned.

    .venv/bin/python recipes/probe_cleaning.py --model membraneseg/weights/tomograms --seeds 3 --json out.json
"""
import argparse
import json
import os
import sys
import time

import numpy as np
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "bench"))

import bench_volumes as bench  # noqa: E402
from membraneseg.engine.measurement import metrics  # noqa: E402

CONDITIONS = ("reference", "dose 60", "defocus 6 µm", "20 Å", "40 Å", "eed", "negatives", "empty")
MIN_NM3 = (500, 2000, 5000, 20000)
HIGH = (0.6, 0.75, 0.9)
THRESHOLDS = (0.15, 0.25, 0.5)


def variants(prob, threshold, px):
    """{name: mask} of every cleaning of one probability map."""
    mask = prob >= threshold
    labels, n = metrics.label_instances(mask)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    out = {"none": mask}
    for nm3 in MIN_NM3:
        keep = sizes >= nm3 * 1000.0 / px ** 3
        keep[0] = False
        out["min %d" % nm3] = keep[labels]
    for high in HIGH:
        peaks = ndimage.maximum(prob, labels, np.arange(n + 1)) if n else np.zeros(1)
        keep = np.asarray(peaks) >= high
        keep[0] = False
        out["hyst %.2f" % high] = keep[labels]
    for t in THRESHOLDS:
        out["thr %.2f" % t] = prob >= t
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="membraneseg/weights/tomograms")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--conditions", nargs="+", default=CONDITIONS)
    args = parser.parse_args()
    from membraneseg.engine.segmentation.predict import Predictor
    predictor = Predictor(args.model)
    conditions = [c for c in bench.CONDITIONS if c[0] in args.conditions]
    table, start = {}, time.time()
    for name, changes in conditions:
        per = {}
        for seed in range(bench.SEED, bench.SEED + args.seeds):
            tomo, truth, hidden, px = bench.volume(name, changes, "dark", seed)
            prob, _ = predictor.predict_array(tomo, pixel_size=px, polarity="auto")
            for key, mask in variants(prob, predictor.card.threshold, px).items():
                per.setdefault(key, []).append(bench.score(mask, truth, hidden))
        table[name] = {k: {f: float(np.mean([s[f] for s in v])) for f in v[0]} for k, v in per.items()}
        for k, f in table[name].items():
            print("%-14s %-11s Dice %.3f  tol %.3f  recall %.3f  marked %6.3f%%" % (
                name, k, f["dice"], f["tolerant_dice"], f["tolerant_recall"], 100 * f["marked"]), flush=True)
    print("model %s, %d seed(s), %.0f s" % (args.model, args.seeds, time.time() - start))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(model=args.model, seeds=args.seeds, table=table), f, indent=1)


if __name__ == "__main__":
    main()
