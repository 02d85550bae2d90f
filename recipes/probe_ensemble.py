"""Probe: do several fold models together beat one? No training here.

For each leave-one-group-out fold of recipes/default_model.py, combines the cached fold models of several arms
(all trained without that fold's groups, so the held-out figures stay honest) in two ways:

- ensemble: the mean of their probability maps (costs one forward pass per member at segmentation time);
- soup: one network whose weights are the mean of theirs (costs nothing at segmentation time, but only makes
  sense for models fine-tuned from one another, as a ``continue_from`` chain is).

Each combination's threshold is calibrated over all held-out groups pooled, as the shipped model's is.

    .venv/bin/python recipes/probe_ensemble.py --arms A B [C ...] [--soup]
"""
import argparse
import itertools
import json
import logging
import os
import shutil
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import default_model as recipe  # noqa: E402
import probe_scoring as probe  # noqa: E402
from membraneseg.engine.network import modelfile

log = logging.getLogger("probe")


def soup(arms, fold, folder):
    """Save into ``folder`` the network whose weights are the mean of the arms' ``fold`` models."""
    models = [modelfile.load(recipe.run_dir(a, fold)) for a in arms]
    first, card = models[0]
    mean = [np.mean(ws, axis=0) for ws in zip(*(m.get_weights() for m, _ in models))]
    first.set_weights(mean)
    card.name = "soup of " + " + ".join(arms)
    modelfile.save(first, card, folder)


def soup_probabilities(cfg, groups, arms):
    """Held-out probabilities of the per-fold weight soups of ``arms``, as ``probe.held_out_probabilities``."""
    tmp = tempfile.mkdtemp(prefix="soup-")
    try:
        for fold in cfg["folds"]:
            soup(arms, fold, os.path.join(tmp, fold))
        return probe.held_out_probabilities(cfg, groups, "soup", False, model_dir=lambda fold: os.path.join(tmp, fold))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def mean_of(members):
    """Per group, the mean probability map of several members' held-out probabilities."""
    return {g: [(np.mean([m[g][i][0] for m in members], axis=0), members[0][g][i][1])
                for i in range(len(members[0][g]))] for g in members[0]}


def row(name, probs, ms, tol):
    threshold = probe.calibrate(probs)
    per_group, pooled = probe.figures_at(probs, threshold, 0, tol)
    log.info("%-60s thr %.2f %5.0f ms/slice: pooled Dice %.3f IoU %.3f tolerant %.3f | %s", name, threshold, ms,
             pooled["dice"], pooled["iou"], pooled["tolerant_dice"],
             " ".join("%s %.3f/%.3f" % (g, v["dice"], v["tolerant_dice"]) for g, v in per_group.items()))
    return dict(combination=name, threshold=float(threshold), ms_per_slice=round(ms, 1), pooled=pooled,
                groups=per_group)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", nargs="+", required=True)
    parser.add_argument("--soup", action="store_true", help="also score the weight soup of all the arms")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "probe-ensemble.json"))
    args, cfg, groups = probe.start(parser)
    if cfg is None:
        return
    tol = cfg["tolerance_px"]
    single = {a: probe.held_out_probabilities(cfg, groups, a, False) for a in args.arms}
    rows = [row(a, *single[a], tol) for a in args.arms]
    for n in range(2, len(args.arms) + 1):
        for combo in itertools.combinations(args.arms, n):
            rows.append(row("mean of " + " + ".join(combo), mean_of([single[a][0] for a in combo]),
                            sum(single[a][1] for a in combo), tol))
    if args.soup:
        rows.append(row("soup of " + " + ".join(args.arms), *soup_probabilities(cfg, groups, args.arms), tol))
    with open(args.out, "w") as f:
        json.dump(dict(arms=args.arms, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
