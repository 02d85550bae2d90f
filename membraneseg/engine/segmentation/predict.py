"""Segmentation of volumes and 2D images with a trained model, slab by slab, each slice whole or in blended
overlapping windows.

For each output slab of z-slices, the needed input slices (with their 2.5D neighbours) are read from the
memory-mapped input, resampled in XY to the model's pixel size and normalised with statistics of the whole volume.
Windows from all slices of the slab are batched through a compiled forward pass, blended back, resampled to the
input size and written into memory-mapped outputs. Memory is bounded by the slab, not by the tomogram.
"""
import contextlib
import logging
import os
import time

import numpy as np

from ...constants import MASK_SUFFIX, PROB_SUFFIX, SEGMENT_BATCH
from ..core import io, tiling
from ..core.progress import Progress
from ..network import modelfile
from ..network.device import describe_device
from ..network.inference import optimise_for_inference
from ..preprocessing import preprocess, recipes
from ..preprocessing.polarity import POLARITIES
from ..preprocessing.polarity import detect as detect_polarity
from . import scales

log = logging.getLogger(__name__)

# Speed/quality modes: (overlap between neighbouring windows as a fraction of the window, flip test-time
# augmentation). Overlap only matters for slices larger than one window (see Predictor.window_for).
MODES = {"preview": (0.125, False), "default": (0.25, False), "quality": (0.5, True)}
PRECISIONS = ("fp32", "bf16")
# The network pools six times by 2, so a window must be a multiple of 64 pixels a side.
WINDOW_STEP = 64
# A slice that fits in a square window of at most this many pixels a side is predicted in one window, padded up
# to a multiple of 64, so no overlap is computed twice (a pixel costs about the same in any window from 224 to 512
# px on a CPU, and Dice did not change on phantoms and real slices). Larger slices are cut into overlapping
# windows of the model's training patch.
SINGLE_WINDOW_MAX = 512
# Memory-mapped input and outputs are dropped from the resident set after this many bytes of them were touched:
# often enough to keep memory bounded, rarely enough that the write-back (msync) does not stall every slab.
RELEASE_BYTES = 256 << 20


# Inputs coarser than the model are segmented at their own pixel size by default, not upsampled to the model's: on
# simulated raw tomograms at 20, 30 and 40 Å the shipped model found membranes with tolerant Dice 0.88-0.93,
# 0.87-0.92 and 0.72-0.96 at their own pixel size, against 0.75-0.81, 0.51-0.66 and 0.31-0.66 upsampled to its
# 10 Å (upsampling turns noise into membrane-sized blobs); finer inputs are still brought down to the model's.
# A model trained on coarse tomograms upsampled to its pixel size says so in its card (max_upsampling), and is
# given them the same way.
MAX_UPSAMPLING = 1.0


def largest_upsampling(card, asked=None):
    """How far an input coarser than the model may be upsampled: as ``asked``, else as the model's card says its
    training did, else MAX_UPSAMPLING."""
    return float(asked or card.max_upsampling or MAX_UPSAMPLING)


def working_pixel_size(card, px_in, asked=None):
    """The pixel size an input of ``px_in`` Å is segmented at: the model's, unless that means upsampling the
    input by more than largest_upsampling(card, asked)."""
    return preprocess.working_pixel_size(card.pixel_size, px_in, largest_upsampling(card, asked))


class Predictor:
    """A loaded model and its compiled forward passes, one per window size.

    ``batch_size`` counts windows of the training patch; larger windows go through in proportionally smaller
    batches, so memory per forward pass stays about the same. ``precision`` "bf16" computes in bfloat16 with
    float32 weights and output (opt-in: see the README for its Dice change).
    """

    def __init__(self, model_path=None, batch_size=SEGMENT_BATCH, tta=False, precision="fp32", single_window_max=None,
                 max_upsampling=None, test_scales=None):
        if precision not in PRECISIONS:
            raise ValueError("precision must be one of %s, not %r" % (", ".join(PRECISIONS), precision))
        self.model_path = modelfile.model_folder(model_path or modelfile.default_model_path())
        self.model, self.card = modelfile.load(self.model_path)
        self.spec = self.model.inputs[0].shape
        self.k = self.card.network["context"]
        self.step = self.card.network.get("context_step", 1)
        self.patch = self.card.patch
        self.batch_size = int(batch_size)
        self.tta = tta
        self.precision = precision
        self.single_window_max = SINGLE_WINDOW_MAX if single_window_max is None else int(single_window_max)
        self.max_upsampling = largest_upsampling(self.card, max_upsampling)
        if not self.max_upsampling >= 1:
            raise ValueError("the largest upsampling must be 1 (never) or more, not %r" % max_upsampling)
        self.scales = scales.check_factors(test_scales or self.card.test_scales or [1])
        self.planar_scales = bool(test_scales)      # a card's scales are for volumes; asked for, images get them too
        if self.card.network["classes"] > 1 and len(self.scales) > 1:
            log.warning("test-time scales apply to membrane models only, not to multi-class ones: not used")
            self.scales = [1.0]
        self._forwards = {}
        log.info("device: %s; batch %d; precision %s; test-time flips %s; test-time scales %s", describe_device(),
                 self.batch_size, precision, "on" if tta else "off", " ".join("%gx" % f for f in self.scales))

    def working_pixel_size(self, px_in):
        return working_pixel_size(self.card, px_in, self.max_upsampling)

    def window_for(self, shape):
        """Side of the square window for slices of ``shape`` (rows, cols) at the model's pixel size: the whole
        slice padded to a multiple of 64 when that fits in ``single_window_max``, else the training patch."""
        side = max(WINDOW_STEP, -(-max(shape) // WINDOW_STEP) * WINDOW_STEP)
        return side if side <= max(self.single_window_max, self.patch) else self.patch

    def batch_for(self, window):
        """Windows per forward pass: ``batch_size`` patches' worth of pixels, at least one."""
        return max(1, int(self.batch_size * self.patch ** 2 // window ** 2))

    def _forward(self, window):
        """The network for ``window`` pixels a side, compiled once: same weights (no weight depends on the input
        size), a fixed input signature with a free batch dimension so the last, shorter batch needs no padding
        and nothing is traced twice."""
        if window in self._forwards:
            return self._forwards[window]
        import keras
        import tensorflow as tf
        from ..network import model as net
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_bfloat16" if self.precision == "bf16" else "float32")
        try:
            model = net.build(net.NetworkSpec.from_dict(self.card.network), patch=window)
        finally:
            keras.config.set_dtype_policy(previous)
        net.copy_weights(self.model, model)
        optimise_for_inference(model)
        shape = (None,) + tuple(self.spec[1:-3]) + (window, window, 1)
        tta = self.tta

        @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
        def forward(x):
            y = model(x, training=False)
            if not tta:
                return y
            # flip test-time augmentation: rows, columns, both; each prediction is flipped back before averaging
            for axes in ([-3], [-2], [-3, -2]):
                y += tf.reverse(model(tf.reverse(x, axes), training=False), axes)
            return y / 4.0

        self._forwards[window] = forward
        return forward

    def predict_batch(self, patches):
        """(n, [k,] W, W) float32 windows -> (n, W, W, C) probabilities."""
        return self._forward(patches.shape[-1])(patches[..., np.newaxis]).numpy()

    # ------------------------------------------------------------------ volumes
    def segment_file(self, path, out_dir, threshold=None, pixel_size=None, overlap=0.25, progress=True,
                     polarity="auto"):
        """Segment one MRC volume or 2D image; writes ``<stem>_mask`` and ``<stem>_prob`` into ``out_dir`` and
        returns their paths. ``polarity`` (auto, dark, bright) says whether matter is dark or bright in the input;
        bright inputs are inverted for the network, which learnt dark matter."""
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
        work = self.working_pixel_size(px_in)
        ratio = px_in / work
        if ratio > 2:
            log.warning("%s: at %.2f Å/px it is resampled %.2fx to the model's %.2f Å/px; a model trained nearer "
                        "that pixel size (or --max-upsampling 1) may do better", path, px_in, ratio, work)
        elif work > self.card.pixel_size:
            log.info("%s: coarser than the model's %.2f Å/px, so segmented at %.2f Å/px (upsampled at most "
                     "%gx; see --max-upsampling)", path, self.card.pixel_size, work, self.max_upsampling)
        log.info("segmenting %s: %s voxels at %.2f Å, model at %.2f Å, working at %.2f Å, threshold %.3f, overlap "
                 "%.2f", path, "x".join(map(str, vol.data.shape[::-1])), px_in, self.card.pixel_size, work,
                 threshold, overlap)
        start = time.time()
        sign = input_sign(vol.data, px_in, polarity, path)
        with self._model_input(vol, px_in, out_dir) as vol:
            if ext == ".mrc":
                with io.create_mrc(prob_path, vol.data.shape, np.float32, px_in) as prob, \
                        io.create_mrc(mask_path, vol.data.shape, np.int8, px_in) as mask:
                    self._segment_scaled(vol, px_in, threshold, overlap, prob, mask, progress, sign)
            else:
                prob, mask = self.predict_array(vol.data, px_in, threshold, overlap, polarity=POLARITY_OF[sign])
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
        if not recipes.filters(recipe) or recipes.already_applied(recipe, vol.path):
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

    def predict_array(self, data, pixel_size=None, threshold=None, overlap=0.25, polarity="dark"):
        """Probability map and mask of an in-memory stack (Z, Y, X) or 2D image (for scripts and benchmarks), with
        the model's preprocessing applied as ``segment_file`` applies it. ``polarity``: see segment_file (dark by
        default here: arrays are taken as given)."""
        data = np.asarray(data)
        data = data[np.newaxis] if data.ndim == 2 else data
        sign = input_sign(data, pixel_size or self.card.pixel_size, polarity, "<array>")
        if sign < 0:
            data = -data.astype(np.float32)       # before EED or CLAHE, which are not symmetric in intensity
        if recipes.filters(self.card.preprocessing):
            data = recipes.apply_to_array(data, self.card.preprocessing, pixel_size or 0.0)
        vol = io.Volume(data, pixel_size or 0.0, data.shape[0] == 1, "<array>")
        check_volume(vol)
        prob = np.zeros(data.shape, np.float32)
        mask = np.zeros(data.shape, np.uint8)
        self._segment_scaled(vol, pixel_size or self.card.pixel_size,
                             self.card.threshold if threshold is None else threshold, overlap, prob, mask, False)
        return prob, mask

    def _segment_scaled(self, vol, px_in, threshold, overlap, prob_out, mask_out, progress, sign=1):
        """_segment_volume at each test-time scale, the probability maps averaged."""
        def segment(data, px, prob, mask, work=None):
            self._segment_volume(vol._replace(data=data), px, threshold, overlap, prob, mask, progress, sign, work)
        finer = scales.finer_passes(self.scales, self.working_pixel_size(px_in), self.card.pixel_size)
        scales.segment_scales(segment, vol.data, px_in, self.scales, prob_out, mask_out, threshold, vol.path,
                              self.planar_scales, finer)

    def _segment_volume(self, vol, px_in, threshold, overlap, prob_out, mask_out, progress, sign=1, work=None):
        """One pass; ``work``: the pixel size the network works at (default: working_pixel_size)."""
        depth, rows, cols = vol.data.shape
        stats = preprocess.robust_stats(vol.data)
        io.release(vol.data)      # sampling touched up to 64 whole slices of a memory-mapped input
        work = work or self.working_pixel_size(px_in)
        model_shape = preprocess.scaled_shape((rows, cols), px_in, work)
        win = self.window_for(model_shape)
        work_shape = tiling.padded_shape(model_shape, win)
        positions = tiling.grid(work_shape, win, overlap)
        # one window per slice needs no blending
        weight = tiling.window(win) if len(positions) > 1 else np.ones((win, win), np.float32)
        wsum = np.zeros(work_shape, np.float32)
        for r, c in positions:
            wsum[r:r + win, c:c + win] += weight
        batch = self.batch_for(win)
        spacing = work / px_in if depth > 1 else 0.0
        reach = int(np.ceil(spacing * (self.step * (self.k // 2) + 0.5)))    # input slices a context spans
        cache = {}

        def prepared(i):
            if i not in cache:
                s = preprocess.normalize(vol.data[i], stats)
                s = -s if sign < 0 else s
                cache[i] = tiling.pad_to(preprocess.resize_slice(s, model_shape), work_shape)
            return cache[i]

        slab = max(1, int(np.ceil(2 * batch / len(positions))))
        touched = 0           # bytes of input and outputs paged in since the last release
        log.debug("window %d px, %d per slice, batch %d, slab %d slices", win, len(positions), batch, slab)
        bar = Progress(depth, vol.path, enabled=progress)
        for z0 in range(0, depth, slab):
            zs = list(range(z0, min(depth, z0 + slab)))
            acc = np.zeros((len(zs),) + work_shape + (self.model.output.shape[-1],), np.float32)
            jobs = [(j, r, c) for j in range(len(zs)) for r, c in positions]
            stacks = {z: tiling.blend_slices(prepared, tiling.context_slices(z, depth, self.k, spacing, self.step))
                      for z in zs}
            for b in range(0, len(jobs), batch):
                chunk = jobs[b:b + batch]
                patches = np.stack([self._patch(stacks[zs[j]], r, c, win) for j, r, c in chunk])
                out = self.predict_batch(patches)
                for (j, r, c), p in zip(chunk, out):
                    acc[j, r:r + win, c:c + win] += p * weight[..., None]
            for j, z in enumerate(zs):
                probs = acc[j, :model_shape[0], :model_shape[1]] / wsum[:model_shape[0], :model_shape[1], None]
                fg, labels = self._to_outputs(probs, threshold)
                fg = preprocess.resize_slice(fg, (rows, cols))
                prob_out[z] = np.clip(fg, 0.0, 1.0)
                if labels is None:
                    mask_out[z] = prob_out[z] >= threshold
                else:
                    mask_out[z] = preprocess.resize_nearest(labels, (rows, cols))
            for i in [i for i in cache if i < z0 + slab - reach - 1]:
                del cache[i]
            touched += len(zs) * rows * cols * 9     # float32 in, float32 and int8 out
            if touched >= RELEASE_BYTES or zs[-1] == depth - 1:
                for array in (vol.data, prob_out, mask_out):  # keep the resident set bounded
                    io.release(array)
                touched = 0
            bar.update(len(zs))
        bar.close()

    def _patch(self, stack, r, c, win):
        if self.k == 1:
            return stack[0][r:r + win, c:c + win]
        return np.stack([s[r:r + win, c:c + win] for s in stack])

    @staticmethod
    def _to_outputs(probs, threshold):
        """Binary models give the membrane probability; multi-class models give 1 - P(background) and labels."""
        if probs.shape[-1] == 1:
            return probs[..., 0], None
        return 1.0 - probs[..., 0], np.argmax(probs, axis=-1).astype(np.uint8)


POLARITY_OF = {1: "dark", -1: "bright"}


def input_sign(data, pixel_size, polarity, name):
    """+1 to give the input to the network as it is (matter dark), -1 to invert it (matter bright); ``polarity``
    auto measures it (preprocessing.polarity) and says what it decided."""
    if polarity not in ("auto",) + POLARITIES:
        raise ValueError("polarity must be auto, dark or bright, not %r" % polarity)
    if polarity == "auto":
        found, skew = detect_polarity(data, pixel_size)
        if found is None:
            log.warning("%s: contrast polarity undecided (skewness %+.2f of the smoothed density); taking matter "
                        "as dark. Give --polarity bright if it is bright.", name, skew)
            return 1
        log.info("%s: matter is %s (skewness %+.2f of the smoothed density)%s", name, found, skew,
                 "; inverting it for the network" if found == "bright" else "")
        polarity = found
    return -1 if polarity == "bright" else 1


def output_paths(path, out_dir, is_2d=False):
    """Where ``segment`` writes the mask and the probability map of ``path``: named after the actual input file,
    .tif for 2D images and .mrc for volumes."""
    stem = os.path.splitext(os.path.basename(str(path)))[0]
    ext = ".tif" if is_2d or io.suffix_of(path) in io.IMAGE_SUFFIXES else ".mrc"
    return (os.path.join(out_dir, stem + MASK_SUFFIX + ext), os.path.join(out_dir, stem + PROB_SUFFIX + ext))


# shared with the preprocess command: the same inputs are refused by both, with the same words
check_volume = preprocess.check_volume
