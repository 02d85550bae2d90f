"""Models on simulated raw tomograms they never saw: Dice and boundary-tolerant Dice per condition, and the fraction
of voxels called membrane in volumes that hold none.

Conditions vary one thing at a time around the reference acquisition (10 Å, 100 e/Å², 4 µm underfocus, 300 kV,
±60° every 3°, 200 nm of ice, WBP, raw look, dark density): the dose, the defocus, the pixel size, the look, the
polarity (every condition is also run inverted), and negatives (microtubules, actin, dense particles, gold, a carbon
edge and ice contamination, no membrane; the same with the ice dark, as diffraction makes real crystals; and the same
without carbon and ice, at 10 and 40 Å) and empty volumes (ice and noise). Volumes come from fixed seeds (900 on),
disjoint from the training recipe's (recipes/raw_model.json), so every model sees the same volumes.

    .venv/bin/python bench/bench_volumes.py --model membraneseg/weights/default recipes/runs/raw/raw-ft-e60
    .venv/bin/python bench/bench_volumes.py --quick --png bench/out/volumes     # 1 seed; overlays to look at

Each model segments each volume at its own calibrated threshold, through the same path as ``membraneseg segment``
(polarity measured, resampled to the model's pixel size and back; ``--polarity dark`` gives the volumes to the
network as they are instead). Dice is against the membrane labels (1 and 2) at the volume's
pixel size; tolerant Dice counts a voxel within 2 voxels (3D) as found. Membrane the missing wedge hides (label
7: never within 30° of edge-on at any tilt) counts neither as found nor as invented.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from membraneseg.engine.measurement import metrics  # noqa: E402
from membraneseg.engine.simulation import raw  # noqa: E402
from membraneseg.engine.simulation.simulate import HIDDEN_LABEL, MEMBRANE_LABELS  # noqa: E402

REFERENCE = dict(pixel_size=10.0, dose=100.0, defocus=40000.0, kv=300.0, amplitude=0.07, phase_flip=False,
                 scheme="dose-symmetric", tilt_range=60.0, tilt_step=3.0, thickness=2000.0, misalignment=1.0,
                 envelope_b=100.0, detector_noise=0.1, reconstruction="wbp", look="raw", polarity="dark",
                 content="cell", carbon=False, contamination=False)
CONDITIONS = [("reference", {}),
              ("dose 60", dict(dose=60.0)), ("dose 180", dict(dose=180.0)),
              ("defocus 2 µm", dict(defocus=20000.0)), ("defocus 6 µm", dict(defocus=60000.0)),
              ("phase flipped", dict(phase_flip=True)), ("sirt", dict(reconstruction="sirt")),
              ("5 Å", dict(pixel_size=5.0)), ("7 Å", dict(pixel_size=7.0)), ("20 Å", dict(pixel_size=20.0)),
              ("30 Å", dict(pixel_size=30.0)),
              ("40 Å", dict(pixel_size=40.0)),
              ("lowpass", dict(look="lowpass")), ("eed", dict(look="eed")), ("denoised", dict(look="denoised")),
              ("negatives", dict(content="negatives", carbon=True, contamination=True)),
              ("negatives, dark ice", dict(content="negatives", carbon=True, contamination=True,
                                           ice_absorption=0.6)),
              ("no ice, no carbon", dict(content="negatives")),
              ("negatives 40 Å", dict(content="negatives", pixel_size=40.0)),
              ("microtubules", dict(content="microtubules")),
              ("microtubules 30 Å", dict(content="microtubules", pixel_size=30.0)),
              ("microtubules 40 Å", dict(content="microtubules", pixel_size=40.0)),
              ("empty", dict(content="empty"))]
# conditions without membrane, scored by the voxels called membrane
MEMBRANE_FREE = tuple(name for name, changes in CONDITIONS if changes.get("content", "cell") != "cell")
SEED = 900
TOLERANCE = 2
MAX_DEPTH, FIELD, SIDES = 64, 5120.0, (96, 256)


def phantom(changes, polarity, seed, max_depth=MAX_DEPTH):
    """The raw phantom (raw.RawPhantom) of one condition: the reference acquisition with ``changes``."""
    settings = raw.RawSettings(**dict(REFERENCE, **changes, polarity=polarity, sirt_iterations=20, lowpass=40.0,
                                      denoise_gain=20.0)).check()
    depth = int(np.clip(round(settings.thickness / settings.pixel_size), 16, max_depth))
    side = int(np.clip(round(FIELD / settings.pixel_size), *SIDES))
    return raw.generate_raw((depth, side, side), settings, seed)


def volume(name, changes, polarity, seed):
    """(tomogram, membrane mask, hidden membrane, pixel size) of one condition."""
    p = phantom(changes, polarity, seed)
    return p.tomogram, np.isin(p.labels, MEMBRANE_LABELS), p.labels == HIDDEN_LABEL, p.settings.pixel_size


def score(mask, truth, hidden):
    """Figures of a mask against the visible membrane; what it marks on membrane the missing wedge hides is not
    counted either way (no annotator could trace it)."""
    mask = mask & ~hidden
    tp, fp, fn, _ = metrics.confusion(mask, truth)
    tol = metrics.tolerant_scores(*metrics.tolerant_counts(mask, truth, TOLERANCE))
    return dict(dice=metrics.dice_from(tp, fp, fn), tolerant_dice=tol["tolerant_dice"],
                tolerant_recall=tol["tolerant_recall"], tolerant_precision=tol["tolerant_precision"],
                marked=float(mask.mean()))


def overlay(path, tomo, mask, truth, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    z = tomo.shape[0] // 2
    rgb = np.repeat(np.clip((tomo[z] + 3) / 6, 0, 1)[..., None], 3, axis=2)
    shown = rgb.copy()
    shown[truth[z] & ~mask[z]] = (0.1, 0.9, 0.1)        # missed: green
    shown[mask[z] & ~truth[z]] = (0.95, 0.1, 0.1)       # invented: red
    shown[mask[z] & truth[z]] = (1.0, 0.85, 0.0)        # found: yellow
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2))
    axes[0].imshow(rgb)
    axes[1].imshow(shown)
    for a in axes:
        a.axis("off")
    fig.suptitle(title + "   (yellow found, green missed, red invented)")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def predictor_for(spec):
    """A Predictor for ``PATH`` (the card's test-time scales) or ``PATH@F,F,...`` (those scales instead)."""
    from membraneseg.engine.segmentation.predict import Predictor
    path, _, factors = spec.partition("@")
    return Predictor(path, test_scales=[float(f) for f in factors.split(",")] if factors else None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", nargs="+", default=["membraneseg/weights/default"],
                        help="model folders to compare, in one run; PATH@F,F,... runs a model at those test-time "
                             "scales instead of its card's (PATH@1: the volume as given only)")
    parser.add_argument("--seeds", type=int, default=2, help="volumes per condition and polarity (default 2)")
    parser.add_argument("--quick", action="store_true", help="one volume per condition and polarity")
    parser.add_argument("--conditions", nargs="+", help="only these conditions (names as printed)")
    parser.add_argument("--polarity", choices=("auto", "dark", "bright"), default="auto",
                        help="what segmentation is told of the contrast polarity: auto measures it, as segment "
                             "does by default; dark gives every volume to the network as it is, which shows "
                             "whether a model itself works on both polarities (default auto)")
    parser.add_argument("--thresholds", nargs="+", type=float, metavar="T",
                        help="score each model's probability map at these thresholds too, one column each, "
                             "beside its card's (the maps are computed once)")
    parser.add_argument("--png", metavar="DIR", help="write the middle slice of each volume with its masks")
    parser.add_argument("--json", metavar="FILE", help="write every figure here")
    args = parser.parse_args()
    predictors = [predictor_for(m) for m in args.model]
    # one column per model and threshold: the card's (None) first
    columns = [(k, t) for k in range(len(predictors)) for t in [None] + (args.thresholds or [])]
    labels = [args.model[k] + ("" if t is None else " at %.3f" % t) for k, t in columns]
    seeds = [SEED + i for i in range(1 if args.quick else args.seeds)]
    conditions = [c for c in CONDITIONS if not args.conditions or c[0] in args.conditions]
    if args.png:
        os.makedirs(args.png, exist_ok=True)
    rows, start = [], time.time()
    for name, changes in conditions:
        for polarity in raw.POLARITIES:
            per_column = [[] for _ in columns]
            for seed in seeds:
                tomo, truth, hidden, px = volume(name, changes, polarity, seed)
                for k, predictor in enumerate(predictors):
                    t0 = time.time()
                    prob, mask = predictor.predict_array(tomo, pixel_size=px, polarity=args.polarity)
                    seconds = time.time() - t0
                    for c, (kc, t) in enumerate(columns):
                        if kc == k:
                            chosen = mask.astype(bool) if t is None else prob >= t
                            per_column[c].append(dict(score(chosen, truth, hidden), seconds=seconds))
                    if args.png:
                        overlay(os.path.join(args.png, "%s-%s-%d-model%d.png" % (name.replace(" ", "_"), polarity,
                                                                               seed, k)),
                                tomo, mask.astype(bool), truth, "%s, %s, seed %d, %s" % (
                                    name, polarity, seed, os.path.basename(args.model[k].rstrip("/"))))
            row = dict(condition=name, polarity=polarity,
                       models={labels[c]: {key: float(np.mean([s[key] for s in per_column[c]]))
                                           for key in per_column[c][0]} for c in range(len(columns))})
            rows.append(row)
            cells = []
            for m in labels:
                f = row["models"][m]
                cells.append(("marked %6.3f%%" % (100 * f["marked"]) if name in MEMBRANE_FREE
                              else "Dice %.3f  tol %.3f  marked %5.2f%%" % (f["dice"], f["tolerant_dice"],
                                                                           100 * f["marked"]))
                             + "  %4.1f s" % f["seconds"])
            print("%-14s %-6s | %s" % (name, polarity, " | ".join(cells)), flush=True)
    print("models: %s; %d volume(s) per condition and polarity; polarity %s; %.0f s" % (
        ", ".join(labels), len(seeds), args.polarity, time.time() - start))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(models=args.model, seeds=seeds, reference=REFERENCE, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
