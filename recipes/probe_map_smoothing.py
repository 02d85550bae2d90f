"""Probe: does smoothing the probability map across z (and in 3D) before the threshold help a single-slice model
on raw tomograms? No training here.

A single-slice model judges each z-slice alone, so in noisy volumes its map flickers from slice to slice: speckle
that a neighbour slice does not confirm, and holes in a membrane that its neighbours show. A Gaussian over the map
(sigma in voxels, along z only or in 3D) is the cheapest use of z-context. This probe segments volumes of
bench/bench_volumes.py once with the model's card (its test-time scales), smooths the map with each sigma and
scores it at several thresholds. Use seeds other than the benchmark's (900-902) to choose, then confirm with the
benchmark.

    .venv/bin/python recipes/probe_map_smoothing.py --model membraneseg/weights/tomograms --first-seed 950
"""
import argparse
import os
import sys
import time

import numpy as np
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "bench"))

import bench_volumes as bench  # noqa: E402

CONDITIONS = ("reference", "dose 60", "20 Å", "negatives", "microtubules")
# (name, sigma as (z, y, x) voxels)
SMOOTHING = (("none", None), ("z 0.7", (0.7, 0, 0)), ("z 1.2", (1.2, 0, 0)), ("3D 0.7", (0.7, 0.7, 0.7)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="membraneseg/weights/tomograms")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=950)
    parser.add_argument("--conditions", nargs="+", default=CONDITIONS)
    parser.add_argument("--smoothing", nargs="+", default=[n for n, _ in SMOOTHING],
                        help="which smoothings to try (default all: %s)" % ", ".join(n for n, _ in SMOOTHING))
    parser.add_argument("--offsets", type=float, nargs="+", default=(-0.1, -0.05, 0.0),
                        help="thresholds tried, as offsets from the card's")
    args = parser.parse_args()
    predictor = bench.predictor_for(args.model)
    base = predictor.card.threshold
    start = time.time()
    print("# model %s, card threshold %.3f, seeds %d-%d" % (args.model, base, args.first_seed,
                                                            args.first_seed + args.seeds - 1))
    for name, changes in [c for c in bench.CONDITIONS if c[0] in args.conditions]:
        scores = {}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            tomo, truth, hidden, px = bench.volume(name, changes, "dark", seed)
            prob, _ = predictor.predict_array(tomo, pixel_size=px, polarity="auto")
            for label, sigma in [m for m in SMOOTHING if m[0] in args.smoothing]:
                smooth = prob if sigma is None else ndimage.gaussian_filter(prob, sigma, mode="nearest")
                for off in args.offsets:
                    s = bench.score(smooth >= base + off, truth, hidden)
                    scores.setdefault((label, off), []).append(s)
        for (label, off), per in scores.items():
            tol = np.mean([s["tolerant_dice"] for s in per])
            marked = np.mean([s["marked"] for s in per])
            figure = "marked %6.3f%%" % (100 * marked) if name in bench.MEMBRANE_FREE else \
                "tol %.3f  marked %5.2f%%" % (tol, 100 * marked)
            print("%-14s %-7s thr %.3f | %s" % (name, label, base + off, figure), flush=True)
    print("# %.0f s" % (time.time() - start))


if __name__ == "__main__":
    main()
