"""Benchmark: phantom generation, training throughput per preset, and what 2.5D z-context buys.

Run from the repository root:
    .venv/bin/python bench/bench_train.py [--quick] [--arms k1 k3 k3-nodrop]

1. Generation: realistic cell phantoms (engine.simulate) and simple ones, seconds per phantom.
2. Throughput: training patches per second for the presets tiny, cpu-small and cpu on the paper's 224 px patches
   (batch 8), after a first step that builds the graph (its seconds are printed too), with the achieved GFLOP/s
   (a training step costs about 3 forward passes). Cutting and augmenting a patch is timed separately.
3. Z-context: the same fixed short pretraining (preset, patches, steps, seeds) on cell phantoms for a single-slice
   model (k1) and 2.5D models with 3 slices, trained with the default context dropout 0.5 (k3) and without it
   (k3-nodrop). Each model segments the held-out phantoms whole with the engine's predictor at its calibrated
   threshold; Dice and IoU are pooled over their voxels against the membrane labels (1 and 2). The 2.5D models
   are also scored with the context missing (the slice repeated, as 2D images are given to them), with the
   share of voxels that changes: that is what the z-neighbours buy a trained model. Arms are named arm/seed;
   --seeds 2 or more shows how much two trainings of one arm differ.
Everything runs on the CPU. Timings are wall-clock on whatever else the machine does: the load average is printed.
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from membraneseg.engine.core import io
from membraneseg.engine.measurement import metrics
from membraneseg.engine.simulation import phantoms, simulate
from membraneseg.engine.segmentation import predict
from membraneseg.engine.training import data, loop, losses, patches
from membraneseg.engine.training.config import TrainConfig

VOXEL = 10.0
ARMS = {"k1": dict(context=1, context_dropout=0.0),
        "k3": dict(context=3, context_dropout=0.5),
        "k3-nodrop": dict(context=3, context_dropout=0.0)}


class NoContext(predict.Predictor):
    """The engine's predictor with the z-neighbours replaced by the slice itself, as for 2D images."""

    def _patch(self, stack, r, c):
        return super()._patch([stack[len(stack) // 2]] * len(stack), r, c)


def generate(folder, shape, seeds):
    """Write cell phantoms for ``seeds``; print the time per phantom for them and for simple ones."""
    pairs, seconds = [], []
    for seed in seeds:
        start = time.perf_counter()
        tomo, labels = simulate.cell_phantom(shape, VOXEL, seed=seed)
        seconds.append(time.perf_counter() - start)
        pairs.append((os.path.join(folder, "cell%d.mrc" % seed), os.path.join(folder, "cell%d_labels.mrc" % seed)))
        io.write(pairs[-1][0], tomo, VOXEL)
        io.write(pairs[-1][1], labels, VOXEL)
    simple = []
    for seed in seeds[:3]:
        start = time.perf_counter()
        phantoms.simple_phantom(shape, VOXEL, seed=seed)
        simple.append(time.perf_counter() - start)
    print("\n== phantom generation, %s voxels (Z,Y,X) at %g Å" % (",".join(map(str, shape)), VOXEL))
    print("cell (scene, tilt series, WBP): %d phantoms, %.2f s each (median; min %.2f, max %.2f)"
          % (len(seconds), np.median(seconds), min(seconds), max(seconds)))
    print("simple (vesicles in noise):     %d phantoms, %.2f s each (median)" % (len(simple), np.median(simple)))
    return pairs


def throughput(samples, presets, patch, batch, steps):
    import keras
    from membraneseg.engine.network import model as net
    print("\n== training throughput: %d px patches, batch %d, %d timed steps after the first" % (patch, batch, steps))
    print("%-10s %11s %9s %11s %9s %12s" % ("preset", "parameters", "first s", "patches/s", "ms/patch",
                                            "GFLOP/s"))
    for preset in presets:
        config = TrainConfig(preset=preset, patch=patch, batch_size=batch)
        model = net.build(net.NetworkSpec.from_preset(preset), patch=patch)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses.make_loss("bce", 1))
        sampler = patches.PatchSampler(samples, config, 0)
        batches = [sampler.batch(batch) for _ in range(steps + 1)]
        start = time.perf_counter()
        model.train_on_batch(*batches[0])
        first = time.perf_counter() - start
        start = time.perf_counter()
        for x, y in batches[1:]:
            model.train_on_batch(x, y)
        rate = steps * batch / (time.perf_counter() - start)
        gflop = 3 * net.flops_per_patch(model) / 1e9
        print("%-10s %11d %9.1f %11.2f %9.1f %12.1f" % (preset, net.count_params(model), first, rate, 1000 / rate,
                                                       gflop * rate))
    sampler = patches.PatchSampler(samples, TrainConfig(patch=patch, context=3), 0)
    start = time.perf_counter()
    sampler.batch(64)
    print("cutting and augmenting a 3-slice patch: %.1f ms" % ((time.perf_counter() - start) / 64 * 1000))


def segment(predictor, pairs, threshold):
    """The masks ``predictor`` makes of the tomograms in ``pairs`` at ``threshold``."""
    with tempfile.TemporaryDirectory() as out:
        return [np.asarray(io.read(predictor.segment_file(tomo, out, threshold, progress=False)[0]).data) > 0
                for tomo, _ in pairs]


def score(masks, pairs):
    """Dice and IoU of ``masks`` against the membrane labels of ``pairs``, pooled over all voxels."""
    tp = fp = fn = 0
    for mask, (_, labels) in zip(masks, pairs):
        counts = metrics.confusion(mask, np.isin(io.read(labels).data, simulate.MEMBRANE_LABELS))
        tp, fp, fn = tp + counts[0], fp + counts[1], fn + counts[2]
    return metrics.dice_from(tp, fp, fn), metrics.iou_from(tp, fp, fn)


def context_arms(pairs, arms, args, work):
    n_train, n_val = args.train_phantoms, args.val_phantoms
    base = TrainConfig(pixel_size=VOXEL)
    samples = [data.load_volume_pair(t, l, base) for t, l in pairs[:n_train + n_val]]
    held_out = pairs[n_train + n_val:]
    print("\n== z-context: preset %s, %d px patches, %d epochs x %d steps x batch 8 (%d patches), %s loss; %d "
          "training, %d validation and %d held-out phantoms" % (args.preset, args.patch, args.epochs, args.steps,
                                                              args.epochs * args.steps * 8, args.loss, n_train,
                                                              n_val, len(held_out)))
    print("%-12s %9s %8s %10s %8s %8s %12s %11s %14s" % ("arm", "dropout", "train s", "threshold", "Dice", "IoU",
                                                         "Dice no ctx", "IoU no ctx", "voxels changed"))
    for name, seed in [(name, seed) for seed in range(args.seeds) for name in arms]:
        config = TrainConfig(preset=args.preset, patch=args.patch, pixel_size=VOXEL, epochs=args.epochs,
                                   steps_per_epoch=args.steps, batch_size=8, loss=args.loss,
                                   patience=args.epochs, seed=seed, **ARMS[name])   # the whole budget is run
        out = os.path.join(work, "%s-seed%d" % (name, seed))
        start = time.perf_counter()
        card = loop.train(samples[:n_train], samples[n_train:], config, out)
        seconds = time.perf_counter() - start
        masks = segment(predict.Predictor(out), held_out, card.threshold)
        row = "%-12s %9.2f %8.0f %10.3f %8.4f %8.4f" % (("%s/%d" % (name, seed), config.context_dropout, seconds,
                                                         card.threshold)
                                                        + score(masks, held_out))
        if config.context > 1:   # the same model without its z-neighbours, and how many voxels that changes
            flat = segment(NoContext(out), held_out, card.threshold)
            changed = sum(np.count_nonzero(a != b) for a, b in zip(masks, flat)) / sum(m.size for m in masks)
            row += " %12.4f %11.4f %13.3f%%" % (score(flat, held_out) + (100 * changed,))
        print(row, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes and budgets")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--presets", nargs="+", default=["tiny", "cpu-small", "cpu"])
    parser.add_argument("--preset", default="cpu-small", help="preset of the z-context arms (default cpu-small)")
    parser.add_argument("--patch", type=int, default=128, help="patch of the z-context arms (default 128 px)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--loss", default="bce+dice")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds per arm, to see the spread")
    parser.add_argument("--train-phantoms", type=int, default=6)
    parser.add_argument("--val-phantoms", type=int, default=2)
    parser.add_argument("--test-phantoms", type=int, default=3)
    args = parser.parse_args()
    shape = (64, 192, 192)
    if args.quick:
        shape, args.epochs, args.steps, args.patch = (32, 96, 96), 1, 2, 96
        args.presets, args.preset = ["tiny"], "tiny"
        args.train_phantoms, args.val_phantoms, args.test_phantoms = 2, 1, 1
    print("load average %s; %d CPU cores" % (" ".join("%.2f" % v for v in os.getloadavg()), os.cpu_count()))
    begin = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        pairs = generate(work, shape, list(range(1000, 1000 + args.train_phantoms + args.val_phantoms +
                                                 args.test_phantoms)))
        samples = [data.load_volume_pair(t, l, TrainConfig()) for t, l in pairs[:2]]
        throughput(samples, args.presets, 96 if args.quick else 224, 8, 2 if args.quick else 5)
        context_arms(pairs, args.arms, args, work)
    print("\nwhole benchmark: %.0f s" % (time.perf_counter() - begin))


if __name__ == "__main__":
    main()
