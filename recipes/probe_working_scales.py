"""Probe: for a tomogram coarser than the model, should the test-time scales be counted from the model's pixel
size rather than from the input's? No training here.

Today a 40 Å input for a 10 Å model is upsampled 4x and segmented once: its 2x and 4x copies would be coarser
than 60 Å, so they are skipped. A 10 Å input, by contrast, is seen by the network at 10, 20 and 40 Å per voxel and
the maps are averaged, which helped a lot there (raw-model.md, "Test-time scale"). This probe segments each coarse
volume of bench/bench_volumes.py with the network working at 10, 20 and 40 Å (upsampled where finer than the
input, smoothed and reduced where coarser), and scores the averaged maps of several sets, at the model's threshold.

    .venv/bin/python recipes/probe_working_scales.py --model membraneseg/weights/tomograms --seeds 3
"""
import argparse
import itertools
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "bench"))

import bench_volumes as bench  # noqa: E402
from membraneseg.engine.segmentation import scales  # noqa: E402

CONDITIONS = ("20 Å", "30 Å", "40 Å", "negatives 40 Å", "microtubules 40 Å")
WORKING = (10.0, 20.0, 40.0)


def map_at(predictor, tomo, px, working):
    """The probability map of ``tomo`` (``px`` Å) with the network working at ``working`` Å per voxel, on
    ``tomo``'s grid."""
    if working <= px * 1.001:
        predictor.max_upsampling = px / working
        prob, _ = predictor.predict_array(tomo, pixel_size=px, polarity="auto")
        return prob
    small = scales.reduce(tomo, working / px)
    predictor.max_upsampling = 1.0
    small_prob, _ = predictor.predict_array(small, pixel_size=working, polarity="auto")
    prob = np.zeros(tomo.shape, np.float32)
    scales.add_restored(prob, small_prob)
    return prob


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="membraneseg/weights/tomograms")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--conditions", nargs="+", default=CONDITIONS)
    args = parser.parse_args()
    from membraneseg.engine.segmentation.predict import Predictor
    predictor = Predictor(args.model, test_scales=[1])
    threshold = predictor.card.threshold
    sets = [s for n in (1, 2, 3) for s in itertools.combinations(WORKING, n)]
    start = time.time()
    for name, changes in [c for c in bench.CONDITIONS if c[0] in args.conditions]:
        per = {}
        for seed in range(bench.SEED, bench.SEED + args.seeds):
            tomo, truth, hidden, px = bench.volume(name, changes, "dark", seed)
            maps = {w: map_at(predictor, tomo, px, w) for w in WORKING}
            for s in sets:
                prob = sum(maps[w] for w in s) / len(s)
                per.setdefault(s, []).append(bench.score(prob >= threshold, truth, hidden))
        for s, v in per.items():
            f = {k: float(np.mean([x[k] for x in v])) for k in v[0]}
            print("%-18s %-14s Dice %.3f  tol %.3f  recall %.3f  marked %6.3f%%" % (
                name, "+".join("%g" % w for w in s) + " Å", f["dice"], f["tolerant_dice"], f["tolerant_recall"],
                100 * f["marked"]), flush=True)
    print("model %s (threshold %.3f), %d seed(s), dark volumes, %.0f s" % (args.model, threshold, args.seeds,
                                                                           time.time() - start))


if __name__ == "__main__":
    main()
