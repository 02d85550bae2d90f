"""Probe: does a model find more membrane in a raw tomogram when the tomogram is first made coarser (binned or
smoothed and downsampled, then segmented through the usual path, which upsamples it to the model's pixel size),
as its better figures on 20-40 Å volumes suggest? No training here.

Each volume of bench/bench_volumes.py's conditions (dark polarity, seeds 900 on) is segmented as given (factor 1)
and after reduction by each factor: integer factors bin as IMOD does (preprocessing.binning), others smooth
(Gaussian, sigma 0.4 x factor) and resample linearly. The probability map comes back to the volume's grid and is
thresholded at the model's threshold. ``--means`` also scores the mean probability of the factors given (all
factors' maps averaged: a test-time ensemble across scales).

``--sets`` instead runs the engine's test-time scales (segmentation/scales.py: centre-aligned resampling, no copy
coarser than scales.COARSEST) with each set of factors given.

    .venv/bin/python recipes/probe_scale.py --model membraneseg/weights/tomograms --factors 1 1.5 2 3
    .venv/bin/python recipes/probe_scale.py --sets 1 1,1.5,3 1,2,4 1,2,3,4 --conditions reference "40 Å"
"""
import argparse
import os
import sys

import numpy as np
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "bench"))

import bench_volumes as bench  # noqa: E402
from membraneseg.engine.preprocessing import binning  # noqa: E402

CONDITIONS = ("reference", "dose 60", "defocus 6 µm", "negatives", "20 Å")


def reduced(tomo, factor):
    if factor == int(factor):
        return np.asarray(binning.binned(tomo, int(factor))[:])
    smooth = ndimage.gaussian_filter(tomo, 0.4 * factor)
    return ndimage.zoom(smooth, 1.0 / factor, order=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="membraneseg/weights/tomograms")
    parser.add_argument("--factors", type=float, nargs="+", default=[1, 1.5, 2, 3])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--conditions", nargs="+", default=CONDITIONS)
    parser.add_argument("--means", action="store_true", help="also the mean of every factor's probability map")
    parser.add_argument("--sets", nargs="+", metavar="F,F,...", help="the engine's test-time scales instead")
    args = parser.parse_args()
    changes = dict(bench.CONDITIONS)
    if args.sets:
        return engine_sets(args, changes)
    predictor = bench.predictor_for(args.model)
    for name in args.conditions:
        figures = {}
        for seed in range(bench.SEED, bench.SEED + args.seeds):
            tomo, truth, hidden, px = bench.volume(name, changes[name], "dark", seed)
            probs = []
            for f in args.factors:
                small = tomo if f == 1 else reduced(tomo, f)
                prob, _ = predictor.predict_array(small, pixel_size=px * f, polarity="auto")
                if f != 1:
                    prob = ndimage.zoom(prob, np.array(tomo.shape) / np.array(prob.shape), order=1)
                probs.append(prob)
                figures.setdefault(f, []).append(bench.score(prob >= predictor.card.threshold, truth, hidden))
            if args.means:
                figures.setdefault("mean", []).append(bench.score(np.mean(probs, 0) >= predictor.card.threshold,
                                                                  truth, hidden))
        for f, scores in figures.items():
            report(name, "factor %-4s" % (f if f == "mean" else "%.1f" % f), scores)


def report(name, label, scores):
    """One line of mean figures over the volumes of a condition."""
    mean = {k: np.mean([s[k] for s in scores]) for k in scores[0]}
    print("%-14s %s Dice %.3f  tol %.3f  recall %.3f  marked %6.3f%%" % (
        name, label, mean["dice"], mean["tolerant_dice"], mean["tolerant_recall"], 100 * mean["marked"]), flush=True)


def engine_sets(args, changes):
    predictors = {s: bench.predictor_for("%s@%s" % (args.model, s)) for s in args.sets}
    for name in args.conditions:
        figures = {s: [] for s in args.sets}
        for seed in range(bench.SEED, bench.SEED + args.seeds):
            tomo, truth, hidden, px = bench.volume(name, changes[name], "dark", seed)
            for s, predictor in predictors.items():
                _, mask = predictor.predict_array(tomo, pixel_size=px, polarity="auto")
                figures[s].append(bench.score(mask.astype(bool), truth, hidden))
        for s, scores in figures.items():
            report(name, "scales %-10s" % s, scores)


if __name__ == "__main__":
    main()
