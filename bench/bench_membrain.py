"""Side by side: MemBrain-seg's network against this plugin's whole segmentation, for a 512x512x200 tomogram on
this machine, in one run.

    bash bench/make_membrain_venv.sh          # once: CPU PyTorch and MONAI in bench/.venv-membrain
    .venv/bin/python bench/bench_membrain.py [--preset cpu-fine] [--windows 2]

MemBrain-seg side: its network (bench/membrain_network.py; random weights) is timed on a few 160³ windows with
2 threads, and the time for the tomogram is extrapolated to the number of windows its sliding-window inference
needs at its defaults (160³ windows, 50% overlap, no test-time augmentation). Only the network is counted:
its reading, blending and writing are left out, which favours it.
Our side: the tomogram is segmented end to end (reading, normalising, the network, stitching, writing) with the
given preset, random weights, at the model's pixel size (so resampling is a no-op), in default mode. With
``--model`` a trained model is timed instead, with what its card asks for (the shipped tomogram model: test-time
scales 1 2 4).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_segment import SEGMENT_BATCH, load, make_volume, save_random_model, segment_in_child  # noqa: E402

SHAPE = (200, 512, 512)          # Z, Y, X
WINDOW, OVERLAP = 160, 0.5       # membrain-seg's inference defaults


def window_count(shape, window=WINDOW, overlap=OVERLAP):
    """Windows of a sliding-window pass (MONAI's rule: a step of window * (1 - overlap), the last window flush
    with the end)."""
    step = max(1, int(window * (1 - overlap)))
    return math.prod(max(1, math.ceil((s - window) / step) + 1) for s in shape)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu-fine", help="our network's preset (default cpu-fine, the default "
                                                               "model's)")
    parser.add_argument("--model", metavar="PATH",
                        help="time this trained model (its card's test-time scales included) instead of a preset "
                             "with random weights")
    parser.add_argument("--windows", type=int, default=2, help="160³ windows timed after a warm-up (default 2)")
    parser.add_argument("--venv", default=os.path.join(HERE, ".venv-membrain"),
                        help="environment with torch and monai (bench/make_membrain_venv.sh makes it)")
    args = parser.parse_args()
    python = os.path.join(args.venv, "bin", "python")
    if not os.path.exists(python):
        raise SystemExit("no %s: run bash bench/make_membrain_venv.sh first" % python)

    out = subprocess.run([python, os.path.join(HERE, "membrain_network.py"), str(args.windows)],
                         capture_output=True, text=True, check=True).stdout
    mb = json.loads(out.strip().splitlines()[-1])
    per_window = float(np.median(mb["seconds"]))
    n = window_count(SHAPE)
    theirs = n * per_window
    print("MemBrain-seg network (MONAI DynUNet, %.1f M parameters, torch %s, %d threads): %.1f GFLOP and %.1f s "
          "per 160³ window (median of %d after a warm-up; %s)" % (mb["parameters"] / 1e6, mb["torch"],
                                                                mb["threads"], mb["gflop"], per_window,
                                                                len(mb["seconds"]), load()))
    print("  512x512x200 at 160³ windows, 50%% overlap, no TTA: %d windows -> %.0f s (%.1f min), extrapolated "
          "from the timed windows, network only" % (n, theirs, theirs / 60))

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.model or os.path.join(tmp, args.preset)
        if not args.model:
            save_random_model(args.preset, folder)
        vol = os.path.join(tmp, "tomo.mrc")
        make_volume(vol, SHAPE)
        r = segment_in_child(folder, vol, os.path.join(tmp, "out"), None, "default", "fp32", SEGMENT_BATCH)
    ours = r["seconds"]
    print("membraneseg, %s, default mode: 512x512x200 end to end in %.1f s, peak RSS %.0f MB (%s)"
          % (args.model or "preset %s" % args.preset, ours, r["peak_mb"], load()))
    print("ratio: MemBrain-seg's network takes %.1fx the time of our whole segmentation (target >= 10x)"
          % (theirs / ours))


if __name__ == "__main__":
    main()
