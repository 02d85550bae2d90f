"""Segmentation of volumes and 2D images with a trained model, slab by slab, in blended overlapping patches.

For each output slab of z-slices, the needed input slices (with their 2.5D neighbours) are read from the
memory-mapped input, resampled in XY to the model's pixel size and normalised with statistics of the whole volume.
Patches from all slices of the slab are batched through a compiled forward pass, blended back, resampled to the
input size and written into memory-mapped outputs. Memory is bounded by the slab, not by the tomogram.
"""
import contextlib
import logging
import os
import sys
import time

import numpy as np

from ..constants import MASK_SUFFIX, PROB_SUFFIX
from . import io, modelfile, preprocess, recipes, tiling

log = logging.getLogger(__name__)

QUALITY_OVERLAP = {"fast": 0.125, "default": 0.25, "quality": 0.5}


def describe_device():
    """Which device TensorFlow will run on, said plainly (a silent fall-back to the CPU is a known complaint)."""
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return "GPU (%s)" % ", ".join(g.name for g in gpus)
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    return "CPU (%s threads; no GPU visible to TensorFlow)" % threads


class Predictor:
    """A loaded model and its compiled forward pass."""

    def __init__(self, model_path=None, batch_size=8, tta=False):
        import tensorflow as tf
        self.model_path = modelfile.model_folder(model_path or modelfile.default_model_path())
        self.model, self.card = modelfile.load(self.model_path)
        self.spec = self.model.inputs[0].shape
        self.k = self.card.network["context"]
        self.patch = self.card.patch
        self.batch_size = int(batch_size)
        self.tta = tta
        shape = (self.batch_size,) + tuple(self.spec[1:])
        model = self.model

        @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
        def forward(x):
            y = model(x, training=False)
            if not tta:
                return y
            # flip test-time augmentation: rows, columns, both; each prediction is flipped back before averaging
            for axes in ([-3], [-2], [-3, -2]):
                y += tf.reverse(model(tf.reverse(x, axes), training=False), axes)
            return y / 4.0

        self._forward = forward
        log.info("device: %s; batch %d; test-time flips %s", describe_device(), self.batch_size,
                 "on" if tta else "off")

    def predict_batch(self, patches):
        """(n, [k,] P, P) float32 -> (n, P, P, C) probabilities; pads the last batch to the compiled size."""
        n = patches.shape[0]
        x = np.zeros((self.batch_size,) + tuple(self.spec[1:]), np.float32)
        x[:n, ..., 0] = patches
        return self._forward(x).numpy()[:n]

    # ------------------------------------------------------------------ volumes
    def segment_file(self, path, out_dir, threshold=None, pixel_size=None, overlap=0.25, progress=True):
        """Segment one MRC volume or 2D image; writes ``<stem>_mask`` and ``<stem>_prob`` into ``out_dir`` and
        returns their paths."""
        vol = io.read(path)
        check_volume(vol)
        os.makedirs(out_dir, exist_ok=True)
        mask_path, prob_path = output_paths(path, out_dir, vol.is_2d)
        ext = io.suffix_of(mask_path)
        threshold = self.card.threshold if threshold is None else float(threshold)
        px_in = io.resolve_pixel_size(vol.voxel_size, pixel_size, path)
        if not px_in:
            log.warning("%s: pixel size unknown; assuming the model's %.2f Å. Give --pixel-size if it differs.",
                        path, self.card.pixel_size)
            px_in = self.card.pixel_size
        log.info("segmenting %s: %s voxels at %.2f Å, model at %.2f Å, threshold %.3f, overlap %.2f",
                 path, "x".join(map(str, vol.data.shape[::-1])), px_in, self.card.pixel_size, threshold, overlap)
        start = time.time()
        with self._model_input(vol, px_in, out_dir) as vol:
            if ext == ".mrc":
                with io.create_mrc(prob_path, vol.data.shape, np.float32, px_in) as prob, \
                        io.create_mrc(mask_path, vol.data.shape, np.int8, px_in) as mask:
                    self._segment_volume(vol, px_in, threshold, overlap, prob, mask, progress)
            else:
                prob, mask = self.predict_array(vol.data, px_in, threshold, overlap)
                io.write(prob_path, prob, px_in)
                io.write(mask_path, mask, px_in)
        log.info("done %s in %.1f s: %s, %s", path, time.time() - start, mask_path, prob_path)
        return mask_path, prob_path

    @contextlib.contextmanager
    def _model_input(self, vol, px_in, out_dir):
        """The volume as the model expects it: when the model's card asks for preprocessing beyond normalisation
        (EED, CLAHE) and the input does not carry a matching recipe, apply it to a hidden temporary copy (binning
        is left out: resampling to the model's pixel size happens here anyway)."""
        recipe = recipes.comparable(self.card.preprocessing)
        if not set(recipe) - {"normalize"} or recipes.already_applied(recipe, vol.path):
            yield vol
            return
        tmp = os.path.join(out_dir, io.partial_name(os.path.basename(vol.path)) + ".model-input.mrc")
        try:
            log.info("%s: applying the model's preprocessing %s", vol.path, sorted(set(recipe) - {"normalize"}))
            recipes.apply_recipe(vol.path, tmp, recipe, pixel_size=px_in)
            yield io.read(tmp)._replace(path=vol.path, is_2d=vol.is_2d)
        finally:
            for f in (tmp, recipes.recipe_path(tmp)):
                if os.path.exists(f):
                    os.remove(f)

    def predict_array(self, data, pixel_size=None, threshold=None, overlap=0.25):
        """Probability map and mask of an in-memory stack (Z, Y, X) or 2D image (for scripts and benchmarks)."""
        data = np.asarray(data)
        data = data[np.newaxis] if data.ndim == 2 else data
        vol = io.Volume(data, pixel_size or 0.0, data.shape[0] == 1, "<array>")
        check_volume(vol)
        prob = np.zeros(data.shape, np.float32)
        mask = np.zeros(data.shape, np.uint8)
        self._segment_volume(vol, pixel_size or self.card.pixel_size,
                             self.card.threshold if threshold is None else threshold, overlap, prob, mask, False)
        return prob, mask

    def _segment_volume(self, vol, px_in, threshold, overlap, prob_out, mask_out, progress):
        depth, rows, cols = vol.data.shape
        stats = preprocess.robust_stats(vol.data)
        model_shape = preprocess.scaled_shape((rows, cols), px_in, self.card.pixel_size)
        work_shape = tiling.padded_shape(model_shape, self.patch)
        positions = tiling.grid(work_shape, self.patch, overlap)
        weight = tiling.window(self.patch)
        wsum = np.zeros(work_shape, np.float32)
        for r, c in positions:
            wsum[r:r + self.patch, c:c + self.patch] += weight
        spacing = self.card.pixel_size / px_in if depth > 1 else 0.0
        cache = {}

        def prepared(i):
            if i not in cache:
                s = preprocess.normalize(vol.data[i], stats)
                cache[i] = tiling.pad_to(preprocess.resize_slice(s, model_shape), work_shape)
            return cache[i]

        slab = max(1, int(np.ceil(2 * self.batch_size / len(positions))))
        bar = Progress(depth, vol.path, enabled=progress)
        for z0 in range(0, depth, slab):
            zs = list(range(z0, min(depth, z0 + slab)))
            acc = np.zeros((len(zs),) + work_shape + (self.model.output.shape[-1],), np.float32)
            jobs = [(j, r, c) for j in range(len(zs)) for r, c in positions]
            stacks = {z: [prepared(i) for i in tiling.context_indices(z, depth, self.k, spacing)] for z in zs}
            for b in range(0, len(jobs), self.batch_size):
                chunk = jobs[b:b + self.batch_size]
                patches = np.stack([self._patch(stacks[zs[j]], r, c) for j, r, c in chunk])
                out = self.predict_batch(patches)
                for (j, r, c), p in zip(chunk, out):
                    acc[j, r:r + self.patch, c:c + self.patch] += p * weight[..., None]
            for j, z in enumerate(zs):
                probs = acc[j, :model_shape[0], :model_shape[1]] / wsum[:model_shape[0], :model_shape[1], None]
                fg, labels = self._to_outputs(probs, threshold)
                fg = preprocess.resize_slice(fg, (rows, cols))
                prob_out[z] = np.clip(fg, 0.0, 1.0)
                if labels is None:
                    mask_out[z] = prob_out[z] >= threshold
                else:
                    mask_out[z] = preprocess.resize_nearest(labels, (rows, cols))
            for i in [i for i in cache if i < z0 + slab - int(np.ceil(spacing * (self.k // 2))) - 1]:
                del cache[i]
            for array in (vol.data, prob_out, mask_out):  # keep the resident set to one slab
                io.release(array)
            bar.update(len(zs))
        bar.close()

    def _patch(self, stack, r, c):
        p = self.patch
        if self.k == 1:
            return stack[0][r:r + p, c:c + p]
        return np.stack([s[r:r + p, c:c + p] for s in stack])

    @staticmethod
    def _to_outputs(probs, threshold):
        """Binary models give the membrane probability; multi-class models give 1 - P(background) and labels."""
        if probs.shape[-1] == 1:
            return probs[..., 0], None
        return 1.0 - probs[..., 0], np.argmax(probs, axis=-1).astype(np.uint8)


def output_paths(path, out_dir, is_2d=False):
    """Where ``segment`` writes the mask and the probability map of ``path``: named after the actual input file,
    .tif for 2D images and .mrc for volumes."""
    stem = os.path.splitext(os.path.basename(str(path)))[0]
    ext = ".tif" if is_2d or io.suffix_of(path) in io.IMAGE_SUFFIXES else ".mrc"
    return (os.path.join(out_dir, stem + MASK_SUFFIX + ext), os.path.join(out_dir, stem + PROB_SUFFIX + ext))


def check_volume(vol):
    """Refuse inputs that cannot give a meaningful segmentation, before any output is created."""
    sample = preprocess.sample(vol.data, n=200_000)
    if sample.size == 0:
        raise io.InputError(vol.path, "no finite voxel values (all NaN or Inf)")
    if float(sample.max()) == float(sample.min()):
        raise io.InputError(vol.path, "all voxels have the same value (%g); nothing to segment" % sample.max())


class Progress:
    """A one-line progress bar on stderr in a terminal, and a log line every tenth of the work otherwise."""

    def __init__(self, total, label, enabled=True):
        self.total, self.label, self.done = total, os.path.basename(label), 0
        self.start = time.time()
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.next_log = 0.1

    def update(self, n):
        self.done += n
        if not self.enabled:
            return
        frac = self.done / max(1, self.total)
        rate = self.done / max(1e-9, time.time() - self.start)
        if self.tty:
            bar = "#" * int(30 * frac)
            sys.stderr.write("\r%s [%-30s] %d/%d slices, %.1f slices/s" % (self.label, bar, self.done,
                                                                          self.total, rate))
            sys.stderr.flush()
        elif frac >= self.next_log or self.done == self.total:
            log.info("%s: %d/%d slices (%.0f%%), %.1f slices/s", self.label, self.done, self.total, 100 * frac, rate)
            self.next_log = frac + 0.1

    def close(self):
        if self.tty:
            sys.stderr.write("\n")
