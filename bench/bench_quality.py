"""Quality against speed: Dice and time of each segmentation mode and precision, on held-out phantoms and on the
shared real slices, all in one run.

    .venv/bin/python bench/bench_quality.py [--model DIR] [--real-model DIR] [--groups G4 G6]

Phantoms: two simple phantoms (vesicles with a bilayer profile in noise, as the starter model was trained on)
of 24x768x768 at 10 Å, seeds 300-301, which no shipped model has seen. Slices this wide go through overlapping
224² windows, so the modes differ in overlap as well as in test-time flips. Model: --model (default: the shipped
model).
Real slices: the labelled 256x256 slices of ../shared/data/dlcryotomo-slices (read here, never copied) of the
groups given (default: all), foreground = mask > 127, pooled Dice. A 256² slice fits in one window, so only the
flips of the quality mode change it; "224² windows" is how every slice went through before (four overlapping
224² windows per 256² slice). Model: --real-model (default: --model); pick one that did not train on these
groups, or the figures mean little.
"""
import argparse
import csv
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "dlcryotomo-slices")
# name -> (mode, precision, Predictor keyword arguments)
VARIANTS = [
    ("preview", "preview", "fp32", {}),
    ("default", "default", "fp32", {}),
    ("quality", "quality", "fp32", {}),
    ("default, bf16", "default", "bf16", {}),
    ("default, 224² windows", "default", "fp32", {"single_window_max": 0}),
]


def load():
    return "load %.2f" % os.getloadavg()[0]


def phantoms():
    from membraneseg.engine.simulation import phantoms as ph
    out = []
    for seed in (300, 301):
        tomo, labels = ph.simple_phantom((24, 768, 768), 10.0, seed=seed, snr=1.5)
        out.append((tomo, labels > 0))
    return out


def real_slices(groups):
    from membraneseg.engine.core import io
    with open(os.path.join(DATA, "manifest.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["labeled"] == "1" and (not groups or r["group"] in groups)]
    return [(np.asarray(io.read(os.path.join(DATA, r["image_png"])).data[0], np.float32),
             np.asarray(io.read(os.path.join(DATA, r["mask_png"])).data[0]) > 127) for r in rows]


def run(model, items, variants):
    """Pooled Dice, seconds and the probabilities of every variant over ``items`` [(image or stack, truth)]."""
    from membraneseg.engine.measurement import metrics
    from membraneseg.engine.segmentation import predict
    results = {}
    for name, mode, precision, kwargs in variants:
        overlap, tta = predict.MODES[mode]
        p = predict.Predictor(model, tta=tta, precision=precision, **kwargs)
        p.predict_array(items[0][0], 10.0, overlap=overlap)            # compile and warm up
        tp = fp = fn = 0
        probs = []
        t = time.perf_counter()
        for image, truth in items:
            prob, _ = p.predict_array(image, 10.0, overlap=overlap)
            prob = prob.reshape(truth.shape)
            a, b, c, _ = metrics.confusion(prob >= p.card.threshold, truth)
            tp, fp, fn = tp + a, fp + b, fn + c
            probs.append(prob)
        results[name] = (metrics.dice_from(tp, fp, fn), time.perf_counter() - t, probs, load())
    return results


def report(title, results, per, count):
    print(title)
    print("  %-24s %7s %8s %14s" % ("variant", "Dice", "ΔDice", "ms per " + per))
    base = results["default"][0]
    for name, (dice, seconds, _, ld) in results.items():
        print("  %-24s %7.4f %+8.4f %14.1f   (%s)" % (name, dice, dice - base, 1000 * seconds / count, ld))
    diff = max(float(np.abs(a - b).max()) for a, b in zip(results["default, bf16"][2], results["default"][2]))
    print("  bf16 against fp32: largest probability difference %.4f" % diff)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder for the phantoms (default: shipped model)")
    parser.add_argument("--real-model", default=None, help="model folder for the real slices (default: --model)")
    parser.add_argument("--groups", nargs="*", default=[], help="groups of real slices (default: all)")
    args = parser.parse_args()
    from membraneseg.engine.network import modelfile
    model = args.model or modelfile.default_model_path()
    real_model = args.real_model or model

    items = phantoms()
    results = run(model, items, VARIANTS)
    report("held-out phantoms (2 x 24x768x768), model %s" % os.path.basename(model), results, "768² slice",
           sum(len(x) for x, _ in items))
    if os.path.isdir(DATA):
        items = real_slices(args.groups)
        results = run(real_model, items, VARIANTS)
        report("real slices (%d of 256x256, groups %s), model %s" % (
            len(items), " ".join(args.groups) or "all", os.path.basename(real_model)), results, "256² slice",
            len(items))
    else:
        print("no %s: real slices skipped" % DATA)


if __name__ == "__main__":
    main()
