"""Re-score the shipped default model on realistic phantoms it never saw, and on the shared annotated slices,
per group, timed per slice.

    .venv/bin/python bench/bench_default_model.py [--model FOLDER] [--data ../shared/data/dlcryotomo-slices]
                                                  [--phantom-seeds 900 901]

Phantoms: realistic phantoms (engine.simulate, 48x256x256 at 10 Å) with seeds far from the recipe's pretraining
ones (500..511), segmented at the model's threshold; Dice against their membrane labels.

The shipped model was fine-tuned on every shared group, so these figures are on slices it has seen (augmented
copies of its training fields of view); they check that the shipped file is the one the recipe made. Figures on
fields of view a model never saw are the leave-one-group-out table of recipes/results/logo.json. Skips (exit 0,
saying why) when the shared data are absent.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "recipes"))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import default_model as recipe  # noqa: E402

from membraneseg.engine.network import modelfile


def phantom_scores(model, seeds):
    for seed, (dice, iou) in recipe.phantom_dice(model, seeds).items():
        print("phantom seed %d (%s voxels): Dice %.3f, IoU %.3f"
              % (seed, "x".join(map(str, recipe.HELD_OUT_PHANTOM_SHAPE)), dice, iou))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=modelfile.default_model_path())
    parser.add_argument("--data", default=None, help="the shared slices (default: the recipe's)")
    parser.add_argument("--phantom-seeds", type=int, nargs="*", default=list(recipe.HELD_OUT_PHANTOMS),
                        help="seeds of the held-out phantoms (none: skip them)")
    args = parser.parse_args()
    card = modelfile.read_card(args.model)
    print("model %s (%s, preset %s, threshold %.3f)" % (args.model, card.name, card.network["preset"],
                                                         card.threshold))
    phantom_scores(args.model, args.phantom_seeds)
    cfg = recipe.load_config()
    if not recipe.shared_data(cfg, args.data):
        return 0
    recipe.print_scores({fold: args.model for fold in cfg["folds"]}, cfg, recipe.slices_by_group(cfg))
    print("(in-sample: the shipped model was fine-tuned on these groups; see recipes/results/logo.json for "
          "held-out figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
