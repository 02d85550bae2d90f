"""Benchmark: time to generate realistic phantoms (engine.simulate), per stage, at 10 Å per voxel.

Run from the repository root:
    .venv/bin/python bench/bench_phantoms.py [--sizes 128,256,256 250,500,500] [--seeds 3]
The second default size is the paper's (500 x 500 x 250 voxels); it needs about 4 GB of RAM. Stages: scene
(random geometry), render (density and labels), project (tilt series), misalign+noise, wbp (reconstruction).
Timings are wall-clock on whatever else the machine is doing, so run it on an idle machine to compare.
"""
import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from membraneseg.engine.simulation import simulate, tomography

STAGES = ("scene", "render", "project", "misalign+noise", "wbp")


def shape_arg(text):
    shape = tuple(int(s) for s in text.split(","))
    if len(shape) != 3:
        raise argparse.ArgumentTypeError("a size is Z,Y,X")
    return shape


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=shape_arg, nargs="+", default=[(128, 256, 256), (250, 500, 500)],
                        metavar="Z,Y,X", help="volume sizes in voxels")
    parser.add_argument("--seeds", type=int, default=3, help="phantoms per size (seeds 0..N-1)")
    parser.add_argument("--voxel-size", type=float, default=10.0, help="Å per voxel (default 10)")
    args = parser.parse_args()
    print("%-13s %4s  %s  %7s  %5s" % ("size Z,Y,X", "seed", "  ".join("%9s" % s for s in STAGES), "total s",
                                       "SNR"))
    for shape in args.sizes:
        tomography._projector.cache_clear()     # the first phantom of a size pays for building the operators
        tomography._backprojector.cache_clear()
        totals = []
        for seed in range(args.seeds):
            start = time.perf_counter()
            p = simulate.generate(shape, args.voxel_size, seed=seed)
            totals.append(time.perf_counter() - start)
            print("%-13s %4d  %s  %7.2f  %5.2f" % (",".join(map(str, shape)), seed,
                                                  "  ".join("%9.2f" % p.timings[s] for s in STAGES),
                                                  totals[-1], p.snr))
            del p
        print("%-13s mean %.2f s, median %.2f s per phantom (%d voxels)\n"
              % (",".join(map(str, shape)), np.mean(totals), np.median(totals), int(np.prod(shape))))
    print("peak memory %.2f GB" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20))


if __name__ == "__main__":
    main()
