"""Time per slice of trained models once loaded: one 256x256 image (median of 5 after a warm-up) and a 32x256x256
volume at the model's pixel size, per slice; each model as a single pass and with its card's test-time scales.
The issue's target: under 150 ms for one 256x256 slice once loaded.

    .venv/bin/python bench/bench_slice.py [MODEL ...]      # default: both shipped models
"""
import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main():
    from membraneseg.engine.network import modelfile
    from membraneseg.engine.segmentation.predict import Predictor
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", default=[modelfile.default_model_path(volumes=True),
                                                      modelfile.default_model_path()])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, 256, 256)).astype(np.float32)
    volume = rng.normal(size=(32, 256, 256)).astype(np.float32)
    for model in args.models:
        # one pass, then the card's test-time scales where it has some
        for scales in ([1.0], None) if modelfile.read_card(model).test_scales else ([1.0],):
            p = Predictor(model, test_scales=scales)
            px = p.card.pixel_size
            p.predict_array(image, pixel_size=px)
            times = []
            for _ in range(5):
                t0 = time.time()
                p.predict_array(image, pixel_size=px)
                times.append(time.time() - t0)
            t0 = time.time()
            p.predict_array(volume, pixel_size=px)
            per_slice = (time.time() - t0) / len(volume)
            print("%s (context %d), scales %s: one 256x256 image %.0f ms; in a 32-slice volume %.0f ms per slice "
                  "(load %.2f)" % (os.path.relpath(model, ROOT), p.k, " ".join("%g" % s for s in p.scales),
                                   1000 * np.median(times), 1000 * per_slice, os.getloadavg()[0]), flush=True)


if __name__ == "__main__":
    main()
