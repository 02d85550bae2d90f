"""Finding vesicles on phantoms whose vesicles are known: recall, precision, radius and centre errors, and the time.

Conditions, each on volumes of fixed seeds (950 on, which no training run used):
- cell truth: the membrane labels of cell phantoms (``simulate.generate``, 96 x 256 x 256 at 10 Å): the finder
  alone, on perfect masks;
- raw truth: the membrane labels of raw phantoms (the reference acquisition of bench_volumes) without the membrane
  the missing wedge hides, the mask a perfect segmenter of a tomogram could give;
- raw segmented (10 and 20 Å): the mask the model (by default the shipped tomogram model) gives on the raw
  tomogram, through the same path as ``membraneseg segment``: what a user gets.

A vesicle counts where its centre lies in the volume and it lies whole within the volume in x and y (one cut by the
side of the field of view shows no closed ring). Targets are for vesicles of 30 nm diameter and more: a true vesicle
is found when a vesicle is reported within half its radius (at least 3 voxels) of its centre with a radius within
a factor of 1.5; a reported vesicle is right when it matches any true vesicle (of any size or place), so precision
counts only inventions as errors. Nested (inside another vesicle) and touching (membranes less than 6 nm apart)
vesicles are also counted on their own.

    .venv/bin/python bench/bench_vesicles.py              # 4 volumes per condition
    .venv/bin/python bench/bench_vesicles.py --quick --png bench/out/vesicles
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from bench_volumes import phantom  # noqa: E402
from membraneseg.engine.network import modelfile  # noqa: E402
from membraneseg.engine.simulation import simulate  # noqa: E402
from membraneseg.engine.vesicles import figure, find  # noqa: E402

SEED = 950
MIN_DIAMETER_NM = 30.0
SHAPE = (96, 256, 256)
CONDITIONS = ("cell truth", "raw truth", "raw segmented", "raw segmented 20 Å")


def volume(condition, seed, predictor):
    """(mask, tomogram, pixel size, truth vesicles) of one condition."""
    if condition == "cell truth":
        p = simulate.generate(SHAPE, 10.0, seed)
        return np.isin(p.labels, simulate.MEMBRANE_LABELS), p.tomogram, 10.0, p.vesicles
    p = phantom(dict(pixel_size=20.0) if "20" in condition else {}, "dark", seed, max_depth=SHAPE[0])
    px = p.settings.pixel_size
    if "segmented" in condition:
        _, mask = predictor.predict_array(p.tomogram, pixel_size=px, polarity="auto")
        return mask.astype(bool), p.tomogram, px, p.vesicles
    return np.isin(p.labels, simulate.MEMBRANE_LABELS), p.tomogram, px, p.vesicles


def scorable(v, shape):
    c, r = v["centre"], v["axes"][0]
    return bool(np.all((c >= 0) & (c <= np.array(shape) - 1)) and np.all(c[1:] - r >= 0)
                and np.all(c[1:] + r <= np.array(shape[1:]) - 1))


def relations(truth, voxel_size):
    """Per true vesicle: nested (its centre inside another, larger one) and touching (membranes < 6 nm apart)."""
    nested, touching = [], []
    for i, v in enumerate(truth):
        others = [w for j, w in enumerate(truth) if j != i]
        nested.append(any(np.linalg.norm(v["centre"] - w["centre"]) < w["radius"] and w["radius"] > v["radius"]
                          for w in others))
        touching.append(any(abs(np.linalg.norm(v["centre"] - w["centre"]) - v["radius"] - w["radius"])
                            < 60.0 / voxel_size for w in others))
    return nested, touching


def match(truth, found):
    """Greedy matching by centre distance: {truth index: found index}."""
    pairs = []
    for i, v in enumerate(truth):
        for j, f in enumerate(found):
            d = float(np.linalg.norm(v["centre"] - f.centre))
            if d <= max(3.0, 0.5 * v["radius"]) and 1 / 1.5 <= f.radius / v["radius"] <= 1.5:
                pairs.append((d, i, j))
    out, used = {}, set()
    for d, i, j in sorted(pairs):
        if i not in out and j not in used:
            out[i] = j
            used.add(j)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=4, help="volumes per condition (default 4)")
    parser.add_argument("--quick", action="store_true", help="two volumes per condition")
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=list(CONDITIONS))
    parser.add_argument("--model", default=modelfile.default_model_path(volumes=True),
                        help="model for the segmented conditions (default: the shipped tomogram model)")
    parser.add_argument("--png", metavar="DIR", help="write each volume's picture here")
    args = parser.parse_args()
    predictor = None
    if any("segmented" in c for c in args.conditions):
        from membraneseg.engine.segmentation.predict import Predictor
        predictor = Predictor(args.model)
    if args.png:
        os.makedirs(args.png, exist_ok=True)
    seeds = [SEED + i for i in range(2 if args.quick else args.seeds)]
    print("%-20s %6s %6s %7s %9s %8s %10s %9s %9s %8s" % ("condition", "truth", "found", "recall", "precision",
                                                          "radius", "centre px", "nested", "touching", "s/vol"))
    for condition in args.conditions:
        hits, total, right, reported, radius_err, centre_err, seconds = 0, 0, 0, 0, [], [], []
        nested_hits, nested_total, touching_hits, touching_total = 0, 0, 0, 0
        for seed in seeds:
            mask, tomo, px, truth = volume(condition, seed, predictor)
            start = time.perf_counter()
            found, _ = find.find(mask, px)
            seconds.append(time.perf_counter() - start)
            matched = match(truth, found)
            nested, touching = relations(truth, px)
            reported += len(found)
            right += len(matched)
            for i, v in enumerate(truth):
                if not scorable(v, mask.shape) or 2 * v["radius"] * px / 10 < MIN_DIAMETER_NM:
                    continue
                total += 1
                nested_total += nested[i]
                touching_total += touching[i]
                if i in matched:
                    f = found[matched[i]]
                    hits += 1
                    nested_hits += nested[i]
                    touching_hits += touching[i]
                    radius_err.append(abs(f.radius - v["radius"]) / v["radius"])
                    centre_err.append(float(np.linalg.norm(f.centre - v["centre"])))
            if args.png:
                name = "%s-%d.png" % (condition.replace(" ", "_"), seed)
                import cv2
                cv2.imwrite(os.path.join(args.png, name), figure.picture(tomo, found, px))
        print("%-20s %6d %6d %7.3f %9.3f %7.1f%% %10.2f %4d/%-4d %4d/%-4d %8.1f" % (
            condition, total, reported, hits / max(total, 1), right / max(reported, 1),
            100 * np.median(radius_err) if radius_err else np.nan, np.median(centre_err) if centre_err else np.nan,
            nested_hits, nested_total, touching_hits, touching_total, np.mean(seconds)), flush=True)
    print("vesicles of %g nm and more; %d volume(s) per condition; model %s" % (
        MIN_DIAMETER_NM, len(seeds), args.model if predictor else "-"))


if __name__ == "__main__":
    main()
