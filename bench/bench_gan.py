"""Does Pix2Pix augmentation help? Fine-tuning with and without GAN-generated pairs, leave-one-group-out.

    .venv/bin/python bench/bench_gan.py [--folds G5 G4 ...] [--data ../shared/data/dlcryotomo-slices]

Both arms are the default model's recipe (recipes/default_model.json: cpu-fine pretrained on phantoms, then
fine-tuned on the real slices) in the same run, with the same seeds. The GAN arm first trains a Pix2Pix GAN on
the fold's training groups only (never the held-out or the validation group), generates pairs from their masks
(turned, flipped, blurred), and draws the config's fraction of its training patches from them. Every unit is
cached under recipes/runs/, so an interrupted run continues. Prints Dice, IoU and boundary-tolerant Dice per
held-out group for both arms, pooled, and the difference; writes recipes/results/gan-logo.md. Skips (exit 0,
saying why) when the shared data are absent.
"""
import argparse
import logging
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "recipes"))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import default_model as recipe  # noqa: E402

ARMS = ("cpu-fine-k1-pretrained", "cpu-fine-k1-pretrained-gan")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", nargs="*", help="held-out folds (default: all of the recipe's)")
    parser.add_argument("--data", default=None, help="the shared slices (default: the recipe's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    cfg = recipe.load_config()
    if not recipe.shared_data(cfg, args.data):
        return 0
    groups = recipe.slices_by_group(cfg)
    arms = {a["name"]: a for a in cfg["arms"]}
    folds = args.folds or list(cfg["folds"])
    results = {name: [] for name in ARMS}
    cached = []
    for fold in folds:           # fold by fold, so that a partial run already compares like with like
        for name in ARMS:
            if recipe.cached_result(name, fold):
                cached.append("%s on %s" % (name, fold))
            results[name].append(recipe.run_fold(cfg, arms[name], fold, groups))
    table = comparison(results, cfg)
    if cached:   # same recipe, seeds and code path, but say so: their timings come from that earlier run
        table += "Taken from earlier runs of the recipe (recipes/runs/logo): %s.\n" % ", ".join(cached)
    print(table)
    os.makedirs(recipe.RESULTS, exist_ok=True)
    with open(os.path.join(recipe.RESULTS, "gan-logo.md"), "w") as f:
        f.write(table)
    return 0


def comparison(results, cfg):
    """Markdown: per held-out group, both arms' Dice / IoU / tolerant Dice and the GAN arm's Dice change."""
    g = cfg["gan"]
    base, gan = ({grp: v for r in results[name] for grp, v in r["groups"].items()} for name in ARMS)
    lines = ["Fine-tuning without / with %d GAN pairs per fold (%.0f%% of the patches; GAN %d px, %d filters, %d "
             "epochs x %d steps)" % (g["count"], 100 * g["fraction"], g["size"], g["filters"], g["epochs"],
                                      g["steps"]), "",
             "| held-out group | Dice without | Dice with | change | IoU without | IoU with | tolerant Dice without "
             "| tolerant Dice with |", "|---|---|---|---|---|---|---|---|"]
    rows = [(grp, recipe.figures(base[grp]["tp"], base[grp]["fp"], base[grp]["fn"], base[grp]["tolerant"]),
             recipe.figures(gan[grp]["tp"], gan[grp]["fp"], gan[grp]["fn"], gan[grp]["tolerant"]))
            for grp in sorted(base)]
    rows.append(("**pooled**", recipe.pooled_figures(base.values()), recipe.pooled_figures(gan.values())))
    for grp, a, b in rows:
        lines.append("| %s | %.3f | %.3f | %+.3f | %.3f | %.3f | %.3f | %.3f |" % (
            grp, a["dice"], b["dice"], b["dice"] - a["dice"], a["iou"], b["iou"], a["tolerant_dice"],
            b["tolerant_dice"]))
    seconds = [sum(r["train_seconds"] for r in results[name]) for name in ARMS]
    lines += ["", "Fine-tuning time, all folds: %d s without, %d s with (GAN training not counted)." % tuple(seconds)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
