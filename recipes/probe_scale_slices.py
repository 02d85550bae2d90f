"""Probe: do the test-time scales (segmentation/scales.py) help on 2D images, as they help the tomogram model on
simulated volumes? No training here.

Each fold model of an arm of the default recipe (recipes/runs/logo/ARM-FOLD, left by `default_model.py logo`) is
scored on the shared slices it never saw, once per set of factors: the slice as given, then also made 2x, 4x...
coarser in-plane and the probability maps averaged. Figures are pooled over every held-out group, at each fold
model's own threshold (calibrated on single passes), and Dice at the threshold best over all held-out groups
(100-bin histograms, default_model.logo_threshold).

    .venv/bin/python recipes/probe_scale_slices.py --arm ARM --sets 1 1,2 1,2,4 1,1.5,3
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import default_model as recipe  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arm", required=True, help="an arm of recipes/default_model.json whose LOGO runs exist")
    parser.add_argument("--sets", nargs="+", default=["1", "1,2", "1,2,4"], metavar="F,F,...",
                        help="sets of test-time factors (1 = the image as given)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores)")
    args = parser.parse_args()
    if args.threads:
        recipe.limit_threads(args.threads)
    cfg = recipe.load_config()
    if not recipe.shared_data(cfg, None):
        return
    groups = recipe.slices_by_group(cfg)
    models = {f: recipe.run_dir(args.arm, f) for f in cfg["folds"]}
    models = {f: m for f, m in models.items() if os.path.isfile(os.path.join(m, recipe.MODEL_JSON))}
    print("# %s: fold models %s" % (args.arm, ", ".join(sorted(models))), flush=True)
    for factors in args.sets:
        scales = [float(f) for f in factors.split(",")]
        results = [recipe.score(m, cfg, groups, f, test_scales=scales) for f, m in sorted(models.items())]
        per_group = {g: v for r in results for g, v in r["groups"].items()}
        pooled = recipe.pooled_figures(per_group.values())
        threshold, best = recipe.logo_threshold(results)
        print("scales %-9s | pooled Dice %.3f tol %.3f | per group tol %s | best threshold %.2f Dice %.3f | "
              "%.0f ms/slice" % (factors, pooled["dice"], pooled["tolerant_dice"],
                                 " ".join("%s %.3f" % (g, recipe.pooled_figures([v])["tolerant_dice"])
                                          for g, v in sorted(per_group.items())),
                                 threshold, best,
                                 sum(v["ms_per_slice"] * v["n"] for v in per_group.values()) /
                                 sum(v["n"] for v in per_group.values())), flush=True)


if __name__ == "__main__":
    main()
