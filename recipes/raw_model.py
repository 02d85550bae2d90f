"""Recipe of a model for raw tomograms: fine-tune a model on simulated raw tomograms (every nuisance of real data
drawn at random, both polarities, negatives and empty volumes) together with the shared real slices, with contrast
inversion, so that it works on raw volumes of either polarity and keeps its skill on the real slices.

    python recipes/raw_model.py volumes            # simulate the training and validation volumes (cached)
    python recipes/raw_model.py train ARM          # fine-tune; rerun to resume after an interruption
    python recipes/raw_model.py all ARM            # both
    python recipes/raw_model.py calibrate [ARM]    # its threshold for the ship's test-time scales
    python recipes/raw_model.py ship               # install the arm named by "ship" as the tomogram model

Settings are in recipes/raw_model.json; the volumes and models go to recipes/runs/raw/ (not committed), logs to
recipes/results/. bench/bench_volumes.py scores a model on simulated raw volumes it never saw.
"""
import argparse
import json
import logging
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import default_model  # noqa: E402  (the shared slices' loading and groups)
from membraneseg.engine.core import io  # noqa: E402
from membraneseg.engine.simulation import raw  # noqa: E402
from membraneseg.engine.training import data, loop  # noqa: E402
from membraneseg.engine.training.config import TrainConfig  # noqa: E402

RUNS = os.path.join(HERE, "runs", "raw")
log = logging.getLogger("raw_model")


def load_config(path=os.path.join(HERE, "raw_model.json")):
    with open(path) as f:
        return json.load(f)


def volume_shape(settings, v):
    """(Z, Y, X) of one simulated volume: the specimen thickness in voxels (at most ``max_depth``), and a side
    that covers ``field_angstrom`` Å, kept in [min_side, max_side] voxels (so coarse volumes, upsampled to the
    model's pixel size for training, stay a few hundred pixels wide)."""
    depth = int(np.clip(round(settings.thickness / settings.pixel_size), 16, v["max_depth"]))
    side = int(np.clip(round(v["field_angstrom"] / settings.pixel_size), v["min_side"], v["max_side"]))
    return depth, side, side


def content_of(i, v):
    if "content" in v:          # a split of one content only (such as microtubule crops)
        return v["content"]
    if i % v["empty_every"] == v["empty_every"] - 1:
        return "empty"
    return "negatives" if i % v["negatives_every"] == v["negatives_every"] - 1 else "cell"


def make_volumes(cfg, split):
    """Simulate (or find) the ``split`` volumes; returns [(tomogram, labels)] paths."""
    spec = cfg["volumes"][split]
    v = dict(cfg["volumes"], **spec)    # a split may set its own share of negatives and empty volumes
    # "folder": where this version of the simulation caches its volumes (a change to the simulation gets a new one)
    folder = os.path.join(RUNS, cfg["volumes"].get("folder", "volumes"), split)
    os.makedirs(folder, exist_ok=True)
    out = []
    for i in range(spec["count"]):
        seed = spec["seed"] + i
        name = os.path.join(folder, "raw_%05d" % seed)
        if not os.path.isfile(name + "_labels.mrc"):
            fixed = dict(content=content_of(i, v))
            # a split may force the film edge and ice contamination into every volume (hard negatives), and
            # make the ice absorb: "ice_absorption": [low, high], drawn uniformly per volume
            fixed.update({k: v[k] for k in ("carbon", "contamination") if k in v})
            if "ice_absorption" in v:
                fixed["ice_absorption"] = float(np.random.default_rng([seed, 3]).uniform(*v["ice_absorption"]))
            if "pixel_sizes" in v:  # a split may keep to a range of pixel sizes (Å), drawn log-uniformly
                lo, hi = np.log(v["pixel_sizes"])
                fixed["pixel_size"] = float(np.exp(np.random.default_rng([seed, 2]).uniform(lo, hi)))
            settings = raw.draw_settings(np.random.default_rng([seed, 1]), **fixed)
            p = raw.generate_raw(volume_shape(settings, v), settings, seed)
            io.write(name + ".mrc", p.tomogram, settings.pixel_size)
            io.write_json(name + ".json", dict(raw.settings_record(settings), tilt_series_snr=p.snr, seed=seed))
            io.write(name + "_labels.mrc", p.labels, settings.pixel_size)    # last: marks the volume complete
            log.info("%s: %s, %.1f Å/px, %s look, %s, %s, SNR %.3f", os.path.basename(name), settings.content,
                     settings.pixel_size, settings.look, settings.polarity, p.tomogram.shape, p.snr)
        out.append((name + ".mrc", name + "_labels.mrc"))
    return out


def transferred_start(arm):
    """For the z-context comparison: a start model with the network of ``arm["context"]`` z-slices that holds the
    weights of ``arm["transfer_from"]`` wherever a layer has the same name and shape (encoder, ASPP, decoder,
    output), with the arm's ``context_step``. The LSTM is fresh in every arm, because a single-slice model's LSTM (over the positions of a slice)
    does not fit a 2.5D one's (across z); the 2.5D skip fusion starts as the central slice's. Written once to
    runs/raw/<arm>-start."""
    from membraneseg.engine.network import model as net
    from membraneseg.engine.network import modelfile
    folder = os.path.join(RUNS, arm["name"] + "-start")
    if os.path.isfile(os.path.join(folder, modelfile.MODEL_JSON)):
        return folder
    source, card = modelfile.load(os.path.join(ROOT, arm["transfer_from"]))
    spec = net.NetworkSpec.from_preset(card.network["preset"], arm["context"], card.network["classes"],
                                       arm.get("context_step", 1))
    target = net.build(spec, patch=card.patch)
    copied, fresh = [], []
    for layer in target.layers:
        if not layer.weights:
            continue
        try:
            twin = source.get_layer(layer.name)
        except ValueError:
            twin = None
        if layer.name != "lstm" and twin is not None and \
                [w.shape for w in twin.weights] == [w.shape for w in layer.weights]:
            layer.set_weights(twin.get_weights())
            copied.append(layer.name)
        else:
            fresh.append(layer.name)
    log.info("%s: %d layers from %s, fresh: %s", folder, len(copied), arm["transfer_from"], ", ".join(fresh))
    card = modelfile.ModelCard(**dict(card.to_dict(), network=spec.to_dict(), weights_sha256="",
                                      name="transfer start (context %d)" % arm["context"],
                                      provenance=dict(transfer_from=arm["transfer_from"], fresh_layers=fresh)))
    return modelfile.save(target, card, folder)


def train_config(cfg, arm):
    """The trainer's settings for ``arm`` (the start model not yet read)."""
    return TrainConfig(epochs=arm["epochs"], steps_per_epoch=arm["steps"], batch_size=arm["batch_size"],
                       learning_rate=arm["learning_rate"], loss=arm["loss"], patience=arm["patience"],
                       rot90=arm["rot90"], intensity=arm["intensity"], style=arm["style"], border=arm["border"],
                       invert=arm["invert"], seed=cfg["seed"], name="membraneseg raw " + arm["name"],
                       start_model=os.path.join(ROOT, arm.get("start_model", cfg["start_model"])),
                       synthetic_fraction=arm.get("real_fraction", 0.0),
                       max_upsampling=arm.get("max_upsampling"),
                       # "ignore_labels": [7] leaves out the membrane the missing wedge hides, which no annotator
                       # could trace and bench_volumes does not score, instead of teaching it as background
                       ignore_labels=arm.get("ignore_labels", []),
                       # "hard_negative_labels": [5, 6], "hard_negative_bias": 0.2 centres that share of the
                       # patches on the rims of the carbon film and ice contamination, which it marks as membrane
                       hard_negative_labels=arm.get("hard_negative_labels", []),
                       hard_negative_bias=arm.get("hard_negative_bias", 0.0))


def train(cfg, arm_name):
    arm = next(a for a in cfg["arms"] if a["name"] == arm_name)
    if "transfer_from" in arm:
        arm = dict(arm, start_model=os.path.relpath(transferred_start(arm), ROOT))
    config = data.resolve_start_model(train_config(cfg, arm))
    # "more_volumes": further training splits of the config's volumes (such as one richer in negatives)
    train_items = [data.load_volume_pair(t, lab, config) for split in ["train"] + arm.get("more_volumes", [])
                   for t, lab in make_volumes(cfg, split)]
    val_items = [data.load_volume_pair(t, lab, config) for t, lab in make_volumes(cfg, "val")]
    if arm.get("val_volumes"):     # fewer validation volumes for short runs (the first n of the split)
        val_items = val_items[:arm["val_volumes"]]
    real = []
    if arm.get("real_slices") and default_model.shared_data(cfg):
        # by default all of them train and validation (early stopping, the threshold) is on raw volumes only, as
        # the slices' own held-out figures come from leave-one-group-out runs; "val_real_per_group" moves that
        # many slices of each group to validation, and "real_fraction" gives the slices that share of the
        # training patches whatever their size (through the trainer's second pool)
        n_val = arm.get("val_real_per_group", 0)
        for g, pairs in sorted(default_model.slices_by_group(cfg).items()):
            real += [data.load_image_pair(i, m, config, group=g) for i, m in pairs[n_val:]]
            val_items += [data.load_image_pair(i, m, config, group=g) for i, m in pairs[:n_val]]
    if not arm.get("real_fraction"):
        train_items, real = train_items + real, []
    log.info("%s: %d training items (%d real slices at %.0f%% of the patches), %d validation items", arm_name,
             len(train_items) + len(real), len(real), 100 * config.synthetic_fraction, len(val_items))
    out = os.path.join(RUNS, arm_name)
    card = loop.train(train_items, val_items, config, out, provenance=dict(recipe="recipes/raw_model.py",
                                                                          arm=arm), synthetic_samples=real)
    log.info("%s: threshold %.3f, validation Dice %.3f", out, card.threshold, card.provenance["validation_dice"])
    return out


MAX_MARKED = 0.003   # of membrane-free voxels: the project's target for volumes without membrane


def calibrate(cfg, arm_name, factors=None, max_marked=MAX_MARKED, out_dir=os.path.join(HERE, "results")):
    """The threshold of highest boundary-tolerant Dice (2 voxels, as bench_volumes scores), pooled over the
    validation volumes segmented as ``segment`` does (the ship entry's test-time scales, polarity measured), among
    those that call at most ``max_marked`` of the membrane-free validation volumes membrane. It checks the
    trainer's threshold, which is calibrated on single-pass validation patches and plain Dice, against the card's
    scales and the benchmark's measure (for tomogram model version 3 they agree: raw-model.md, "Calibrating the
    threshold"). Membrane the missing wedge hides counts neither way. Writes the curve to
    recipes/results/calibrate-ARM.txt and returns (threshold, tolerant Dice)."""
    from membraneseg.engine.measurement import metrics
    from membraneseg.engine.segmentation.predict import Predictor
    from membraneseg.engine.simulation.simulate import HIDDEN_LABEL, MEMBRANE_LABELS
    factors = factors or cfg["ship"]["test_scales"]
    predictor = Predictor(os.path.join(RUNS, arm_name), test_scales=factors)
    grid = np.round(np.arange(0.2, 0.601, 0.025), 3)
    counts = np.zeros((len(grid), 4))
    free_marked, free_voxels = np.zeros(len(grid)), 0
    # "calibration": the splits to calibrate on (default the validation volumes); none of them trains a model
    splits = cfg.get("calibration", ["val"])
    volumes = [pair for split in splits for pair in make_volumes(cfg, split)]
    for tomo_path, label_path in volumes:
        tomo, labels = io.read(tomo_path), io.read(label_path).data
        prob, _ = predictor.predict_array(tomo.data, pixel_size=tomo.voxel_size, polarity="auto")
        truth, hidden = np.isin(labels, MEMBRANE_LABELS), labels == HIDDEN_LABEL
        for i, t in enumerate(grid):
            mask = (prob >= t) & ~hidden
            counts[i] += metrics.tolerant_counts(mask, truth, 2)
            if not truth.any():
                free_marked[i] += np.count_nonzero(mask)
        free_voxels += labels.size if not truth.any() else 0
        log.info("%s: segmented at scales %s", os.path.basename(tomo_path), " ".join("%g" % f for f in factors))
    dice = np.array([metrics.tolerant_scores(*c)["tolerant_dice"] for c in counts])
    allowed = free_marked <= max_marked * max(free_voxels, 1)
    best = int(np.argmax(np.where(allowed, dice, -1.0))) if allowed.any() else int(np.argmax(dice))
    lines = ["# recipes/raw_model.py calibrate %s: %d volumes (splits %s), scales %s, polarity auto; tolerant Dice "
             "(2 voxels) pooled; marked: voxels called membrane in the membrane-free ones; chosen: the best Dice "
             "with at most %.2f%% marked" % (arm_name, len(volumes), " ".join(splits),
                                             " ".join("%g" % f for f in factors), 100 * max_marked)]
    lines += ["threshold %.3f | tolerant Dice %.3f  precision %.3f  recall %.3f | membrane-free marked %.3f%%%s"
              % (t, d, *[metrics.tolerant_scores(*c)[k] for k in ("tolerant_precision", "tolerant_recall")],
                 100 * m / max(free_voxels, 1), ("  <- chosen" if i == best else "")
                 + ("  <- best Dice" if i == int(np.argmax(dice)) else ""))
              for i, (t, d, c, m) in enumerate(zip(grid, dice, counts, free_marked))]
    with open(os.path.join(out_dir, "calibrate-%s.txt" % arm_name), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return float(grid[best]), float(dice[best])


def ship(cfg):
    """Install the arm named in cfg["ship"] as the shipped tomogram model: its weights and history, its card with
    the ship entry's name, test-time scales and benchmark figures (set by hand after measuring), the model it
    replaces in provenance.previous, and the pinned checksum. Written beside, then swapped."""
    import shutil
    from membraneseg.engine.network import modelfile
    spec = cfg["ship"]
    source = os.path.join(RUNS, spec["arm"])
    out = os.path.join(modelfile.WEIGHTS_DIR, modelfile.TOMOGRAM_MODEL_DIR)
    card = modelfile.read_card(source)
    old = modelfile.read_card(out)
    # "threshold": the one `calibrate` chose for the ship's scales (else the trainer's)
    threshold = spec.get("threshold", card.threshold)
    if (old.weights_sha256, old.threshold, old.test_scales) == (card.weights_sha256, threshold, spec["test_scales"]):
        log.info("%s is already the shipped tomogram model", spec["arm"])
        return
    card.name, card.test_scales, card.threshold = spec["name"], spec["test_scales"], threshold
    if "threshold" in spec:
        card.provenance["threshold_calibration"] = spec.get("threshold_note", "recipes/raw_model.py calibrate")
    card.provenance.update(benchmarks=spec["benchmarks"], previous=dict(
        arm=old.provenance.get("arm", {}).get("name"), weights_sha256=old.weights_sha256,
        benchmarks=old.provenance.get("benchmarks"), previous=old.provenance.get("previous")))
    fresh = out + ".new"
    shutil.rmtree(fresh, ignore_errors=True)
    os.makedirs(fresh)
    for name in (modelfile.MODEL_WEIGHTS, loop.HISTORY_JSON):
        shutil.copy(os.path.join(source, name), fresh)
    io.write_json(os.path.join(fresh, modelfile.MODEL_JSON), card.to_dict(), sort_keys=True)
    shutil.rmtree(out)
    os.replace(fresh, out)
    modelfile.pin_shipped(out, card.weights_sha256)
    log.info("shipped %s as %s (weights %s)", spec["arm"], out, card.weights_sha256[:8])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=("volumes", "train", "all", "calibrate", "ship"))
    parser.add_argument("arm", nargs="?", help="arm name (train, all, calibrate)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    if args.threads:
        default_model.limit_threads(args.threads)
    cfg = load_config()
    if args.stage == "ship":
        return ship(cfg)
    if args.stage == "calibrate":
        return calibrate(cfg, args.arm or cfg["ship"]["arm"])
    if args.stage in ("volumes", "all"):
        for split in [k for k, spec in cfg["volumes"].items() if isinstance(spec, dict)]:
            make_volumes(cfg, split)
    if args.stage in ("train", "all"):
        if not args.arm:
            parser.error("name an arm: %s" % ", ".join(a["name"] for a in cfg["arms"]))
        train(cfg, args.arm)


if __name__ == "__main__":
    main()
