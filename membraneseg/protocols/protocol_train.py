"""Protocol "train membrane model": pretrain on tomograms with label maps (phantoms), or fine-tune a model on
annotated tomograms and/or 2D image/mask pairs. One step runs the engine's ``train`` command, which writes the model
folder (weights, card, training_history.json); the output step registers it as a MembraneSegModel.

Continuing an interrupted run reruns the training step on the same folder: the engine finds its checkpoint there
and resumes after the last finished epoch.
"""
import os

from pwem.protocols import EMProtocol
from pyworkflow import BETA
from pyworkflow.protocol import params
from pyworkflow.utils import Message

from .. import Plugin
from ..constants import OUT_MODEL
from ..engine.network import modelfile
from ..engine.training.config import BORDERS, LOSS_TOLERANCE_PX, LOSSES, PRESET_NAMES, QUICK
from ..objects import MembraneSegModel
from .base import addComputeParams, runEngineExplained
from .training_data import dataArgs, folderErrors, folderPairs, labelErrors, pairingErrors, parseLabels


PRESETS = PRESET_NAMES      # the engine's presets, smallest first (named without importing TensorFlow)
DEFAULT_PRESET = PRESETS.index("cpu")
BINARY, MULTICLASS = 0, 1
DEFAULT_PIXEL_SIZE = 10.0    # Å, when neither the tomograms nor a starting model say


class ProtMembraneSegTrain(EMProtocol):
    """Train the hybrid membrane network (Morales-Martinez et al. 2025, section 3.1), or fine-tune a model.

    Pretrain on phantoms ("generate phantoms" gives tomograms and label maps paired by tsId), then fine-tune the
    result on annotated tomograms or on 2D image/mask pairs (the shared real data come as such folders). Patches
    are augmented as in the paper (rotation 0-20°, shifts up to 20%, zoom 0.8-1.2, horizontal flips); Adam, early
    stopping that restores the best weights and reduce-LR-on-plateau. Without separate validation images, whole
    tomograms and whole groups of images are split 70/15/15 into training, validation and test. The probability
    threshold is calibrated on the validation data (best Dice) and stored in the model; "segment membranes" uses
    it unless told otherwise.
    """
    _label = "train membrane model"
    _devStatus = BETA
    _possibleOutputs = {OUT_MODEL: MembraneSegModel}

    def _defineParams(self, form):
        form.addSection(label=Message.LABEL_INPUT)
        form.addParam("inputTomograms", params.PointerParam, pointerClass="SetOfTomograms", allowsNull=True,
                      important=True, label="Tomograms (optional)",
                      help="Training tomograms, e.g. the output of 'generate phantoms'. Their sampling rate "
                           "(Å/px) is used; MRC headers are not trusted. Use the same preprocessing as for the "
                           "tomograms you will segment.")
        form.addParam("inputMasks", params.PointerParam, pointerClass="SetOfTomoMasks", allowsNull=True,
                      label="Their label maps",
                      help="One per tomogram, with the same tsId, size and sampling rate: the 'labels' of "
                           "'generate phantoms', or masks drawn elsewhere. 0 is background; which other values "
                           "are membrane is set under Network.")
        form.addParam("imagesFolder", params.PathParam, label="2D images folder (optional)",
                      help="A folder of 2D slices (TIFF, PNG, MRC) to train on, alone or with the tomograms.")
        form.addParam("masksFolder", params.PathParam, condition="imagesFolder", label="2D masks folder",
                      help="Masks with the same file names as the images (extensions may differ): 0/1, 0/255 or "
                           "soft 0-255 (membrane above 127). Images without a mask are left out.")
        form.addParam("groupsFile", params.PathParam, condition="imagesFolder", label="Groups of the 2D images (CSV)",
                      help="Optional CSV naming each image's group, i.e. the field of view it comes from (columns "
                           "'group' and one of image, file, name, id, image_png), such as the shared data's "
                           "manifest.csv. Copies of one field of view never sit on both sides of the split. "
                           "Empty: the whole folder is one group.")
        form.addParam("imagesPixelSize", params.FloatParam, allowsNull=True, condition="imagesFolder",
                      label="2D images' pixel size (Å/px)",
                      help="Empty: the images are taken to be at the model's pixel size.")
        form.addParam("valImagesFolder", params.PathParam, condition="imagesFolder",
                      expertLevel=params.LEVEL_ADVANCED, label="Validation images folder (optional)",
                      help="Separate 2D images to validate on (and to calibrate the threshold). Then nothing is "
                           "split: all tomograms and training images train.")
        form.addParam("valMasksFolder", params.PathParam, condition="valImagesFolder",
                      expertLevel=params.LEVEL_ADVANCED, label="Validation masks folder",
                      help="Masks of the validation images, with the same file names.")
        form.addParam("syntheticPairs", params.PointerParam, pointerClass="MembraneSegPairs", allowsNull=True,
                      label="Synthetic pairs (optional)",
                      help="Image/mask pairs made by 'generate synthetic pairs' (a mask-to-image GAN, as in the "
                           "paper's Appendix B). They only ever train, never validate, so the threshold and the "
                           "validation figures stay on real data.")
        form.addParam("syntheticFraction", params.FloatParam, default=0.3, validators=[params.Range(0.0, 1.0)],
                      condition="syntheticPairs", label="Fraction of patches from synthetic pairs (0-1)",
                      help="The share of training patches cut from the synthetic pairs, whatever their number: "
                           "0.3 means 3 patches in 10. The rest come from the real data.")
        form.addParam("inputModel", params.PointerParam, pointerClass="MembraneSegModel", allowsNull=True,
                      label="Starting model (fine-tuning, optional)",
                      help="A model from this protocol or 'import membrane model' to fine-tune. Its preset, "
                           "z-context (slices and step) and classes are kept (the Network settings are then "
                           "ignored), and so is its pixel size unless you set one.")

        form.addSection(label="Network")
        form.addParam("preset", params.EnumParam, choices=list(PRESETS), default=DEFAULT_PRESET,
                      label="Network size (preset)",
                      help="The paper's network with fewer filters: tiny (0.4 M parameters, for tests), cpu-small "
                           "(1.6 M), cpu-fine (1.6 M, cpu-small with at least 16 filters per layer: the default "
                           "model's), cpu (6 M), cpu-large (25 M) and paper (400 M, GPU only).")
        form.addParam("context", params.IntParam, default=1, validators=[params.GE(1)],
                      label="Z-slices per input (2.5D context)",
                      help="1: each slice alone. An odd number k (3 or 5): the slice and its neighbours, joined by "
                           "a bidirectional LSTM as in the paper. 2D images have no neighbours; a 2.5D model also "
                           "learns to work without them (see Context dropout).")
        form.addParam("contextStep", params.IntParam, default=1, validators=[params.GE(1)],
                      condition="context > 1", label="Step between z-slices (slices)",
                      help="Slices, at the model's pixel size, between the z-slices of a 2.5D input. 1: adjacent "
                           "slices. Farther apart (8 at 10 Å/px: 80 Å), the model can see whether a line runs on "
                           "through z, as an edge-on membrane does and a filament lying in the slice does not.")
        form.addParam("classesMode", params.EnumParam, choices=["binary membrane mask", "multi-class label map"],
                      default=BINARY, display=params.EnumParam.DISPLAY_HLIST, label="Output",
                      help="binary: membrane or not (sigmoid, BCE). multi-class: one class per label value of the "
                           "label maps, counted from them (softmax, CCE); 2D masks count as class 1.")
        form.addParam("ignoreLabel", params.IntParam, allowsNull=True, label="Label value 'not annotated'",
                      help="For label maps annotated in part: the value that marks voxels nobody annotated "
                           "(MemBrain-seg's maps use 2). Those voxels never reach the loss or the validation "
                           "figures. Empty (default): every voxel of a label map is annotated.")
        form.addParam("annotatedSlices", params.StringParam, default="", label="Annotated slices",
                      help="For tomograms annotated on a few z-slices only: 'auto' (the slices with any label "
                           "other than background count as annotated) or their z indices, from 0, separated by "
                           "spaces (e.g. 40 80 120). The other slices never reach the loss. Empty (default): "
                           "every slice is annotated, so a blank slice teaches 'no membrane here'.")
        form.addParam("membraneLabels", params.StringParam, default="1 2", condition="classesMode == %d" % BINARY,
                      label="Label values that are membrane",
                      help="In binary mode, the label map values that count as membrane, separated by spaces. "
                           "Phantoms: 1 membrane, 2 vesicle membrane (3 filament and 4 macromolecule are not "
                           "membrane). Masks of 0/1 need no change.")
        form.addParam("pixelSize", params.FloatParam, allowsNull=True, label="Model pixel size (Å/px)",
                      help="The pixel size the model works at; inputs are resampled to it. Empty: the starting "
                           "model's, else the tomograms' sampling rate, else %g Å. The paper pretrains at 10 Å."
                           % DEFAULT_PIXEL_SIZE)
        form.addParam("patchSize", params.IntParam, default=224, validators=[params.GE(64)],
                      expertLevel=params.LEVEL_ADVANCED, label="Patch size (px)",
                      help="Square patches the network trains on (the paper: 224). Smaller patches train faster "
                           "but see less context.")

        form.addSection(label="Training")
        form.addParam("quick", params.BooleanParam, default=False, label="Quick fine-tuning on a few slices?",
                      help="Yes: fine-tune the starting model (if none is given, a shipped one: the tomogram model "
                           "for tomograms, the slice model for 2D images) with settings sized for a few annotated "
                           "slices: %d epochs of %d batches at learning rate %g, the %s "
                           "loss, turns by 90°, no intensity or style augmentation (the slices come from the "
                           "data to segment); about 5-8 minutes on 2 CPU cores. The job's log says what was "
                           "chosen. No: set the training below yourself."
                           % (QUICK["epochs"], QUICK["steps_per_epoch"], QUICK["learning_rate"], QUICK["loss"]))
        form.addParam("epochs", params.IntParam, condition="not quick",
                      default=20, validators=[params.GE(1)], label="Maximum epochs",
                      help="Early stopping usually ends sooner. The paper: 50 epochs on a GPU.")
        form.addParam("stepsPerEpoch", params.IntParam, condition="not quick",
                      default=50, validators=[params.GE(1)],
                      label="Batches per epoch",
                      help="Random augmented batches drawn per epoch. Epoch time grows with it.")
        form.addParam("batchSize", params.IntParam, default=8, validators=[params.GE(1)], label="Batch size",
                      help="Patches per batch. 8 suits a CPU; the paper used 32 on a GPU.")
        form.addParam("learningRate", params.FloatParam, condition="not quick",
                      default=1e-3, validators=[params.GT(0)],
                      label="Learning rate",
                      help="Adam's initial learning rate; it is halved when the validation loss stalls. 1e-3 to "
                           "train from scratch; 1e-4 is gentler for fine-tuning.")
        form.addParam("loss", params.EnumParam, condition="not quick",
                      choices=["cross-entropy", "Dice", "focal", "cross-entropy + Dice",
                               "cross-entropy + Dice + tolerant Dice"],
                      default=0, label="Loss",
                      help="cross-entropy: BCE (binary) or CCE (multi-class), the paper's choice. Dice and focal "
                           "suit thin membranes that cover few pixels. Tolerant Dice also counts a membrane "
                           "predicted within %d pixels of the annotation as found, so it rewards finding every "
                           "membrane over tracing each one to the pixel." % LOSS_TOLERANCE_PX)
        form.addParam("patience", params.IntParam, condition="not quick",
                      default=6, validators=[params.GE(1)],
                      label="Early-stopping patience (epochs)",
                      help="Stop after this many epochs without a better validation loss, and keep the best "
                           "weights.")
        form.addParam("contextDropout", params.FloatParam, default=0.5, validators=[params.Range(0.0, 1.0)],
                      expertLevel=params.LEVEL_ADVANCED, label="Context dropout (0-1)",
                      help="2.5D models: the fraction of tomogram patches trained with their slice repeated "
                           "instead of their neighbours, as 2D images are. 0 if the model will only see tomograms; "
                           "keep 0.5 if it must also work on 2D images.")
        form.addParam("augment", params.BooleanParam, default=True, expertLevel=params.LEVEL_ADVANCED,
                      label="Augment?", help="The paper's augmentation (see the protocol help). Say No only to "
                                             "compare.")
        form.addParam("rot90", params.BooleanParam, default=False, expertLevel=params.LEVEL_ADVANCED,
                      condition="augment", label="Also turn by 90°?",
                      help="Also turn patches by random multiples of 90 degrees (the default model's recipe; not "
                           "the paper's). Membranes have no preferred direction in a slice.")
        form.addParam("intensityAugment", params.FloatParam, default=0.0, validators=[params.Range(0.0, 2.0)],
                      expertLevel=params.LEVEL_ADVANCED, condition="augment",
                      label="Intensity augmentation (0-2)",
                      help="Strength of random contrast, brightness, blur and noise, in standard deviations of "
                           "the normalised image (0: off, as in the paper; 1: the default model's recipe). Helps "
                           "a model meant for tomograms from other microscopes or labs.")
        form.addParam("styleAugment", params.FloatParam, default=0.0, validators=[params.Range(0.0, 2.0)],
                      expertLevel=params.LEVEL_ADVANCED, condition="augment", label="Style augmentation (0-2)",
                      help="Strength of random changes of look: an uneven background (in standard deviations of "
                           "the normalised image), a tone curve, sharpening or smoothing. 0: off.")
        form.addParam("invertAugment", params.FloatParam, default=0.0, validators=[params.Range(0.0, 1.0)],
                      expertLevel=params.LEVEL_ADVANCED, condition="augment",
                      label="Contrast inversion (probability 0-1)",
                      help="Probability that a training patch has its contrast inverted, so that the model works on "
                           "tomograms with dark density (IMOD) and with bright density (some other pipelines). 0: "
                           "off; 0.5: both polarities equally.")
        form.addParam("border", params.EnumParam, choices=BORDERS, default=0, expertLevel=params.LEVEL_ADVANCED,
                      label="Beyond the image edge",
                      help="What a training patch shows where it reaches past the edge of an image: the image "
                           "mirrored (default), or its edge pixels repeated, which smears them into stripes. On "
                           "small 2D slices, where much of a patch lies outside, mirroring fits better.")
        form.addParam("seed", params.IntParam, default=0, expertLevel=params.LEVEL_ADVANCED, label="Random seed",
                      help="Fixes the split, the patches and the initial weights.")
        addComputeParams(form, "Threads TensorFlow uses when training on the CPU; the number of cores you can "
                               "spare.")

    # ------------------------------------------------------------------ steps
    def _insertAllSteps(self):
        self._insertFunctionStep(self.trainStep, needsGPU=True)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def modelDir(self):
        return self._getExtraPath("model")

    def trainStep(self):
        # The model folder is not cleaned: when a run is continued, its checkpoint lets the engine resume.
        runEngineExplained(self, "train", self.engineArgs(), useGpu=self.useGpu.get(), threads=self.binThreads.get())

    def engineArgs(self):
        """The ``membraneseg train`` options for this form."""
        args = ["-o", self.modelDir(), "--name", "%s (run %s)" % (self.getRunName(), self.getObjId())]
        args += dataArgs(self)
        if self.imagesFolder.get():
            if self.groupsFile.get():
                args += ["--groups", self.groupsFile.get()]
            if self.valImagesFolder.get():
                args += ["--val-images", self.valImagesFolder.get(), "--val-masks", self.valMasksFolder.get()]
        pairs = self.syntheticPairs.get()
        if pairs is not None:
            args += ["--synthetic-images", pairs.getImagesFolder(), "--synthetic-masks", pairs.getMasksFolder(),
                     "--synthetic-fraction", "%g" % self.syntheticFraction.get()]
            if pairs.getPixelSize():
                args += ["--synthetic-pixel-size", "%g" % pairs.getPixelSize()]
        model = self.inputModel.get()
        if model is not None:
            args += ["--start-model", os.path.abspath(model.getPath())]
        else:
            args += ["--preset", PRESETS[self.preset.get()], "--context", self.context.get(),
                     "--context-step", self.contextStep.get(),
                     "--classes", 1 if self.classesMode.get() == BINARY else 0]
        if self.classesMode.get() == BINARY:
            args += ["--membrane-labels"] + parseLabels(self.membraneLabels.get())
        if self.ignoreLabel.get() is not None:
            args += ["--ignore-label", self.ignoreLabel.get()]
        if self.annotatedSlices.get().strip():
            args += ["--annotated-slices"] + self.annotatedSlices.get().replace(",", " ").split()
        pixelSize = self.modelPixelSize()
        if pixelSize:
            args += ["--pixel-size", "%.4f" % pixelSize]
        args += ["--patch", self.patchSize.get(), "--batch-size", self.batchSize.get(), "--seed", self.seed.get(),
                 "--context-dropout", "%g" % self.contextDropout.get()]
        if self.quick.get():
            args += ["--quick", "--invert-augment", "%g" % self.invertAugment.get()]
        else:
            args += ["--epochs", self.epochs.get(), "--steps", self.stepsPerEpoch.get(), "--learning-rate",
                     "%g" % self.learningRate.get(), "--loss", LOSSES[self.loss.get()], "--patience",
                     self.patience.get()]
        if not self.augment.get():
            args.append("--no-augment")
        elif not self.quick.get():
            args += ["--intensity-augment", "%g" % self.intensityAugment.get(),
                     "--style-augment", "%g" % self.styleAugment.get(),
                     "--invert-augment", "%g" % self.invertAugment.get()] + (["--rot90"] if self.rot90.get() else [])
        args += ["--border", BORDERS[self.border.get()]]
        return args

    def modelPixelSize(self):
        """The pixel size asked for; else None when fine-tuning (the engine keeps the starting model's); else the
        tomograms' sampling rate, else the default."""
        if self.pixelSize.get():
            return self.pixelSize.get()
        if self.inputModel.get() is not None:
            return None
        tomos = self.inputTomograms.get()
        return tomos.getSamplingRate() if tomos is not None else DEFAULT_PIXEL_SIZE

    def createOutputStep(self):
        model = MembraneSegModel(path=self.modelDir())
        self._defineOutputs(**{OUT_MODEL: model})
        for pointer in (self.inputTomograms, self.inputMasks, self.inputModel, self.syntheticPairs):
            if pointer.get() is not None:
                self._defineSourceRelation(pointer, model)

    # ------------------------------------------------------------------ info
    def _validate(self):
        errors = list(Plugin.validateInstallation())
        tomos, images = self.inputTomograms.get(), self.imagesFolder.get()
        if tomos is None and not images:
            errors.append("Nothing to train on: give tomograms with their label maps, a folder of 2D images with "
                          "their masks, or both.")
        if tomos is not None:
            errors += pairingErrors(tomos, self.inputMasks.get())
        errors += folderErrors(images, self.masksFolder.get(), "2D")
        errors += folderErrors(self.valImagesFolder.get(), self.valMasksFolder.get(), "validation")
        if images and self.groupsFile.get() and not os.path.isfile(self.groupsFile.get()):
            errors.append("The groups file %s does not exist." % self.groupsFile.get())
        if self.context.get() % 2 == 0:
            errors.append("The z-context must be 1 or an odd number of slices (3, 5...), not %d."
                          % self.context.get())
        if self.classesMode.get() == BINARY:
            errors += labelErrors(self.membraneLabels.get())
        slices = self.annotatedSlices.get().strip()
        if slices and slices != "auto" and not all(v.isdigit() for v in slices.replace(",", " ").split()):
            errors.append("Annotated slices must be 'auto' or z indices separated by spaces, not '%s'." % slices)
        model = self.inputModel.get()
        if model is not None:
            try:
                modelfile.read_card(model.getPath())
            except modelfile.ModelError as exc:
                errors.append(str(exc))
        return errors

    def _warnings(self):
        warnings = []
        images, masks = self.imagesFolder.get(), self.masksFolder.get()
        if images and masks and os.path.isdir(images) and os.path.isdir(masks):
            unlabelled = folderPairs(images, masks)[1]
            if unlabelled:
                warnings.append("%d images in %s have no mask (e.g. %s) and will be left out."
                                % (len(unlabelled), images, unlabelled[0]))
            if not self.groupsFile.get():
                warnings.append("No groups file: all 2D images are one group, which the 70/15/15 split puts "
                                "whole on one side (training, validation or test), or which also validates when "
                                "there are fewer than 3 groups. If the images come from several fields of view, "
                                "give their groups.")
        if images and self.classesMode.get() == MULTICLASS:
            warnings.append("2D masks are binary: in a multi-class model they only teach class 1.")
        return warnings

    def _summary(self):
        model = getattr(self, OUT_MODEL, None)
        if model is None:
            return ["Training (a continued run resumes from its last finished epoch)."]
        card = model.getCard()
        prov = card["provenance"]
        summary = ["%s" % model,
                   "%d epochs run%s in %.0f s; threshold %.3f calibrated on validation (Dice %.3f)." % (
                       prov["epochs_run"], " (resumed after epoch %d)" % prov["resumed_after_epoch"]
                       if prov.get("resumed_after_epoch") else "", prov["seconds"], card["threshold"],
                       prov["validation_dice"])]
        if prov.get("annotated") and (self.ignoreLabel.get() is not None or self.annotatedSlices.get().strip()):
            summary.append("Trained on %d annotated slices (%d annotated voxels)." % (
                prov["annotated"]["slices"], prov["annotated"]["voxels"]))
        if prov.get("test"):
            summary.append("Held-out test split: Dice %.3f, IoU %.3f." % (prov["test"]["dice"], prov["test"]["iou"]))
        if self.inputModel.get() is not None:
            summary.append("Fine-tuned from %s." % self.inputModel.get())
        if self.syntheticPairs.get() is not None:
            summary.append("%.0f%% of the training patches came from %s." % (100 * self.syntheticFraction.get(),
                                                                           self.syntheticPairs.get()))
        return summary

    def _methods(self):
        model = getattr(self, OUT_MODEL, None)
        if model is None:
            return []
        return ["A hybrid CNN-LSTM membrane segmentation network [MoralesMartinez2025] (preset %s, %d z-slice(s), "
                "%.2f Å/px) was %s with scipion-em-membraneseg on %d x %d patches with the paper's augmentation, "
                "Adam, early stopping and learning-rate reduction; the probability threshold (%.3f) was calibrated "
                "on the validation data." % (
                    model.getPreset(), model.getContext(), model.getPixelSize(),
                    "fine-tuned" if self.inputModel.get() is not None else "trained", self.patchSize.get(),
                    self.patchSize.get(), model.getThreshold())]

    def _citations(self):
        return ["MoralesMartinez2025"]
