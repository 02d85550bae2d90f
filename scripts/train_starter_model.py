"""Build the former starter model: preset cpu-small, trained on simple phantoms only.

It was shipped as the default model until recipes/default_model.py made one fine-tuned on real slices; it stays
useful as a quick phantom-only baseline (its training log: recipes/results/starter-training.log). Reproducible:
fixed seeds for the phantoms and for training. Run from the repository root:
    .venv/bin/python scripts/train_starter_model.py [--out starter-model]
It takes about ten minutes on 2 CPU cores.
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from membraneseg.engine import cli
from membraneseg.engine.core import io
from membraneseg.engine.simulation import phantoms

SHAPE = (64, 256, 256)
VOXEL = 10.0
TRAIN_SEEDS = range(100, 106)
VAL_SEEDS = range(200, 202)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="starter-model", help="model folder to write (default ./starter-model)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="membraneseg-starter-")
    argv = ["train", "-o", args.out, "--preset", "cpu-small", "--pixel-size", str(VOXEL), "--epochs",
            str(args.epochs), "--steps", str(args.steps), "--batch-size", "8", "--seed", "7", "--name",
            "starter (cpu-small, simple phantoms)"]
    for option, seeds in (("--volume", TRAIN_SEEDS), ("--val-volume", VAL_SEEDS)):
        for seed in seeds:
            tomo, labels = phantoms.simple_phantom(SHAPE, VOXEL, seed=seed, snr=float(1.0 + (seed % 3) * 0.5))
            t, l = os.path.join(work, "p%d.mrc" % seed), os.path.join(work, "p%d_labels.mrc" % seed)
            io.write(t, tomo, VOXEL)
            io.write(l, labels, VOXEL)
            argv += [option, t, l]
    sys.exit(cli.main(argv))


if __name__ == "__main__":
    main()
