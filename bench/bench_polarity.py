"""How often ``--polarity auto`` gets the contrast polarity wrong: on simulated raw tomograms with every setting drawn
at random (seeds 30000 on, used by nothing else), and on the shared real slices as given and inverted.

    .venv/bin/python bench/bench_polarity.py [--count 60] [--data ../shared/data/dlcryotomo-slices]

Prints, per kind of input, how many were right, wrong and undecided (undecided inputs are taken as dark and
said so in the log).
"""
import argparse
import csv
import os
import sys
from collections import Counter

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from membraneseg.engine.core import io  # noqa: E402
from membraneseg.engine.preprocessing import polarity  # noqa: E402
from membraneseg.engine.simulation import raw  # noqa: E402

SEED = 30000


def outcome(found, truth):
    return "undecided" if found is None else ("right" if found == truth else "wrong")


def simulated(count):
    tally, skews = Counter(), []
    for i in range(count):
        rng = np.random.default_rng([SEED + i, 1])
        s = raw.draw_settings(rng, content=str(rng.choice(["cell", "cell", "cell", "negatives", "empty"])))
        side = int(np.clip(round(5120 / s.pixel_size), 64, 160))
        depth = int(np.clip(round(s.thickness / s.pixel_size), 16, 64))
        tomo = raw.generate_raw((depth, side, side), s, SEED + i).tomogram
        found, skew = polarity.detect(tomo, s.pixel_size)
        kind = "empty" if s.content == "empty" else "with matter"
        truth = None if s.content == "empty" else s.polarity
        tally[(kind, outcome(found, truth) if truth else ("undecided" if found is None else "decided"))] += 1
        skews.append((kind, s.look, s.polarity, round(s.pixel_size, 1), round(skew, 2)))
    return tally, skews


def real_slices(root):
    tally = Counter()
    with open(os.path.join(root, "manifest.csv")) as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        image = io.read(os.path.join(root, row["image_png"])).data.astype(np.float32)
        # the slices are taken as 13.7 Å/px, the DLCryoTomo data's pixel size being unknown here; the smoothing
        # is then 1.5 pixels
        for sign, truth in ((1, "dark"), (-1, "bright")):
            tally[(truth, outcome(polarity.detect(sign * image, 13.7)[0], truth))] += 1
    return tally


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=60, help="simulated tomograms (default 60)")
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "dlcryotomo-slices"))
    args = parser.parse_args()
    tally, skews = simulated(args.count)
    print("simulated raw tomograms (%d):" % args.count)
    for key in sorted(tally):
        print("  %-12s %-10s %d" % (key[0], key[1], tally[key]))
    matter = sorted(abs(s[-1]) for s in skews if s[0] == "with matter")
    print("  smallest |skewness| with matter: %s; largest without: %s" % (
        matter[:3], max([abs(s[-1]) for s in skews if s[0] == "empty"] or [0])))
    if os.path.exists(os.path.join(args.data, "manifest.csv")):
        tally = real_slices(args.data)
        print("shared real slices, as given (dark) and inverted (bright):")
        for key in sorted(tally):
            print("  %-7s %-10s %d" % (key[0], key[1], tally[key]))
    else:
        print("SKIPPED the real slices: not at %s" % args.data)


if __name__ == "__main__":
    main()
