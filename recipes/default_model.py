"""The default model's recipe: pretraining on phantoms, fine-tuning on the real annotated slices, and the
leave-one-group-out (LOGO) comparison of arms that chooses what ships.

    .venv/bin/python recipes/default_model.py logo   [--arms NAME ...]   # validation runs, resumable
    .venv/bin/python recipes/default_model.py report                     # per-group tables from the results
    .venv/bin/python recipes/default_model.py final  --arm NAME          # train and write the shipped model
    .venv/bin/python recipes/default_model.py pretrain --arm NAME        # only an arm's phantom pretraining

Everything is set in recipes/default_model.json (seeds, data, presets, epochs, augmentation). An arm names its
network (``preset``, ``context``) and where it starts (``pretrained`` on phantoms, or ``continue_from`` another
arm's model of the same fold); it may override pretraining settings (``pretrain``, e.g. more epochs), fine-tuning
settings (``finetune``) and the ``preprocessing``, early-stop on slices of its training groups
(``val_in_training``), and mix synthetic patches in (``gan`` or ``phantom_fraction``).

The shared data (../shared/data/dlcryotomo-slices) are read at run time; none of them are written into the
repository. Each unit of work (a pretraining, an arm on a fold) writes its result under recipes/runs/ and is
skipped when rerun, so an interrupted run continues where it stopped. Results (JSON) and logs are copied to
recipes/results/.

The slices are augmented copies of a few fields of view, so folds hold whole groups: G0-G3 share one style and are
one fold. Foreground is mask > 127. Figures are pooled over the held-out slices and given per group.
"""
import argparse
import csv
import json
import logging
import os
import shutil
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from membraneseg.constants import GAN_JSON, MODEL_JSON, PAIRS_JSON  # noqa: E402
from membraneseg.engine.core import io
from membraneseg.engine.measurement import metrics
from membraneseg.engine.network import modelfile
from membraneseg.engine.simulation import phantoms
from membraneseg.engine.preprocessing import recipes
from membraneseg.engine.training import data, loop
from membraneseg.engine.training.config import TrainConfig

log = logging.getLogger("recipe")
HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.join(HERE, "runs")
RESULTS = os.path.join(HERE, "results")
HELD_OUT_PHANTOMS = (900, 901)        # seeds far from the pretraining's (500..511)
HELD_OUT_PHANTOM_SHAPE = (48, 256, 256)


def load_config(path=os.path.join(HERE, "default_model.json")):
    with open(path) as f:
        return json.load(f)


# ----------------------------------------------------------------------------- data
def shared_data(cfg, data=None):
    """For benchmarks: point ``cfg`` at ``data`` when given; True when the shared slices are there, else say that
    the run is skipped and return False."""
    if data:
        cfg["data"] = os.path.abspath(data)
    root = cfg["data"] if os.path.isabs(cfg["data"]) else os.path.join(ROOT, cfg["data"])
    if os.path.exists(os.path.join(root, "manifest.csv")):
        return True
    print("SKIPPED: the shared slices are not at %s" % root)
    return False


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


def fold_items(cfg, groups, names, config, limit=None, recipe=None):
    """The slices of these folds as training items, with the preprocessing ``recipe`` (EED, CLAHE) applied."""
    items = []
    for fold in names:
        for g in cfg["folds"][fold]:
            pairs = groups[g][:limit] if limit else groups[g]
            items += [data.load_image_pair(i, m, config, recipe=recipe) for i, m in pairs]
    return items


def arm_recipe(arm):
    """The preprocessing an arm's model applies to its input (robust normalisation unless the arm says more)."""
    return arm.get("preprocessing") or {"normalize": "robust"}


# ----------------------------------------------------------------------------- pretraining
def pretrain_settings(cfg, overrides):
    """The config's pretraining settings with an arm's ``pretrain`` overrides (None: none) applied."""
    return dict(cfg["pretrain"], **(overrides or {}))


def pretrain(cfg, preset, context, recipe=None, overrides=None):
    """Pretrain on phantoms (once per preset, context, preprocessing recipe and pretraining overrides, such as
    more epochs); returns the model folder."""
    p = pretrain_settings(cfg, overrides)
    filters = sorted(set(recipes.comparable(recipe)) - {"normalize"})
    changed = ["%s%s" % (k, v) for k, v in sorted((overrides or {}).items())]
    out = os.path.join(RUNS, "pretrain-%s-k%d" % (preset, context) + "".join("-" + s for s in filters + changed))
    if os.path.exists(os.path.join(out, "membraneseg_model.json")):
        return out
    config = TrainConfig(preset=preset, context=context, pixel_size=cfg["pixel_size"], seed=cfg["seed"],
                               epochs=p["epochs"], steps_per_epoch=p["steps"], batch_size=p["batch_size"],
                               learning_rate=p["learning_rate"], loss=p["loss"], patience=p["patience"],
                               rot90=p["rot90"], intensity=p["intensity"], name="pretrain %s k%d" % (preset, context))
    samples = phantom_samples(p, recipe, config)
    log.info("pretraining %s k%d on %d phantoms, %d epochs at most", preset, context, p["count"], p["epochs"])
    loop.train(samples[:p["count"]], samples[p["count"]:], config, out,
                provenance={"data": "phantoms (%s), seeds %d.." % (p["kind"], p["seed"])},
                preprocessing=recipe)
    return out


def phantom_samples(p, recipe, config, validation=True):
    """The pretraining phantoms of settings ``p`` as training items (the validation ones last, unless
    ``validation`` is False), prepared by ``recipe`` as the network sees them."""
    samples = []
    for i in range(p["count"] + (p["val_count"] if validation else 0)):
        tomo, labels = make_phantom(p, p["seed"] + i)
        samples.append(data.Sample(data.network_input(tomo, recipe, p["voxel_size"]),
                                    np.isin(labels, config.membrane_labels).astype(np.uint8),
                                    "phantom seed %d" % (p["seed"] + i), False))
    return samples


def phantom_dice(model_dir, seeds=HELD_OUT_PHANTOMS, shape=HELD_OUT_PHANTOM_SHAPE, voxel_size=10.0):
    """{seed: (Dice, IoU)} of a model on realistic phantoms no recipe trains on, at the model's threshold."""
    from membraneseg.engine.segmentation import predict
    from membraneseg.engine.simulation import simulate
    p = predict.Predictor(model_dir)
    membrane = TrainConfig().membrane_labels
    out = {}
    for seed in seeds:
        tomogram, labels = simulate.cell_phantom(shape, voxel_size, seed)
        _, mask = p.predict_array(tomogram, voxel_size)
        ref = np.isin(labels, membrane)
        out[seed] = (metrics.dice(mask > 0, ref), metrics.iou(mask > 0, ref))
    return out


def make_phantom(p, seed):
    if p["kind"] == "cell":
        from membraneseg.engine.simulation import simulate
        return simulate.cell_phantom(tuple(p["shape"]), p["voxel_size"], seed)
    return phantoms.simple_phantom(tuple(p["shape"]), p["voxel_size"], seed=seed)


# ----------------------------------------------------------------------------- LOGO
def run_fold(cfg, arm, test_fold, groups):
    """Fine-tune (or train) ``arm`` without ``test_fold``; score the held-out slices. Cached on disk."""
    out = run_dir(arm["name"], test_fold)
    tag = os.path.basename(out)
    result_path = os.path.join(out, "result.json")
    if os.path.exists(result_path):
        with open(result_path) as f:
            return json.load(f)
    config = finetune_config(cfg, arm, tag)
    ft = cfg["finetune"]
    recipe = arm_recipe(arm)
    if arm.get("val_in_training"):
        # every other fold trains, as every group does for the shipped model; early stopping watches a few slices
        # of the training groups (optimistic, but the shipped threshold comes from the held-out groups anyway)
        val_fold, train_folds = None, [f for f in cfg["folds"] if f != test_fold]
        val_items = fold_items(cfg, groups, train_folds, config, limit=ft["val_per_train_group"], recipe=recipe)
    else:   # inner validation (early stopping): a whole, small fold that does not train
        val_fold = cfg["val_fold"][test_fold]
        train_folds = [f for f in cfg["folds"] if f not in (test_fold, val_fold)]
        val_items = fold_items(cfg, groups, [val_fold], config, limit=ft["val_per_group"], recipe=recipe)
    config.start_model = start_model(cfg, arm, test_fold, recipe)
    synthetic, config.synthetic_fraction = synthetic_pool(cfg, arm, test_fold, train_folds, groups, config, recipe)
    if os.path.exists(os.path.join(out, MODEL_JSON)):      # trained, but its scoring was cut short
        card = modelfile.read_card(out)
    else:
        card = loop.train(fold_items(cfg, groups, train_folds, config, recipe=recipe), val_items, config, out,
                           provenance={"test_fold": test_fold, "val_fold": val_fold, "train_folds": train_folds},
                           synthetic_samples=synthetic, preprocessing=recipe)
    scores = score(out, cfg, groups, test_fold)
    history = card.provenance["history"]
    best_epoch = min(history, key=lambda e: e.get("val_loss", np.inf))["epoch"]
    result = dict(arm=arm["name"], test_fold=test_fold, val_fold=val_fold,
                  train_seconds=round(card.provenance["seconds"]), threshold=card.threshold, best_epoch=best_epoch,
                  phantom_dice={s: round(d, 4) for s, (d, _) in phantom_dice(out).items()}, **scores)
    with open(result_path, "w") as f:
        json.dump(result, f, indent=1)
    return result


def start_model(cfg, arm, test_fold, recipe):
    """The model an arm starts from: another arm's model of the same fold (``continue_from``: more epochs without
    training the first ones again; ``test_fold`` None is the final stage), the phantom pretraining
    (``pretrained``), or none (from scratch)."""
    if arm.get("continue_from"):
        first = arm["continue_from"]
        path = run_dir(first, test_fold)
        if not os.path.exists(os.path.join(path, MODEL_JSON)):
            raise SystemExit("arm %s continues arm %s, whose model %s is not there: run %s first" % (
                arm["name"], first, path, "`logo --arms %s`" % first if test_fold else "`final --arm %s`" % first))
        return path
    if arm.get("pretrained"):
        return pretrain(cfg, arm["preset"], arm["context"], recipe, arm.get("pretrain"))
    return None


def synthetic_pool(cfg, arm, test_fold, train_folds, groups, config, recipe):
    """The synthetic items an arm mixes into fine-tuning, and the share of the patches cut from them: GAN pairs
    (``gan``, Appendix B), the pretraining phantoms (``phantom_fraction``, so that the model keeps what it learnt
    on them), or none and the configuration's own share."""
    if arm.get("gan") and arm.get("phantom_fraction"):
        raise ValueError("arm %s sets both 'gan' and 'phantom_fraction'; the recipe mixes one synthetic source in"
                         % arm["name"])
    if arm.get("gan"):
        return gan_pairs(cfg, test_fold, train_folds, groups, config), cfg["gan"]["fraction"]
    if arm.get("phantom_fraction"):
        p = pretrain_settings(cfg, arm.get("pretrain"))
        return phantom_samples(p, recipe, config, validation=False), arm["phantom_fraction"]
    return [], config.synthetic_fraction


def gan_pairs(cfg, test_fold, train_folds, groups, config):
    """Synthetic pairs for a fold (Appendix B): a Pix2Pix GAN trained on the fold's training groups only, then
    ``count`` pairs generated from their masks, turned, flipped and blurred. Cached per test fold (``None``, the
    final stage, which trains on every group: "all")."""
    from membraneseg.engine.gan import data as gan_data, generate as gan_generate, pix2pix as gan
    g = cfg["gan"]
    out = os.path.join(RUNS, "gan", test_fold or "all")
    model_dir, pairs_dir = os.path.join(out, "model"), os.path.join(out, "pairs")
    if not os.path.exists(os.path.join(pairs_dir, PAIRS_JSON)):
        pairs = [gan_data.load_image_pair(i, m, cfg["pixel_size"], grp)
                 for fold in train_folds for grp in cfg["folds"][fold] for i, m in groups[grp]]
        card = gan.read_gan_card(model_dir) if os.path.exists(os.path.join(model_dir, GAN_JSON)) else None
        if card is None or card.epochs_run < g["epochs"]:
            t0 = time.time()
            gan.train_gan(pairs, model_dir, size=g["size"], filters=g["filters"], epochs=g["epochs"],
                          steps=g["steps"], batch_size=g["batch_size"], seed=cfg["seed"],
                          pixel_size=cfg["pixel_size"])
            log.info("GAN for held-out %s trained in %.0f s", test_fold, time.time() - t0)
        gan_generate.generate(model_dir, [(os.path.basename(p.source), p.mask) for p in pairs], pairs_dir,
                              g["count"], seed=cfg["seed"], real_images=[(os.path.basename(p.source), p.image)
                                                                        for p in pairs])
    names = sorted(os.listdir(os.path.join(pairs_dir, "images")))
    return [data.load_image_pair(os.path.join(pairs_dir, "images", n), os.path.join(pairs_dir, "masks", n), config,
                                  cfg["pixel_size"], "synthetic") for n in names]


def finetune_config(cfg, arm, name):
    ft = dict(cfg["finetune"], **arm.get("finetune", {}))     # an arm may override fine-tuning settings
    return TrainConfig(preset=arm["preset"], context=arm["context"], pixel_size=cfg["pixel_size"],
                             seed=cfg["seed"], epochs=ft["epochs"], steps_per_epoch=ft["steps"],
                             batch_size=ft["batch_size"], learning_rate=ft["learning_rate"], loss=ft["loss"],
                             patience=ft["patience"], rot90=ft["rot90"], intensity=ft["intensity"],
                             style=ft.get("style", 0.0), border=ft.get("border", "replicate"), name=name)


def score(model_dir, cfg, groups, test_fold, test_scales=None):
    """Per-group and pooled figures on the held-out slices, at the model's threshold; the raw counts are kept
    so tables can be pooled over folds, and a probability histogram so the threshold can be calibrated over
    all held-out groups. ``test_scales``: factors other than the model card's (segmentation/scales.py)."""
    from membraneseg.engine.segmentation import predict
    p = predict.Predictor(model_dir, batch_size=8, test_scales=test_scales)
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
            for k, v in tolerant_counts(pred, ref, cfg["tolerance_px"]).items():
                tol[k] += v
            hist_pos += np.histogram(prob[ref], 100, (0, 1))[0]
            hist_neg += np.histogram(prob[~ref], 100, (0, 1))[0]
        per_group[g] = dict(n=len(groups[g]), tp=tp, fp=fp, fn=fn, tolerant=tol,
                            hist_pos=hist_pos.tolist(), hist_neg=hist_neg.tolist(),
                            ms_per_slice=round(1000 * (time.time() - t) / len(groups[g]), 1))
    return {"groups": per_group}


def print_scores(models, cfg, groups):
    """Score the model of each fold ({fold: model folder}) on that fold's slices; print a row per group and the
    pooled figures, which are returned."""
    scores = []
    print("%-5s %6s %7s %7s %9s %10s" % ("group", "slices", "Dice", "IoU", "tolDice", "ms/slice"))
    for fold, model in models.items():
        for g, v in score(model, cfg, groups, fold)["groups"].items():
            f = figures(v["tp"], v["fp"], v["fn"], v["tolerant"])
            print("%-5s %6d %7.3f %7.3f %9.3f %10.1f" % (g, v["n"], f["dice"], f["iou"], f["tolerant_dice"],
                                                      v["ms_per_slice"]), flush=True)
            scores.append(v)
    f = pooled_figures(scores)
    print("%-5s %6s %7.3f %7.3f %9.3f" % ("all", "", f["dice"], f["iou"], f["tolerant_dice"]))
    return f


def tolerant_counts(pred, ref, tol):
    """Counts for the boundary-tolerant Dice (``tol`` px, in the slice plane), as the evaluate command keeps them."""
    near_p, n_p, near_r, n_r = metrics.tolerant_counts(pred, ref, tol, per_slice=True)
    return {"tp_p": near_p, "n_p": n_p, "tp_r": near_r, "n_r": n_r}


def pooled_figures(group_scores):
    """Figures of several groups' scores pooled: their counts summed, then the ratios taken."""
    group_scores = list(group_scores)
    tp, fp, fn = (sum(v[k] for v in group_scores) for k in ("tp", "fp", "fn"))
    tol = {k: sum(v["tolerant"][k] for v in group_scores) for k in ("tp_p", "n_p", "tp_r", "n_r")}
    return figures(tp, fp, fn, tol)


def figures(tp, fp, fn, tol):
    tolerant = metrics.tolerant_scores(tol["tp_p"], tol["n_p"], tol["tp_r"], tol["n_r"])["tolerant_dice"]
    return dict(dice=metrics.dice_from(tp, fp, fn), iou=metrics.iou_from(tp, fp, fn), tolerant_dice=tolerant)


def report(cfg):
    """Per arm: Dice/IoU/tolerant Dice per held-out group and pooled, from the cached results. An arm whose runs
    are not on this machine (recipes/runs/ is not in the repository), or cover fewer folds than the table
    already has, keeps its row of recipes/results/logo.json."""
    before = {}
    if os.path.exists(os.path.join(RESULTS, "logo.json")):
        with open(os.path.join(RESULTS, "logo.json")) as f:
            before = {r["arm"]: r for r in json.load(f)}
    rows = []
    for arm in cfg["arms"]:
        results = [r for r in (cached_result(arm["name"], f) for f in cfg["folds"]) if r]
        kept = before.get(arm["name"])
        if kept and len(results) < kept["folds"]:
            rows.append(kept)
            continue
        if not results:
            continue
        groups = {g: v for r in results for g, v in r["groups"].items()}
        line = {"arm": arm["name"], "folds": len(results), "pooled": pooled_figures(groups.values()),
                "groups": {g: figures(v["tp"], v["fp"], v["fn"], v["tolerant"]) for g, v in sorted(groups.items())},
                "ms_per_slice": round(float(np.mean([v["ms_per_slice"] for v in groups.values()])), 1)}
        phantom = [d for r in results for d in r.get("phantom_dice", {}).values()]    # runs since it was added
        if len(phantom) == len(HELD_OUT_PHANTOMS) * len(results):
            line["phantom_dice"] = round(float(np.mean(phantom)), 3)
        rows.append(line)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "logo.json"), "w") as f:
        json.dump(rows, f, indent=1)
    table = markdown_table(rows)
    with open(os.path.join(RESULTS, "logo.md"), "w") as f:
        f.write(table)
    print(table)
    return rows


def markdown_table(rows):
    """Per arm and held-out group: Dice, IoU and boundary-tolerant Dice at each fold model's own threshold."""
    lines = ["| arm | held-out group | Dice | IoU | tolerant Dice (%s px) |" % load_config()["tolerance_px"],
             "|---|---|---|---|---|"]
    for r in rows:
        for g, v in r["groups"].items():
            lines.append("| %s | %s | %.3f | %.3f | %.3f |" % (r["arm"], g, v["dice"], v["iou"], v["tolerant_dice"]))
        p = r["pooled"]
        phantoms = ", held-out phantoms' Dice %.3f" % r["phantom_dice"] if "phantom_dice" in r else ""
        lines.append("| **%s** | **pooled (%d folds, %.0f ms/slice%s)** | **%.3f** | **%.3f** | **%.3f** |" % (
            r["arm"], r["folds"], r["ms_per_slice"], phantoms, p["dice"], p["iou"], p["tolerant_dice"]))
    return "\n".join(lines) + "\n"


def logo_threshold(results):
    """The threshold (0.01 steps) that maximises Dice pooled over every held-out group of an arm's LOGO runs, and
    that Dice: the shipped model's threshold is calibrated on fields of view its fold models never saw. It works
    on the 100-bin probability histograms the cached results keep (not ``metrics.ThresholdCurve``, which needs
    the probability maps themselves), so a threshold can be chosen for any set of finished folds."""
    pos = np.sum([g["hist_pos"] for r in results for g in r["groups"].values()], axis=0)
    neg = np.sum([g["hist_neg"] for r in results for g in r["groups"].values()], axis=0)
    tp = np.cumsum(pos[::-1])[::-1]          # tp[i]: positives with probability >= i / 100
    fp = np.cumsum(neg[::-1])[::-1]
    fn = pos.sum() - tp
    dice = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    i = 5 + int(np.argmax(dice[5:96]))       # thresholds 0.05 .. 0.95
    return i / 100.0, float(dice[i])


def final(cfg, arm_name, out):
    """Train the shipped model on every group, for the median best epoch of the arm's LOGO runs, with the
    threshold calibrated on their held-out groups; write it to ``out``."""
    arm = next(a for a in cfg["arms"] if a["name"] == arm_name)
    results = [cached_result(arm_name, f) for f in cfg["folds"]]
    if not all(results):
        raise SystemExit("run `logo --arms %s` first: the final model's epochs and threshold come from it" % arm_name)
    threshold, logo_dice = logo_threshold(results)
    epochs = int(np.median([r["best_epoch"] for r in results]))
    groups = slices_by_group(cfg)
    config = finetune_config(cfg, arm, cfg["final"]["name"])
    config.epochs, config.patience = epochs, epochs + 1      # no early stopping: every group trains
    recipe = arm_recipe(arm)
    config.start_model = start_model(cfg, arm, None, recipe)
    log.info("final model: arm %s, %d epochs, threshold %.2f (LOGO pooled Dice %.3f at it)", arm_name, epochs,
             threshold, logo_dice)
    every = list(cfg["folds"])
    work = run_dir(arm_name, None)
    # as many validation slices per group as the arm's LOGO runs had: here they only drive the learning-rate
    # schedule, and that schedule is the one the epochs and threshold were measured with
    per_group = cfg["finetune"]["val_per_train_group" if arm.get("val_in_training") else "val_per_group"]
    mixed, config.synthetic_fraction = synthetic_pool(cfg, arm, None, every, groups, config, recipe)
    loop.train(fold_items(cfg, groups, every, config, recipe=recipe),
                fold_items(cfg, groups, every, config, limit=per_group, recipe=recipe), config, work,
                provenance={"data": "dlcryotomo-slices groups %s" % " ".join(sorted(groups)),
                            "recipe": "recipes/default_model.py final --arm %s" % arm_name},
                preprocessing=recipe, synthetic_samples=mixed)
    keras_model, card = modelfile.load(work)
    card.threshold = threshold
    card.provenance.update(threshold_source="pooled over LOGO held-out groups", logo_pooled_dice=logo_dice,
                           logo=[r for r in report(cfg) if r["arm"] == arm_name])
    # write beside, then swap, so that a failure leaves the previous model whole
    fresh = out.rstrip("/") + ".new"
    shutil.rmtree(fresh, ignore_errors=True)
    modelfile.save(keras_model, card, fresh)
    shutil.copy(os.path.join(work, loop.HISTORY_JSON), fresh)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.replace(fresh, out)
    if os.path.abspath(out) == os.path.abspath(os.path.join(modelfile.WEIGHTS_DIR, "default")):
        modelfile.pin_shipped(out, card.weights_sha256)     # the pinned checksum the package checks at load
    log.info("wrote %s", out)


def run_dir(arm_name, test_fold):
    """The working folder of an arm's LOGO run with ``test_fold`` held out, or of its final stage (``None``)."""
    if test_fold is None:
        return os.path.join(RUNS, "final-" + arm_name)
    return os.path.join(RUNS, "logo", "%s-%s" % (arm_name, test_fold))


def cached_result(arm, fold):
    path = os.path.join(run_dir(arm, fold), "result.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return None


def limit_threads(n):
    """Before TensorFlow starts its runtime (importing it does not)."""
    import cv2
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(n)
    tf.config.threading.set_inter_op_parallelism_threads(min(2, n))
    cv2.setNumThreads(n)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=("logo", "report", "final", "pretrain"))
    parser.add_argument("--arm", help="final: the arm to train the shipped model with")
    parser.add_argument("--out", default=os.path.join(ROOT, "membraneseg", "weights", "default"),
                        help="final: the model folder to write (default: the shipped model's)")
    parser.add_argument("--arms", nargs="*", help="arm names to run (default: all in the config)")
    parser.add_argument("--folds", nargs="*", help="test folds to run (default: all)")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for TensorFlow and OpenCV (default: all cores); 1 lets two arms run "
                             "side by side on a 2-core machine")
    args = parser.parse_args()
    if args.stage in ("final", "pretrain") and not args.arm:
        parser.error("%s needs --arm" % args.stage)
    if args.threads:
        limit_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    cfg = load_config()
    if args.stage == "report":
        report(cfg)
        return
    if args.stage == "final":
        final(cfg, args.arm, args.out)
        return
    if args.stage == "pretrain":          # the phantom pretraining of an arm alone (cached like the others)
        arm = next(a for a in cfg["arms"] if a["name"] == args.arm)
        folder = pretrain(cfg, arm["preset"], arm["context"], arm_recipe(arm), arm.get("pretrain"))
        log.info("%s on the held-out phantoms: %s", folder, ", ".join(
            "seed %d Dice %.3f" % (seed, dice) for seed, (dice, _) in phantom_dice(folder).items()))
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
