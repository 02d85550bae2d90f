"""Protocol "segment membranes": a SetOfTomograms in, membrane masks and probability maps out."""
import pyworkflow.object as pwobj
from pyworkflow import BETA
from pyworkflow.protocol import params
from pyworkflow.utils import Message
from tomo.objects import SetOfTomoMasks, TomoMask

from .. import Plugin
from ..constants import OUT_FAILED, OUT_MASKS, OUT_PROBS, SEGMENT_BATCH
from ..engine.network import modelfile
from ..engine.segmentation.predict import (MAX_UPSAMPLING, MODES, PRECISIONS, SINGLE_WINDOW_MAX, output_paths,
                                           working_pixel_size)
from .base import ProtMembraneSegPerTomo, addComputeParams


MODE_CHOICES = list(MODES) + ["custom"]
POLARITY_CHOICES = ["auto", "dark", "bright"]


class ProtMembraneSegSegment(ProtMembraneSegPerTomo):
    """Segment membranes and vesicles in tomograms with the hybrid deep network (Morales-Martinez et al. 2025).

    Each tomogram is resampled to the model's pixel size, segmented slice by slice (with its neighbouring
    z-slices for 2.5D models; slices wider than 512 px in overlapping windows), and the probabilities are
    resampled back. The output is a binary mask
    (tomoMasks) and the membrane probability map (tomoProbMaps), which the "threshold and clean" protocol can
    re-threshold without running the network again.
    """
    _label = "segment membranes"
    _devStatus = BETA
    _possibleOutputs = {OUT_MASKS: SetOfTomoMasks, OUT_PROBS: SetOfTomoMasks}

    def _defineParams(self, form):
        form.addSection(label=Message.LABEL_INPUT)
        form.addParam("inputTomograms", params.PointerParam, pointerClass="SetOfTomograms", important=True,
                      label="Tomograms",
                      help="Tomograms to segment. Their sampling rate (Å/px) is used to resample them to the "
                           "model's pixel size; MRC header values are not trusted.")
        form.addParam("inputModel", params.PointerParam, pointerClass="MembraneSegModel", allowsNull=True,
                      label="Trained model (optional)",
                      help="A model from the 'train membrane model' or 'import membrane model' protocols. Leave "
                           "empty to use the tomogram model shipped with the plugin (trained on simulated raw "
                           "tomograms and real slices), or MEMBRANESEG_MODEL if set.")
        form.addParam("useModelThreshold", params.BooleanParam, default=True,
                      label="Use the model's calibrated threshold?",
                      help="Models trained here store the probability threshold that maximised Dice on their "
                           "validation data. Say No to set your own.")
        form.addParam("threshold", params.FloatParam, default=0.5, condition="not useModelThreshold",
                      validators=[params.Range(0.0, 1.0)], label="Probability threshold (0-1)",
                      help="Voxels with a membrane probability at or above this value are membrane. Lower it to "
                           "catch faint membranes (more false positives), raise it for cleaner masks. The "
                           "probability maps are kept, so you can re-threshold later without re-running.")
        form.addSection(label="Speed and quality")
        form.addParam("mode", params.EnumParam, choices=MODE_CHOICES, default=MODE_CHOICES.index("default"),
                      display=params.EnumParam.DISPLAY_HLIST, label="Mode",
                      help="Speed against quality. Slices up to %d px wide (at the model's pixel size) go "
                           "through the network whole; wider ones in overlapping windows.\n"
                           "preview: windows overlap by 12.5%% of their width, no test-time augmentation.\n"
                           "default: 25%% overlap.\n"
                           "quality: 50%% overlap and flip test-time augmentation (the average of 4 flipped "
                           "predictions): about 4x the time of default.\n"
                           "custom: set the overlap and the flips yourself.\n"
                           "Measured times and Dice of each are in the plugin's README." % SINGLE_WINDOW_MAX)
        form.addParam("overlap", params.FloatParam, default=0.25, validators=[params.Range(0.0, 0.9)],
                      condition="mode == %d" % MODE_CHOICES.index("custom"),
                      label="Window overlap (fraction, 0-0.9)",
                      help="Fraction of each window's width shared with its neighbour (no unit). Higher is "
                           "smoother and slower: 0.5 costs about 2.5x the time of 0.25.")
        form.addParam("tta", params.BooleanParam, default=False, label="Flip test-time augmentation?",
                      condition="mode == %d" % MODE_CHOICES.index("custom"),
                      help="Average the predictions of the window and its three flips: slightly better masks, "
                           "about 4x the time.")
        form.addParam("polarity", params.EnumParam, choices=POLARITY_CHOICES, default=0,
                      display=params.EnumParam.DISPLAY_HLIST, label="Contrast polarity",
                      help="Is matter dark in the tomograms (as IMOD writes them) or bright (as some other "
                           "pipelines do)? auto measures it in each tomogram (from the skew of its smoothed "
                           "intensities) and says what it found in the job's log; bright tomograms are inverted "
                           "for the network. Choose dark or bright to skip the measurement.")
        form.addParam("maxUpsampling", params.FloatParam, allowsNull=True, expertLevel=params.LEVEL_ADVANCED,
                      label="Largest upsampling (factor)",
                      help="Tomograms coarser than the model are upsampled to its pixel size by at most this "
                           "factor. Empty (default): what the model's card says it was trained with, else %g: "
                           "coarser tomograms are segmented at their own pixel size, which found membranes better "
                           "in simulated 20-40 Å tomograms with a model trained at 10 Å only. Finer tomograms are "
                           "always brought down to the model's pixel size." % MAX_UPSAMPLING)
        form.addParam("scales", params.StringParam, default="", expertLevel=params.LEVEL_ADVANCED,
                      label="Test-time scales (factors)",
                      help="Factors (separated by spaces) by which each tomogram is also smoothed and made "
                           "coarser (over 1) before it is segmented again; the probability maps are averaged. Each "
                           "factor f costs about 1/f of the time of one pass; copies coarser than 60 Å/voxel are "
                           "skipped. A factor under 1 segments a tomogram coarser than the model's largest "
                           "upsampling allows once more, with the network at f times the pixel size of the first "
                           "pass (never finer than the model's). Empty (default): what the model's card says (the "
                           "shipped tomogram model: 0.5 1 2 4, which found more membrane in simulated raw "
                           "tomograms, and at 40 Å called fewer microtubule walls membrane). 1: off.")
        form.addParam("precision", params.EnumParam, choices=list(PRECISIONS), default=0,
                      display=params.EnumParam.DISPLAY_HLIST, expertLevel=params.LEVEL_ADVANCED,
                      label="Arithmetic precision",
                      help="fp32: full precision (default). bf16: bfloat16 arithmetic with float32 weights; "
                           "faster where the CPU has AVX512-BF16 or AMX, or on a recent GPU. Its Dice change, "
                           "measured on phantoms and real slices, is in the plugin's README.")
        form.addParam("batchSize", params.IntParam, default=SEGMENT_BATCH, validators=[params.GE(1)],
                      expertLevel=params.LEVEL_ADVANCED, label="Batch size (224² patches)",
                      help="224×224 patches' worth of pixels per forward pass. %d keeps a CPU busiest; each 8 "
                           "patches take about 0.17 GB with the default model, so lower it when the machine or "
                           "the GPU runs out of memory." % SEGMENT_BATCH)
        addComputeParams(form, "Threads TensorFlow uses inside one segmentation job on the CPU.")
        form.addParallelSection(threads=1, mpi=0)

    # ------------------------------------------------------------------ steps
    def processTomogram(self, tsId):
        tomo = self.tomoDict[tsId]
        args = [tomo.getFileName(), "-o", self.tomoExtra(tsId), "--model", self.getModelPath(),
                "--pixel-size", "%.4f" % tomo.getSamplingRate(), "--batch-size", self.batchSize.get(),
                "--volumes-only", "--precision", PRECISIONS[self.precision.get()],
                "--polarity", POLARITY_CHOICES[self.polarity.get()]]
        if self.maxUpsampling.get() is not None:
            args += ["--max-upsampling", "%g" % self.maxUpsampling.get()]
        if self.scales.get():
            args += ["--scales"] + self.scales.get().split()
        mode = MODE_CHOICES[self.mode.get()]
        if mode == "custom":
            args += ["--overlap", "%g" % self.overlap.get()] + (["--tta"] if self.tta.get() else [])
        else:
            args += ["--mode", mode]
        if not self.useModelThreshold.get():
            args += ["--threshold", "%g" % self.threshold.get()]
        self.runEngine(tsId, "segment", args)

    def registerTomogram(self, tsId):
        tomo = self.tomoDict[tsId]
        maskPath, probPath = output_paths(tomo.getFileName(), self.tomoExtra(tsId))
        sources = [self.inputModel] if self.inputModel.get() is not None else []
        threshold = self.getThreshold()
        for name, path, suffix, kind in ((OUT_MASKS, maskPath, "Masks", "binary"),
                                         (OUT_PROBS, probPath, "ProbMaps", "probability")):
            outSet = self.getOrCreateSet(name, SetOfTomoMasks, suffix, template="tomomasks%s.sqlite",
                                         sources=sources)
            item = TomoMask()
            item.copyInfo(tomo)
            item.setFileName(path)
            item.setVolName(tomo.getFileName())
            # record what the map is, so later protocols and users need not guess
            item.membranesegKind = pwobj.String(kind)
            item.membranesegThreshold = pwobj.Float(threshold)
            self.appendItem(outSet, item)

    # ------------------------------------------------------------------ model
    def getModelPath(self):
        model = self.inputModel.get()
        return model.getPath() if model is not None else Plugin.getDefaultModel()

    def getOverlapTta(self):
        """The window overlap (fraction) and whether flip test-time augmentation is on, as the mode sets them."""
        mode = MODE_CHOICES[self.mode.get()]
        if mode == "custom":
            return self.overlap.get(), bool(self.tta.get())
        return MODES[mode]

    def getThreshold(self):
        if not self.useModelThreshold.get():
            return self.threshold.get()
        return modelfile.read_card(self.getModelPath()).threshold

    # ------------------------------------------------------------------ info
    def workingPixelSize(self, card, rate):
        """The pixel size the engine segments tomograms of ``rate`` Å/px at."""
        return working_pixel_size(card, rate, self.maxUpsampling.get())

    def _validate(self):
        errors = list(Plugin.validateInstallation())
        if self.maxUpsampling.get() is not None and self.maxUpsampling.get() < 1:
            errors.append("The largest upsampling must be 1 (never upsample) or more.")
        try:
            if not all(float(f) > 0 for f in self.scales.get("").split()):
                raise ValueError
        except ValueError:
            errors.append("Test-time scales must be factors over 0, separated by spaces, not %r."
                          % self.scales.get())
        tomos = self.getInputSet()
        if tomos is not None and tomos.getSize() == 0:
            errors.append("The input set of tomograms is empty.")
        try:
            card = modelfile.read_card(self.getModelPath())
        except modelfile.ModelError as exc:
            errors.append(str(exc))
            return errors
        if tomos is not None and tomos.getSamplingRate() and card.pixel_size:
            ratio = tomos.getSamplingRate() / self.workingPixelSize(card, tomos.getSamplingRate())
            if ratio > 8 or ratio < 1 / 8:
                errors.append("The tomograms are at %.2f Å/px and the model at %.2f Å/px: resampling by %.2fx "
                              "would lose the membranes or waste hours. Bin the tomograms (preprocess protocol) "
                              "or use a model trained nearer their pixel size."
                              % (tomos.getSamplingRate(), card.pixel_size, ratio))
        return errors

    def _warnings(self):
        tomos = self.getInputSet()
        try:
            card = modelfile.read_card(self.getModelPath())
        except modelfile.ModelError:
            return []
        if tomos is None or not card.pixel_size:
            return []
        rate = tomos.getSamplingRate()
        work = self.workingPixelSize(card, rate)
        if not 0.5 <= rate / work <= 2:
            return ["The tomograms (%.2f Å/px) will be resampled by %.2fx to %.2f Å/px for the model."
                    % (rate, rate / work, work)]
        if work > card.pixel_size:
            return ["The tomograms (%.2f Å/px) are coarser than the model (%.2f Å/px): they are segmented at %.2f "
                    "Å/px (see Largest upsampling)." % (rate, card.pixel_size, work)]
        return []

    def _summary(self):
        summary = []
        masks, failed = getattr(self, OUT_MASKS, None), getattr(self, OUT_FAILED, None)
        if masks is not None:
            summary.append("%d tomograms segmented." % masks.getSize())
        if failed is not None:
            summary.append("%d tomograms failed (see %s and the log for the reasons)." % (failed.getSize(),
                                                                                          OUT_FAILED))
        model = self.inputModel.get()
        summary.append("Model: %s" % (model if model is not None else "the model shipped with the plugin"))
        overlap, tta = self.getOverlapTta()
        summary.append("Threshold: %s; mode %s (window overlap %.3f, test-time flips %s); precision %s." % (
            "model's calibrated" if self.useModelThreshold.get() else "%.3f" % self.threshold.get(),
            MODE_CHOICES[self.mode.get()], overlap, "on" if tta else "off", PRECISIONS[self.precision.get()]))
        summary.append("Contrast polarity: %s." % {"auto": "measured per tomogram (see each job's log)",
                                                   "dark": "matter dark", "bright": "matter bright (inverted)"}[
                                                       POLARITY_CHOICES[self.polarity.get()]])
        summary.append("Test-time scales: %s." % (self.scales.get() or "as the model's card says"))
        return summary

    def _methods(self):
        tomos = self.getInputSet()
        n = tomos.getSize() if tomos is not None else 0
        return ["Membranes were segmented in %d tomograms with the hybrid CNN-LSTM network of Morales-Martinez "
                "et al. [MoralesMartinez2025] (scipion-em-membraneseg), with %.1f%% window overlap, test-time "
                "flips %s and a probability threshold of %.3f." % (n, 100 * self.getOverlapTta()[0],
                                                                   "on" if self.getOverlapTta()[1] else "off",
                                                                   self.getThreshold())]

    def _citations(self):
        return ["MoralesMartinez2025"]
