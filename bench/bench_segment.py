"""Segmentation benchmark: how fast the network runs and how much of the CPU it uses, where its time goes, and
the time and peak memory of whole tomograms.

    .venv/bin/python bench/bench_segment.py [--presets cpu-small cpu] [--profile] [--volume-preset cpu-small]
                                            [--mode default] [--precision fp32] [--batch-size 32] [--no-volume]
                                            [--huge]

Per preset (random weights; speed does not depend on them): parameters, GFLOP per 224x224 patch (2 per
multiply-add), ms per patch in batches of --batch-size (segmentation's default) and ms per 512x512 slice (in
batches of as many pixels), through the same compiled forward pass that segmentation uses, and the fraction of
the machine's fp32 matrix-multiply rate that makes (best of 10 runs against the matrix product's best of 10, and
median against median); then ms per patch in bfloat16 (--precision bf16).
--profile times every layer alone on its real input shape and adds the time up by kind of layer, with each
kind's own FLOP rate.

Volumes are segmented end to end (reading a memory-mapped MRC, normalising, resampling, the network, stitching,
writing both outputs) in a child process, which reports its time and its peak RSS from /proc: 512x512x200 at the
model's pixel size, and with --huge 2048x2048x500 float32 (8 GB on disk, deleted afterwards) at half the
model's pixel size, so it is resampled to 1024x1024 and back. Every figure is printed with the 1-minute load
average: the machine is shared, and a load above the core count means the figures are pessimistic.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from membraneseg.constants import SEGMENT_BATCH  # noqa: E402

REPEATS = 10
Rate = collections.namedtuple("Rate", "best median")        # GFLOP/s
Timing = collections.namedtuple("Timing", "best median")    # seconds


def load():
    """The 1-minute load average, for printing beside a figure."""
    return "load %.2f" % os.getloadavg()[0]


def matmul_rate(n=4096, repeats=REPEATS):
    """fp32 GFLOP/s of an n x n matrix product in TensorFlow (the library the network runs on): (best, median)
    over ``repeats``, taken the same way as the network's, so that their ratios compare like with like."""
    import tensorflow as tf
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    f = tf.function(lambda x, y: tf.matmul(x, y))
    f(a, b).numpy()
    seconds = []
    for _ in range(repeats):
        t = time.perf_counter()
        f(a, b).numpy()
        seconds.append(time.perf_counter() - t)
    return Rate(2 * n ** 3 / np.min(seconds) / 1e9, 2 * n ** 3 / np.median(seconds) / 1e9)


def save_random_model(preset, folder, context=1):
    from membraneseg.engine.network import model as net, modelfile
    spec = net.NetworkSpec.from_preset(preset, context=context)
    m = net.build(spec)
    modelfile.save(m, modelfile.ModelCard(network=spec.to_dict(), pixel_size=10.0), folder)
    return m


def time_window(predictor, window, repeats=REPEATS):
    """Seconds per window of ``window`` pixels a side, in the batches segmentation uses for it: (best, median)."""
    batch = predictor.batch_for(window)
    x = np.random.default_rng(0).normal(size=(batch, window, window)).astype(np.float32)
    predictor.predict_batch(x)  # trace and warm up
    seconds = []
    for _ in range(repeats):
        t = time.perf_counter()
        predictor.predict_batch(x)
        seconds.append(time.perf_counter() - t)
    return Timing(np.min(seconds) / batch, np.median(seconds) / batch)


def profile_layers(preset, batch=8, patch=224):
    """Seconds and FLOPs per patch of each kind of layer, each layer timed alone (compiled) on its real input
    shape; rewritten as prediction rewrites them (network.inference.optimise_for_inference). Returns
    {kind: [s, FLOPs]}."""
    import keras
    import tensorflow as tf
    from membraneseg.engine.network import inference, model as net
    m = net.build(net.NetworkSpec.from_preset(preset), patch=patch)
    inference.optimise_for_inference(m)
    kinds = collections.defaultdict(lambda: [0.0, 0])
    for layer in m.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        inputs = layer.input if isinstance(layer.input, list) else [layer.input]
        xs = [tf.random.normal((batch,) + tuple(i.shape[1:])) for i in inputs]
        f = tf.function(lambda *a, layer=layer: layer(list(a) if len(a) > 1 else a[0], training=False))
        f(*xs)
        best = np.inf
        for _ in range(5):
            t = time.perf_counter()
            np.asarray(f(*xs))
            best = min(best, time.perf_counter() - t)
        kind = type(layer).__name__
        if kind == "Conv2D":
            kind += " %dx%d" % layer.kernel_size
            kind += " (full resolution)" if layer.output.shape[1] == patch else ""
        kinds[kind][0] += best / batch
        kinds[kind][1] += net.layer_flops(layer, 1, patch)
    return dict(kinds)


def print_profile(kinds, rate):
    """Where the time goes and each kind's own FLOP rate. Layers timed alone pay a call each and fuse nothing,
    so their sum is more than the compiled network's time; the shares show what dominates."""
    total = sum(s for s, _ in kinds.values())
    flops = sum(f for _, f in kinds.values())
    with_flops = sum(s for s, f in kinds.values() if f)
    print("  where the time goes (each layer alone, batch 8; sum %.1f ms per patch):" % (1000 * total))
    for kind, (seconds, f) in sorted(kinds.items(), key=lambda kv: -kv[1][0])[:10]:
        rate_text = "%6.1f GFLOP/s %4.0f%% of peak" % (f / seconds / 1e9, 100 * f / seconds / 1e9 / rate) \
            if f else ""
        print("    %-34s %5.1f ms %4.0f%%  %s" % (kind, 1000 * seconds, 100 * seconds / total, rate_text))
    print("  layers timed alone: those with multiply-adds at %.0f%% of the matrix-product rate, all of them at %.0f%%"
          % (100 * flops / with_flops / 1e9 / rate, 100 * flops / total / 1e9 / rate))


def segment_in_child(model_dir, volume, out_dir, pixel_size, mode, precision, batch_size):
    """Load the model in a fresh process, warm it up, then segment ``volume`` end to end; returns the seconds,
    the RSS once the model is loaded and the peak RSS (MB)."""
    code = r"""
import json, os, sys, time
sys.path.insert(0, %(root)r)
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
from membraneseg.engine.segmentation import predict
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024.0
overlap, tta = predict.MODES[%(mode)r]
p = predict.Predictor(%(model)r, tta=tta, precision=%(precision)r, batch_size=%(batch)d)
p.predict_batch(np.zeros((1,) + ((p.k,) if p.k > 1 else ()) + (p.patch, p.patch), np.float32))   # 2.5D: k slices
loaded = status("VmRSS")
t = time.time()
p.segment_file(%(volume)r, %(out)r, pixel_size=%(pixel_size)r, overlap=overlap, progress=False)
print(json.dumps(dict(loaded_mb=loaded, peak_mb=status("VmHWM"), seconds=time.time() - t)))
""" % dict(root=ROOT, model=model_dir, volume=volume, out=out_dir, pixel_size=pixel_size, mode=mode,
           precision=precision, batch=batch_size)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_volume(path, shape, voxel_size=10.0):
    """A float32 MRC of noise, written slice by slice (memory stays small whatever the size)."""
    from membraneseg.engine.core import io
    rng = np.random.default_rng(2)
    with io.create_mrc(path, shape, np.float32, voxel_size) as out:
        for z in range(shape[0]):
            out[z] = rng.standard_normal(shape[1:], dtype=np.float32)
            io.release(out)


def speed_table(presets, tmp, rate, profile, batch_size):
    from membraneseg.engine.network import model as net
    from membraneseg.engine.segmentation import predict
    print("best of %d runs, and in brackets their median; %% of the matrix product's rate taken the same way"
          % REPEATS)
    print("%-10s %10s %11s %18s %11s %18s %11s %12s" % (
        "preset", "parameters", "GFLOP/224²", "ms/224² patch", "% peak", "ms/512² slice", "% peak", "bf16 ms/224²"))
    for preset in presets:
        folder = os.path.join(tmp, preset)
        m = save_random_model(preset, folder)
        gflop = net.flops_per_patch(m) / 1e9
        gflop512 = net.flops_per_patch(net.build(net.NetworkSpec.from_preset(preset), patch=512)) / 1e9
        p = predict.Predictor(folder, batch_size=batch_size)
        t224, t512 = time_window(p, 224), time_window(p, 512)
        bf16 = time_window(predict.Predictor(folder, batch_size=batch_size, precision="bf16"), 224)
        print("%-10s %10d %11.2f %18s %11s %18s %11s %12.1f   (%s)" % (
            preset, net.count_params(m), gflop, "%.1f (%.1f)" % (1000 * t224.best, 1000 * t224.median),
            fraction(gflop, t224, rate), "%.1f (%.1f)" % (1000 * t512.best, 1000 * t512.median),
            fraction(gflop512, t512, rate), 1000 * bf16.best, load()))
        if profile:
            print_profile(profile_layers(preset), rate.best)


def fraction(gflop, timing, rate):
    """'best% (median%)' of the matrix product's rate."""
    return "%.0f%% (%.0f%%)" % (100 * gflop / timing.best / rate.best, 100 * gflop / timing.median / rate.median)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="*", default=["cpu-small", "cpu-fine", "cpu"],
                        help="presets to time (none: only the volume runs)")
    parser.add_argument("--profile", action="store_true", help="time every layer and sum by kind")
    parser.add_argument("--volume-preset", default="cpu-fine",
                        help="preset for the volume runs (default cpu-fine, the default model's)")
    parser.add_argument("--mode", default="default", help="preview, default or quality for the volume runs")
    parser.add_argument("--precision", default="fp32", help="fp32 or bf16 for the volume runs")
    parser.add_argument("--no-volume", action="store_true", help="skip the 512x512x200 run")
    parser.add_argument("--huge", action="store_true", help="also 2048x2048x500 (8 GB written to --tmp)")
    parser.add_argument("--tmp", default=None, help="folder for the volumes (default: the system's)")
    parser.add_argument("--batch-size", type=int, default=SEGMENT_BATCH,
                        help="patches of 224² per forward pass, as `membraneseg segment --batch-size` (default %d)"
                        % SEGMENT_BATCH)
    args = parser.parse_args()

    rate = matmul_rate()
    print("machine: %d cores; TensorFlow fp32 matmul %.1f GFLOP/s best, %.1f median (4096², %s)"
          % (os.cpu_count(), rate.best, rate.median, load()))
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        if args.presets:
            speed_table(args.presets, tmp, rate, args.profile, args.batch_size)
        folder = os.path.join(tmp, args.volume_preset)
        if not os.path.isdir(folder):
            save_random_model(args.volume_preset, folder)
        runs = [] if args.no_volume else [((200, 512, 512), None)]
        runs += [((500, 2048, 2048), 5.0)] if args.huge else []
        for shape, pixel in runs:
            vol = os.path.join(tmp, "vol.mrc")
            make_volume(vol, shape)
            r = segment_in_child(folder, vol, os.path.join(tmp, "out"), pixel, args.mode, args.precision,
                                 args.batch_size)
            gb = np.prod(shape) * 4 / 2 ** 30
            print("%s float32 (%.1f GB, memory-mapped)%s, preset %s, mode %s, %s: %.1f s end to end; RSS "
                  "%.0f MB with the model loaded, peak %.0f MB (%s)" % (
                      "x".join(map(str, shape[::-1])), gb,
                      " at 5 Å, segmented at the model's 10 Å" if pixel else " at the model's pixel size",
                      args.volume_preset, args.mode, "%s, batch %d" % (args.precision, args.batch_size),
                      r["seconds"], r["loaded_mb"], r["peak_mb"], load()))
            for f in [vol] + [os.path.join(tmp, "out", n) for n in os.listdir(os.path.join(tmp, "out"))]:
                os.remove(f)


if __name__ == "__main__":
    main()
