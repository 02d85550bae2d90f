"""Benchmark of the preprocessing chain: EED throughput, CLAHE speed, binning speed and peak memory.

    python bench/bench_preprocess.py                 # 512 x 512 x 200, 10 EED iterations (about a minute or two)
    python bench/bench_preprocess.py --shape 64 256 256 --iterations 3     # a quick look

EED and CLAHE are timed in this process on a synthetic tomogram (smooth structure plus noise). The whole chain
(normalise, EED, CLAHE from an MRC file to an MRC file) then runs as the ``membraneseg preprocess`` engine function
in a child process, whose peak resident memory is reported next to the size of one float32 copy of the volume.
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from membraneseg.engine.preprocessing import binning, clahe, eed, preprocess, recipes
from membraneseg.engine.core import io, streaming


def synthetic(path, shape, seed=0):
    """Write a float32 MRC of smooth blobs plus noise, slab by slab."""
    from scipy import ndimage
    rng = np.random.default_rng(seed)
    with io.create_mrc(path, shape, np.float32, 10.0) as out:
        for z0, z1 in streaming.chunks(out):
            block = ndimage.gaussian_filter(rng.normal(size=(z1 - z0,) + tuple(shape[1:])), (0, 4, 4))
            out[z0:z1] = 10 * block + rng.normal(size=block.shape)


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def child_peak_mib(code):
    """Run ``code`` in a fresh Python and return its peak resident memory (MiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run([sys.executable, "-c", code], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(before, after) / 1024.0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=(200, 512, 512), metavar=("Z", "Y", "X"))
    parser.add_argument("--iterations", type=int, default=10, help="EED iterations (default 10)")
    parser.add_argument("--threads", type=int, default=0, help="numba/OpenCV threads (default: all cores)")
    args = parser.parse_args()
    if args.threads:
        import cv2
        import numba
        numba.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    shape = tuple(args.shape)
    voxels = int(np.prod(shape))
    folder = tempfile.mkdtemp(prefix="membraneseg-bench-")
    src = os.path.join(folder, "tomo.mrc")
    synthetic(src, shape)
    vol = io.read(src)
    size = "x".join(map(str, shape))
    print("volume %s (Z, Y, X) = %.1f M voxels, %.0f MiB as float32" % (size, voxels / 1e6, voxels * 4 / 2**20))

    # EED alone (tomo3d defaults, automatic K), compiled kernels warmed up on a small volume first
    eed.diffuse(np.zeros((4, 16, 16), np.float32) + 1, np.empty((4, 16, 16), np.float32), iterations=1)
    stats = preprocess.robust_stats(vol.data)
    work = preprocess.normalize(vol.data, stats)
    _, seconds = timed(eed.diffuse, work, np.empty_like(work), iterations=args.iterations)
    rate = voxels * args.iterations / seconds
    print("EED: %d iterations in %.1f s = %.2f M voxel-iterations/s" % (args.iterations, seconds, rate / 1e6))
    print("EED: 512x512x200 with 10 iterations would take %.0f s" % (512 * 512 * 200 * 10 / rate))

    # CLAHE on z-slices with the paper's parameters
    low, high = np.percentile(preprocess.sample(work), preprocess.CLIP_PERCENTILES)
    _, seconds = timed(clahe.clahe_planes, work, low, high, 32, 3.0)
    print("CLAHE: %.0f slices of %dx%d per s" % (shape[0] / seconds, shape[1], shape[2]))

    # binning by 2 with antialiasing, and by block averaging
    for antialias, name in ((True, "Lanczos-3"), (False, "block average")):
        with recipes.Scratch(os.path.join(folder, "binned.mrc")) as scratch:
            _, seconds = timed(scratch.materialize, binning.binned(vol.data, 2, antialias))
        print("binning by 2 (%s): %.1f M input voxels/s" % (name, voxels / seconds / 1e6))
    del work, vol

    # the whole default chain, file to file, in a fresh process: its peak memory
    out = os.path.join(folder, "out.mrc")
    code = ("import sys, time; sys.path.insert(0, %r); from membraneseg.engine.preprocessing import recipes; "
            "t = time.perf_counter(); recipes.apply_recipe(%r, %r, recipes.DEFAULT_RECIPE); "
            "print('chain (normalise, EED, CLAHE), file to file: %%.1f s' %% (time.perf_counter() - t))"
            % (os.path.dirname(os.path.dirname(os.path.abspath(__file__))), src, out))
    peak = child_peak_mib(code)
    print("peak memory of the chain: %.0f MiB (%.1fx one float32 copy of the volume)"
          % (peak, peak / (voxels * 4 / 2**20)))
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    os.rmdir(folder)


if __name__ == "__main__":
    main()
