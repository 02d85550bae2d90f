"""Segmentation benchmark: per preset, parameters, GFLOP per patch, ms per patch, slices per second on 512x512
slices, the achieved fraction of the machine's fp32 matrix-multiply rate, and peak RAM while segmenting a
1024x1024x300 float32 volume (memory-mapped) beyond what the loaded model needs.

    .venv/bin/python bench/bench_segment.py [--presets tiny cpu-small cpu] [--big-preset cpu-small] [--no-big]

Networks have random weights (speed does not depend on them). Peak RAM is measured in a child process from
/proc (VmHWM minus VmRSS once the model is loaded and compiled).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def matmul_rate(n=4096, repeats=5):
    """Best fp32 GFLOP/s of an n x n matrix product in TensorFlow (the library the network runs on)."""
    import tensorflow as tf
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    f = tf.function(lambda x, y: tf.matmul(x, y))
    f(a, b).numpy()
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        f(a, b).numpy()
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t) / 1e9)
    return best


def save_random_model(preset, folder, context=1):
    from membraneseg.engine import model as net, modelfile
    spec = net.NetworkSpec.from_preset(preset, context=context)
    m = net.build(spec)
    modelfile.save(m, modelfile.ModelCard(network=spec.to_dict(), pixel_size=10.0), folder)
    return m


def time_patches(predictor, batches=6):
    x = np.random.default_rng(0).normal(size=(predictor.batch_size,) + tuple(predictor.spec[1:-1])) \
        .astype(np.float32)
    predictor.predict_batch(x)  # trace and warm up
    t = time.perf_counter()
    for _ in range(batches):
        predictor.predict_batch(x)
    return (time.perf_counter() - t) / (batches * predictor.batch_size)


def time_slices(predictor, tmp, n=16):
    from membraneseg.engine import io
    path = os.path.join(tmp, "slab512.mrc")
    io.write(path, np.random.default_rng(1).normal(size=(n, 512, 512)).astype(np.float32), 10.0)
    predictor.segment_file(path, os.path.join(tmp, "out"), progress=False)  # warm-up
    t = time.perf_counter()
    predictor.segment_file(path, os.path.join(tmp, "out"), progress=False)
    return n / (time.perf_counter() - t)


def peak_ram_child(model_dir, volume, out_dir):
    """Run in a child process: load the model, then segment ``volume``; print RSS figures as JSON."""
    code = r"""
import json, os, sys, time
sys.path.insert(0, %r)
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
from membraneseg.engine import predict
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024.0
p = predict.Predictor(%r, batch_size=8)
import numpy as np
p.predict_batch(np.zeros((8,) + tuple(p.spec[1:-1]), np.float32))
loaded = status("VmRSS")
t = time.time()
p.segment_file(%r, %r, progress=False)
print(json.dumps(dict(loaded_mb=loaded, peak_mb=status("VmHWM"), seconds=time.time() - t)))
""" % (os.path.dirname(os.path.dirname(os.path.abspath(__file__))), model_dir, volume, out_dir)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def make_big_volume(path, shape=(300, 1024, 1024)):
    from membraneseg.engine import io
    rng = np.random.default_rng(2)
    with io.create_mrc(path, shape, np.float32, 10.0) as out:
        for z in range(shape[0]):
            out[z] = rng.normal(size=shape[1:]).astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="*", default=["tiny", "cpu-small", "cpu", "cpu-large"],
                        help="presets to time (none: only the memory run)")
    parser.add_argument("--big-preset", default="cpu-small", help="preset for the 1024x1024x300 memory run")
    parser.add_argument("--no-big", action="store_true", help="skip the 1024x1024x300 memory run")
    args = parser.parse_args()
    from membraneseg.engine import model as net, predict

    rate = matmul_rate()
    print("machine: %d cores; TensorFlow fp32 matmul peak %.1f GFLOP/s (4096^2)" % (os.cpu_count(), rate))
    print("%-10s %11s %12s %11s %14s %11s" % ("preset", "parameters", "GFLOP/patch", "ms/patch", "512^2 slices/s",
                                             "% of peak"))
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            folder = os.path.join(tmp, preset)
            m = save_random_model(preset, folder)
            gflop = net.flops_per_patch(m) / 1e9
            p = predict.Predictor(folder, batch_size=8)
            per_patch = time_patches(p)
            sps = time_slices(p, tmp)
            print("%-10s %11d %12.2f %11.1f %14.2f %10.0f%%" % (preset, net.count_params(m), gflop,
                                                               1000 * per_patch, sps,
                                                               100 * gflop / per_patch / rate))
        if not args.no_big:
            folder = os.path.join(tmp, args.big_preset)
            if not os.path.isdir(folder):
                save_random_model(args.big_preset, folder)
            vol = os.path.join(tmp, "big.mrc")
            make_big_volume(vol)
            r = peak_ram_child(folder, vol, os.path.join(tmp, "bigout"))
            print("1024x1024x300 float32 (1.2 GB, memory-mapped), preset %s: %.0f s; RSS with model loaded "
                  "%.0f MB, peak %.0f MB, so segmentation added %.0f MB" % (
                      args.big_preset, r["seconds"], r["loaded_mb"], r["peak_mb"], r["peak_mb"] - r["loaded_mb"]))


if __name__ == "__main__":
    main()
