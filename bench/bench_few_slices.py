"""Fine-tuning on a few annotated slices (``membraneseg train --quick``): how much it lifts a model on the rest of
the field of view, against the number of slices, and how long it takes.

Simulated raw volumes: each volume (seeds 700 on, a raw acquisition at 10-20 Å) is "annotated" on K z-slices
spread over the slices that hold membrane, with every other slice unannotated, as a user who paints a few slices
leaves them. The model is fine-tuned on those K slices with --quick's settings and scored on the whole volume
(visible membrane; the slices it was taught on included), before and after.

Shared real slices (with --fold-models, the models that never saw each group, e.g. the default recipe's
leave-one-group-out fold models, recipes/runs/logo/ARM-{fold}): the model is fine-tuned on K slices of the
held-out group and scored on the other slices of that group.

Each line also gives the Dice at the threshold best on the scored slices, before and after, to tell a poorly
calibrated threshold (the fine-tuned model calibrates its own on the K slices it learnt) from a poor map.

    .venv/bin/python bench/bench_few_slices.py [--slices 1 3 10] [--volumes 2] [--model PATH]
    .venv/bin/python bench/bench_few_slices.py --no-volumes --fold-models 'recipes/runs/logo/ARM-{fold}'
    .venv/bin/python bench/bench_few_slices.py ... --set learning_rate=1e-3 style=0     # other settings
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "recipes"))       # default_model: the shared slices' groups and scoring

from bench_volumes import score, volume  # noqa: E402
from membraneseg.engine.training import data, loop  # noqa: E402
from membraneseg.engine.training.config import TrainConfig, resolved  # noqa: E402

SEED = 700
CONDITIONS = [("10 Å raw", dict(pixel_size=10.0)), ("20 Å lowpass", dict(pixel_size=20.0, look="lowpass"))]
PARTIAL = 9        # the value the bench writes for "not annotated" (MRC mode 0 stores 0-127 safely)


def spread(candidates, k):
    """k of the candidate slices, evenly spread."""
    candidates = list(candidates)
    return [candidates[int(round(i))] for i in np.linspace(0, len(candidates) - 1, min(k, len(candidates)))]


def quick_config(model, changes=()):
    """The settings of ``membraneseg train --quick`` from ``model``, reading PARTIAL as not annotated, with
    ``changes`` ((TrainConfig field, value) pairs) over them."""
    given = dict(epochs=None, steps_per_epoch=None, learning_rate=None, loss=None, patience=None, rot90=None,
                 intensity=None, style=None)
    given.update(changes)
    return data.resolve_start_model(TrainConfig(**resolved(given, quick=True), start_model=model,
                                                ignore_labels=[PARTIAL], membrane_labels=[1]))


def setting(text):
    """``--set`` NAME=VALUE: a TrainConfig field and its value, typed as the field's default."""
    name, _, value = text.partition("=")
    if name not in TrainConfig.__dataclass_fields__ or not value:
        raise argparse.ArgumentTypeError("%r: give NAME=VALUE with NAME a training setting" % text)
    default = getattr(TrainConfig(), name)
    return name, (value.lower() in ("1", "true", "yes") if isinstance(default, bool) else type(default)(value))


def finetune(config, samples, out):
    """Fine-tune on ``samples`` (which also validate: there is nothing else); returns the seconds it took."""
    start = time.time()
    loop.train(samples, samples, config, out)
    return time.time() - start


def simulated(args):
    from membraneseg.engine.core import io
    from membraneseg.engine.segmentation.predict import Predictor
    before_model = Predictor(args.model)
    for name, changes in CONDITIONS:
        for i in range(args.volumes):
            tomo, truth, hidden, px = volume(name, changes, "dark", SEED + i)
            _, mask = before_model.predict_array(tomo, pixel_size=px)
            before = score(mask.astype(bool), truth, hidden)
            with_membrane = np.nonzero(truth.reshape(truth.shape[0], -1).any(axis=1))[0]
            for k in args.slices:
                chosen = spread(with_membrane, k)
                labels = np.full(truth.shape, PARTIAL, np.uint8)
                labels[chosen] = truth[chosen]
                with tempfile.TemporaryDirectory() as tmp:
                    io.write(os.path.join(tmp, "t.mrc"), tomo, px)
                    io.write(os.path.join(tmp, "l.mrc"), labels, px)
                    config = quick_config(args.model, args.set)
                    sample = data.load_volume_pair(os.path.join(tmp, "t.mrc"), os.path.join(tmp, "l.mrc"), config)
                    seconds = finetune(config, [sample], os.path.join(tmp, "model"))
                    _, mask = Predictor(os.path.join(tmp, "model")).predict_array(tomo, pixel_size=px)
                after = score(mask.astype(bool), truth, hidden)
                print("%-13s vol %d  %2d slice(s) | before Dice %.3f tol %.3f | after Dice %.3f tol %.3f | "
                      "lift tol %+.3f | %.0f s" % (name, i, k, before["dice"], before["tolerant_dice"],
                                                   after["dice"], after["tolerant_dice"],
                                                   after["tolerant_dice"] - before["tolerant_dice"], seconds),
                      flush=True)


def shared(args):
    """The shared-slice part: per group, its fold model fine-tuned on K of its slices, scored on the others."""
    from membraneseg.constants import MODEL_JSON
    import default_model as recipe
    cfg = recipe.load_config()
    if not recipe.shared_data(cfg, args.data):
        return
    groups = recipe.slices_by_group(cfg)
    unknown = sorted(set(args.groups or []) - set(groups))
    if unknown:
        raise SystemExit("--groups: no group %s in the shared slices (they have %s)" % (
            ", ".join(unknown), ", ".join(sorted(groups))))
    fold_of = {g: fold for fold, members in cfg["folds"].items() for g in members}
    for g in sorted(args.groups or groups):
        names = [args.fold_models.format(fold=f) if "{fold}" in args.fold_models else
                 os.path.join(args.fold_models, f) for f in (g, fold_of.get(g, g))]
        model = next((m for m in names if os.path.isfile(os.path.join(m, MODEL_JSON))), None)
        if model is None:
            print("SKIPPED %s: no model folder at %s" % (g, " or ".join(names)))
            continue
        pairs = groups[g]
        rest = pairs[args.score_from or max(args.slices):]      # every K is scored on the same slices

        def figures(model_dir):
            scored = recipe.score(model_dir, dict(cfg, folds={"held": [g]}), {g: rest}, "held")
            # and, to tell a poor threshold from a poor map, the Dice at the threshold best on these slices
            return dict(recipe.pooled_figures(scored["groups"].values()),
                        best=recipe.logo_threshold([scored])[1])
        before = figures(model)
        for k in args.slices:
            config = quick_config(model, args.set)
            samples = [data.load_image_pair(i, m, config, group=g) for i, m in pairs[:k]]
            with tempfile.TemporaryDirectory() as tmp:
                seconds = finetune(config, samples, os.path.join(tmp, "model"))
                after = figures(os.path.join(tmp, "model"))
            print("%-4s %2d slice(s) | before Dice %.3f tol %.3f | after Dice %.3f tol %.3f | lift tol %+.3f | "
                  "%.0f s (scored on %d slices; Dice at the best threshold %.3f -> %.3f)" % (
                      g, k, before["dice"], before["tolerant_dice"], after["dice"], after["tolerant_dice"],
                      after["tolerant_dice"] - before["tolerant_dice"], seconds, len(rest), before["best"],
                      after["best"]), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "membraneseg", "weights", "tomograms"),
                        help="simulated volumes: the model to start from (default: the shipped tomogram model, "
                             "where --quick starts for tomograms)")
    parser.add_argument("--slices", type=int, nargs="+", default=[1, 3, 10], help="annotated slices per run")
    parser.add_argument("--volumes", type=int, default=2, help="simulated volumes per condition (default 2)")
    parser.add_argument("--set", type=setting, nargs="+", default=[], metavar="NAME=VALUE",
                        help="training settings over --quick's, e.g. epochs=6 learning_rate=1e-3 style=0")
    parser.add_argument("--fold-models", metavar="DIR",
                        help="DIR/<group> or DIR/<fold> (recipes/default_model.json's folds): a model that never "
                             "saw that group of the shared slices; a path with {fold} in it names each fold's "
                             "model, e.g. recipes/runs/logo/ARM-{fold} as the default recipe leaves them")
    parser.add_argument("--data", help="the shared slices (default: recipes/default_model.json's)")
    parser.add_argument("--groups", nargs="+", metavar="G", help="shared slices: only these groups (default: all)")
    parser.add_argument("--score-from", type=int, metavar="N",
                        help="shared slices: score each group on its slices from the Nth on (default: the largest "
                             "--slices), so that runs with different --slices score the same slices")
    parser.add_argument("--no-volumes", action="store_true", help="skip the simulated volumes")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads (default: all cores); 1 lets two runs share a 2-core machine")
    args = parser.parse_args()
    if args.score_from is not None and args.score_from < max(args.slices):
        parser.error("--score-from %d: the runs with %d slices would be scored on slices they learnt" % (
            args.score_from, max(args.slices)))
    if args.threads:
        import default_model
        default_model.limit_threads(args.threads)
    if not args.no_volumes:
        simulated(args)
    if args.fold_models:
        shared(args)
    else:
        print("SKIPPED the shared slices: give --fold-models DIR (models that never saw each group; "
              "recipes/default_model.py builds them)")


if __name__ == "__main__":
    main()
