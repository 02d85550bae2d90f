"""The default model's recipe: pretraining on phantoms, fine-tuning on the real annotated slices, and the
leave-one-group-out (LOGO) comparison of arms that chooses what ships.

    .venv/bin/python recipes/default_model.py logo   [--arms NAME ...]   # validation runs, resumable
    .venv/bin/python recipes/default_model.py report                     # per-group tables from the results
    .venv/bin/python recipes/default_model.py final  --arm NAME          # train the shipped model

Everything is set in recipes/default_model.json (seeds, data, presets, epochs, augmentation). The shared data
(../shared/data/dlcryotomo-slices) are read at run time; none of them are written into the repository. Each unit
of work (a pretraining, an arm on a fold) writes its result under recipes/runs/ and is skipped when rerun, so an
interrupted run continues where it stopped. Results (JSON) and logs are copied to recipes/results/.

The slices are augmented copies of a few fields of view, so folds hold whole groups: G0-G3 share one style and are
one fold. Foreground is mask > 127. Figures are pooled over the held-out slices and given per group.
"""
import argparse
import csv
import json
import logging
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from membraneseg.engine import io, metrics, phantoms, train  # noqa: E402

log = logging.getLogger("recipe")
HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.join(HERE, "runs")
RESULTS = os.path.join(HERE, "results")


def load_config(path=os.path.join(HERE, "default_model.json")):
    with open(path) as f:
        return json.load(f)


# ----------------------------------------------------------------------------- data
def slices_by_group(cfg):
    """{group: [(image path, mask path), ...]} of the labelled slices, read from the data's manifest."""
    root = os.path.join(ROOT, cfg["data"]) if not os.path.isabs(cfg["data"]) else cfg["data"]
    manifest = os.path.join(root, "manifest.csv")
    if not os.path.exists(manifest):
        raise SystemExit("shared data not found at %s" % root)
    groups = {}
    with open(manifest) as f:
        for row in csv.DictReader(f):
            if row["labeled"] == "1":
                groups.setdefault(row["group"], []).append((os.path.join(root, row["image_png"]),
                                                            os.path.join(root, row["mask_png"])))
    return groups


def fold_items(cfg, groups, names, config, limit=None):
    items = []
    for fold in names:
        for g in cfg["folds"][fold]:
            pairs = groups[g][:limit] if limit else groups[g]
            items += [train.load_image_pair(i, m, config) for i, m in pairs]
    return items


# ----------------------------------------------------------------------------- pretraining
def pretrain(cfg, preset, context):
    """Pretrain on phantoms (once per preset and context); returns the model folder."""
    p = cfg["pretrain"]
    out = os.path.join(RUNS, "pretrain-%s-k%d" % (preset, context))
    if os.path.exists(os.path.join(out, "membraneseg_model.json")):
        return out
    config = train.TrainConfig(preset=preset, context=context, pixel_size=cfg["pixel_size"], seed=cfg["seed"],
                               epochs=p["epochs"], steps_per_epoch=p["steps"], batch_size=p["batch_size"],
                               learning_rate=p["learning_rate"], loss=p["loss"], patience=p["patience"],
                               name="pretrain %s k%d" % (preset, context))
    samples = []
    for i in range(p["count"] + p["val_count"]):
        tomo, labels = make_phantom(p, p["seed"] + i)
        samples.append(train.Sample(train.preprocess.normalize(tomo, train.preprocess.robust_stats(tomo)),
                                    np.isin(labels, config.membrane_labels).astype(np.uint8),
                                    "phantom seed %d" % (p["seed"] + i), False))
    log.info("pretraining %s k%d on %d phantoms", preset, context, p["count"])
    train.train(samples[:p["count"]], samples[p["count"]:], config, out,
                provenance={"data": "phantoms (%s), seeds %d.." % (p["kind"], p["seed"])})
    return out


def make_phantom(p, seed):
    if p["kind"] == "cell":
        from membraneseg.engine import simulate
        return simulate.cell_phantom(tuple(p["shape"]), p["voxel_size"], seed)
    return phantoms.simple_phantom(tuple(p["shape"]), p["voxel_size"], seed=seed)


# ----------------------------------------------------------------------------- LOGO
def run_fold(cfg, arm, test_fold, groups):
    """Fine-tune (or train) ``arm`` without ``test_fold``; score the held-out slices. Cached on disk."""
    tag = "%s-%s" % (arm["name"], test_fold)
    out = os.path.join(RUNS, "logo", tag)
    result_path = os.path.join(out, "result.json")
    if os.path.exists(result_path):
        with open(result_path) as f:
            return json.load(f)
    folds = [f for f in cfg["folds"] if f != test_fold]
    val_fold = folds[(list(cfg["folds"]).index(test_fold)) % len(folds)]   # inner validation: a whole fold
    train_folds = [f for f in folds if f != val_fold]
    ft = cfg["finetune"]
    config = train.TrainConfig(preset=arm["preset"], context=arm["context"], pixel_size=cfg["pixel_size"],
                               seed=cfg["seed"], epochs=ft["epochs"], steps_per_epoch=ft["steps"],
                               batch_size=ft["batch_size"], learning_rate=ft["learning_rate"], loss=ft["loss"],
                               patience=ft["patience"], name=tag)
    if arm.get("pretrained"):
        config.start_model = pretrain(cfg, arm["preset"], arm["context"])
    t0 = time.time()
    card = train.train(fold_items(cfg, groups, train_folds, config),
                       fold_items(cfg, groups, [val_fold], config, limit=ft["val_per_group"]), config, out,
                       provenance={"test_fold": test_fold, "val_fold": val_fold, "train_folds": train_folds})
    scores = score(out, cfg, groups, test_fold)
    result = dict(arm=arm["name"], test_fold=test_fold, val_fold=val_fold, train_seconds=round(time.time() - t0),
                  threshold=card.threshold, **scores)
    with open(result_path, "w") as f:
        json.dump(result, f, indent=1)
    return result


def score(model_dir, cfg, groups, test_fold):
    """Per-group and pooled figures on the held-out slices, at the model's threshold; the raw counts are kept
    so tables can be pooled over folds, and a probability histogram so the threshold can be calibrated over
    all held-out groups."""
    from membraneseg.engine import predict
    p = predict.Predictor(model_dir, batch_size=8)
    per_group = {}
    for g in cfg["folds"][test_fold]:
        tp = fp = fn = 0
        tol = {"tp_p": 0, "n_p": 0, "tp_r": 0, "n_r": 0}
        hist_pos, hist_neg = np.zeros(100, np.int64), np.zeros(100, np.int64)
        t = time.time()
        for image, mask in groups[g]:
            prob, _ = p.predict_array(io.read(image).data, cfg["pixel_size"])
            ref = np.asarray(io.read(mask).data) > 127
            pred = prob >= p.card.threshold
            a, b, c, _ = metrics.confusion(pred, ref)
            tp, fp, fn = tp + a, fp + b, fn + c
            for k, v in tolerant_counts(pred[0], ref[0], cfg["tolerance_px"]).items():
                tol[k] += v
            hist_pos += np.histogram(prob[ref], 100, (0, 1))[0]
            hist_neg += np.histogram(prob[~ref], 100, (0, 1))[0]
        per_group[g] = dict(n=len(groups[g]), tp=tp, fp=fp, fn=fn, tolerant=tol,
                            hist_pos=hist_pos.tolist(), hist_neg=hist_neg.tolist(),
                            ms_per_slice=round(1000 * (time.time() - t) / len(groups[g]), 1))
    return {"groups": per_group}


def tolerant_counts(pred, ref, tol):
    """Counts for the boundary-tolerant Dice: predicted pixels within ``tol`` px of the reference, and reference
    pixels within ``tol`` px of the prediction."""
    from scipy import ndimage
    near_ref = ndimage.distance_transform_edt(~ref) <= tol
    near_pred = ndimage.distance_transform_edt(~pred) <= tol
    return {"tp_p": int(np.count_nonzero(pred & near_ref)), "n_p": int(np.count_nonzero(pred)),
            "tp_r": int(np.count_nonzero(ref & near_pred)), "n_r": int(np.count_nonzero(ref))}


def figures(tp, fp, fn, tol):
    prec = tol["tp_p"] / tol["n_p"] if tol["n_p"] else 0.0
    rec = tol["tp_r"] / tol["n_r"] if tol["n_r"] else 0.0
    return dict(dice=metrics.dice_from(tp, fp, fn), iou=metrics.iou_from(tp, fp, fn),
                tolerant_dice=2 * prec * rec / (prec + rec) if prec + rec else 0.0)


def report(cfg):
    """Per arm: Dice/IoU/tolerant Dice per held-out group and pooled, from the cached results."""
    rows = []
    for arm in cfg["arms"]:
        results = [r for r in (_cached(arm["name"], f) for f in cfg["folds"]) if r]
        if not results:
            continue
        groups = {g: v for r in results for g, v in r["groups"].items()}
        pooled = [sum(v[k] for v in groups.values()) for k in ("tp", "fp", "fn")]
        tol = {k: sum(v["tolerant"][k] for v in groups.values()) for k in ("tp_p", "n_p", "tp_r", "n_r")}
        line = {"arm": arm["name"], "folds": len(results), "pooled": figures(*pooled, tol),
                "groups": {g: figures(v["tp"], v["fp"], v["fn"], v["tolerant"]) for g, v in sorted(groups.items())},
                "ms_per_slice": round(float(np.mean([v["ms_per_slice"] for v in groups.values()])), 1)}
        rows.append(line)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "logo.json"), "w") as f:
        json.dump(rows, f, indent=1)
    for r in rows:
        print("%-28s folds %d  pooled Dice %.3f IoU %.3f tolDice %.3f  (%.0f ms/slice)" % (
            r["arm"], r["folds"], r["pooled"]["dice"], r["pooled"]["iou"], r["pooled"]["tolerant_dice"],
            r["ms_per_slice"]))
        for g, v in r["groups"].items():
            print("    %-4s Dice %.3f IoU %.3f tolDice %.3f" % (g, v["dice"], v["iou"], v["tolerant_dice"]))
    return rows


def _cached(arm, fold):
    path = os.path.join(RUNS, "logo", "%s-%s" % (arm, fold), "result.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=("logo", "report"))
    parser.add_argument("--arms", nargs="*", help="arm names to run (default: all in the config)")
    parser.add_argument("--folds", nargs="*", help="test folds to run (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    cfg = load_config()
    if args.stage == "report":
        report(cfg)
        return
    groups = slices_by_group(cfg)
    for arm in cfg["arms"]:
        if args.arms and arm["name"] not in args.arms:
            continue
        for fold in cfg["folds"]:
            if args.folds and fold not in args.folds:
                continue
            r = run_fold(cfg, arm, fold, groups)
            log.info("%s held out %s: %s", arm["name"], fold, {g: "Dice %.3f" % figures(
                v["tp"], v["fp"], v["fn"], v["tolerant"])["dice"] for g, v in r["groups"].items()})
        report(cfg)


if __name__ == "__main__":
    main()
