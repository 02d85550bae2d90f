"""Protocols "train mask-to-image GAN" and "generate synthetic pairs": the paper's Pix2Pix augmentation (Appendix B).

The first trains the GAN on annotated tomograms (paired with their masks by tsId) or on 2D image/mask folders and
registers a MembraneSegGanModel; the second turns masks (annotated ones, or phantom label maps) into new realistic
images and registers the pairs as MembraneSegPairs, which "train membrane model" mixes into its training data.
Each runs one engine command (``membraneseg gan train`` / ``gan generate``).
"""
import json
import os

from pwem.protocols import EMProtocol
from pyworkflow import BETA
from pyworkflow.protocol import params
from pyworkflow.utils import Message

from .. import Plugin
from ..constants import PAIRS_JSON
from ..engine.gan import data as gan_data
from ..objects import MembraneSegGanModel, MembraneSegPairs
from .base import addComputeParams, runEngineExplained
from .training_data import dataArgs, folderErrors, labelErrors, pairingErrors, parseLabels

OUT_GAN = "ganModel"
OUT_PAIRS = "syntheticPairs"


def addMembraneLabels(form, help):
    form.addParam("membraneLabels", params.StringParam, default="1 2", label="Label values that are membrane",
                  help=help + " Values separated by spaces; phantoms: 1 membrane, 2 vesicle membrane. Masks of 0/1 "
                              "need no change.")


class ProtMembraneSegTrainGan(EMProtocol):
    """Train a Pix2Pix GAN that turns a membrane mask into a realistic tomogram slice (Morales-Martinez et al.
    2025, section 2.2 and Appendix B). Its generator is a U-Net from mask to image, its discriminator a PatchGAN
    on mask-image pairs; the generator's loss is adversarial plus L1, the discriminator's binary cross-entropy.
    Each epoch writes a sample grid (mask | generated | real) into the model folder; a continued run resumes
    after its last finished epoch. Use "generate synthetic pairs" with the result."""
    _label = "train mask-to-image GAN"
    _devStatus = BETA
    _possibleOutputs = {OUT_GAN: MembraneSegGanModel}

    def _defineParams(self, form):
        form.addSection(label=Message.LABEL_INPUT)
        form.addParam("inputTomograms", params.PointerParam, pointerClass="SetOfTomograms", allowsNull=True,
                      important=True, label="Annotated tomograms (optional)",
                      help="Tomograms whose membranes are annotated; their z-slices that hold membrane become "
                           "training pairs. Their sampling rate (Å/px) is used.")
        form.addParam("inputMasks", params.PointerParam, pointerClass="SetOfTomoMasks", allowsNull=True,
                      label="Their masks", help="One per tomogram, with the same tsId, size and sampling rate.")
        addMembraneLabels(form, "The mask values that count as membrane.")
        form.addParam("imagesFolder", params.PathParam, label="2D images folder (optional)",
                      help="A folder of annotated 2D slices (TIFF, PNG, MRC), alone or with the tomograms.")
        form.addParam("masksFolder", params.PathParam, condition="imagesFolder", label="2D masks folder",
                      help="Masks with the same file names as the images: 0/1, 0/255 or soft 0-255 (membrane "
                           "above 127).")
        form.addParam("imagesPixelSize", params.FloatParam, allowsNull=True, condition="imagesFolder",
                      label="2D images' pixel size (Å/px)",
                      help="Empty: the same as the tomograms', or the GAN's pixel size.")
        form.addParam("pixelSize", params.FloatParam, allowsNull=True, label="GAN pixel size (Å/px)",
                      help="The pixel size the GAN works at; pairs are resampled to it. Empty: the tomograms' "
                           "sampling rate, else the images' own. Use the pixel size of the model you will train.")

        form.addSection(label="Training")
        form.addParam("size", params.IntParam, default=256, validators=[params.GE(64)], label="Image size (px)",
                      help="Square crops the GAN learns on and generates, in pixels at the GAN's pixel size: at "
                           "least 32, and a multiple of 2^(floor(log2 size) - 2), e.g. 128, 224 (the paper's) or "
                           "256.")
        form.addParam("filters", params.IntParam, default=32, validators=[params.GE(4)],
                      expertLevel=params.LEVEL_ADVANCED, label="Filters in the first layer",
                      help="Width of generator and discriminator (Pix2Pix: 64). 32 trains four times faster on "
                           "a CPU.")
        form.addParam("epochs", params.IntParam, default=100, validators=[params.GE(1)], label="Epochs",
                      help="The paper trains 100 epochs. The sample grids show when the images stop improving.")
        form.addParam("steps", params.IntParam, default=0, validators=[params.GE(0)], label="Batches per epoch",
                      help="0: one pass over the training pairs per epoch.")
        form.addParam("batchSize", params.IntParam, default=4, validators=[params.GE(1)], label="Batch size",
                      help="Crops per batch (Pix2Pix: 1 to 4).")
        form.addParam("learningRate", params.FloatParam, default=2e-4, validators=[params.GT(0)],
                      expertLevel=params.LEVEL_ADVANCED, label="Learning rate",
                      help="Adam's learning rate for both networks (Pix2Pix: 2e-4, beta1 0.5).")
        form.addParam("l1Weight", params.FloatParam, default=100.0, validators=[params.GE(0)],
                      expertLevel=params.LEVEL_ADVANCED, label="L1 weight",
                      help="Weight of the L1 distance to the real image against the adversarial loss "
                           "(Pix2Pix: 100). Higher: closer to the real images, blurrier.")
        form.addParam("seed", params.IntParam, default=0, expertLevel=params.LEVEL_ADVANCED, label="Random seed",
                      help="Fixes the crops and the initial weights.")
        addComputeParams(form, "Threads TensorFlow uses when training on the CPU.")

    def _insertAllSteps(self):
        self._insertFunctionStep(self.trainStep, needsGPU=True)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def ganDir(self):
        return self._getExtraPath("gan")

    def trainStep(self):
        # not cleaned first: a continued run finds its checkpoint in the folder and resumes
        runEngineExplained(self, "gan", self.engineArgs(), useGpu=self.useGpu.get(), threads=self.binThreads.get())

    def engineArgs(self):
        args = ["train", "-o", self.ganDir(), "--size", self.size.get(), "--filters", self.filters.get(),
                "--epochs", self.epochs.get(), "--batch-size", self.batchSize.get(),
                "--learning-rate", "%g" % self.learningRate.get(), "--l1-weight", "%g" % self.l1Weight.get(),
                "--seed", self.seed.get(), "--membrane-labels"] + parseLabels(self.membraneLabels.get())
        if self.steps.get():
            args += ["--steps", self.steps.get()]
        args += dataArgs(self)
        tomos = self.inputTomograms.get()
        pixelSize = self.pixelSize.get() or (tomos.getSamplingRate() if tomos is not None else None)
        if pixelSize:
            args += ["--pixel-size", "%.4f" % pixelSize]
        return args

    def createOutputStep(self):
        gan = MembraneSegGanModel(path=self.ganDir())
        self._defineOutputs(**{OUT_GAN: gan})
        for pointer in (self.inputTomograms, self.inputMasks):
            if pointer.get() is not None:
                self._defineSourceRelation(pointer, gan)

    def _validate(self):
        errors = list(Plugin.validateInstallation())
        tomos, images = self.inputTomograms.get(), self.imagesFolder.get()
        if tomos is None and not images:
            errors.append("Nothing to learn from: give annotated tomograms with their masks, a folder of 2D images "
                          "with their masks, or both.")
        if tomos is not None:
            errors += pairingErrors(tomos, self.inputMasks.get())
        errors += folderErrors(images, self.masksFolder.get(), "2D")
        errors += labelErrors(self.membraneLabels.get())
        try:
            gan_data.generator_depth(self.size.get())
        except ValueError as exc:
            errors.append(str(exc))
        return errors

    def _summary(self):
        gan = getattr(self, OUT_GAN, None)
        if gan is None:
            return ["Training the GAN (a continued run resumes from its last finished epoch)."]
        card = gan.getCard()
        history = card.get("history") or [{}]
        return ["%s" % gan, "Last epoch: generator L1 %s, discriminator loss %s." % (
            history[-1].get("g_l1"), history[-1].get("d_loss"))]

    def _citations(self):
        return ["MoralesMartinez2025", "Isola2017"]


class ProtMembraneSegGeneratePairs(EMProtocol):
    """Generate synthetic image/mask pairs with a mask-to-image GAN: masks are varied by random rotations, flips
    and a Gaussian blur (as in the paper), and the generator draws a realistic slice for each. The pairs feed
    "train membrane model" (its "Synthetic pairs" input), which is most useful with only a few annotated slices.
    The output folder holds images/, masks/, pairs.csv (with each pair's nearest real image when real images are
    given) and grid.png (mask | generated | nearest real)."""
    _label = "generate synthetic pairs"
    _devStatus = BETA
    _possibleOutputs = {OUT_PAIRS: MembraneSegPairs}

    def _defineParams(self, form):
        form.addSection(label=Message.LABEL_INPUT)
        form.addParam("inputGan", params.PointerParam, pointerClass="MembraneSegGanModel", important=True,
                      label="GAN model", help="From 'train mask-to-image GAN'.")
        form.addParam("inputMasks", params.PointerParam, pointerClass="SetOfTomoMasks", allowsNull=True,
                      label="Masks to draw from (optional)",
                      help="Masks or label maps, e.g. the annotations the GAN learnt from, or the label maps of "
                           "'generate phantoms' (new shapes). Their z-slices that hold membrane are used.")
        form.addParam("masksFolder", params.PathParam, label="or a folder of 2D masks",
                      help="2D masks (PNG, TIFF, MRC): 0/1, 0/255 or soft 0-255.")
        addMembraneLabels(form, "The mask or label values that count as membrane.")
        form.addParam("count", params.IntParam, default=200, validators=[params.GE(1)], label="Number of pairs",
                      help="Synthetic pairs to generate.")
        form.addParam("maxAngle", params.FloatParam, default=180.0, validators=[params.Range(0.0, 180.0)],
                      label="Largest rotation of a mask (degrees)",
                      help="Masks are turned by a random angle up to this, in degrees.")
        form.addParam("blurSigma", params.FloatParam, default=1.0, validators=[params.Range(0.0, 2.0)],
                      label="Largest mask blur (px)",
                      help="Standard deviation of the Gaussian blur that reshapes each mask a little (0: none).")
        form.addParam("realImagesFolder", params.PathParam, expertLevel=params.LEVEL_ADVANCED,
                      label="Real images for comparison (optional)",
                      help="A folder of real slices; each generated image is paired with its nearest one in "
                           "pairs.csv and the grid, to show whether the GAN copies its training images. Empty: "
                           "the GAN's own 2D training images, if it had some.")
        form.addParam("seed", params.IntParam, default=0, label="Random seed",
                      help="The same seed, GAN and masks give the same pairs.")
        addComputeParams(form, "Threads TensorFlow uses on the CPU.")

    def _insertAllSteps(self):
        self._insertFunctionStep(self.generateStep, needsGPU=True)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def pairsDir(self):
        return self._getExtraPath("pairs")

    def generateStep(self):
        runEngineExplained(self, "gan", self.engineArgs(), useGpu=self.useGpu.get(), threads=self.binThreads.get())

    def engineArgs(self):
        args = ["generate", os.path.abspath(self.inputGan.get().getPath()), "-o", self.pairsDir(),
                "-n", self.count.get(), "--seed", self.seed.get(), "--max-angle", "%g" % self.maxAngle.get(),
                "--blur-sigma", "%g" % self.blurSigma.get(),
                "--membrane-labels"] + parseLabels(self.membraneLabels.get())
        masks = [m.getFileName() for m in self.inputMasks.get()] if self.inputMasks.get() is not None else []
        if self.masksFolder.get():
            masks.append(self.masksFolder.get())
        args += ["--masks"] + masks
        real = self.realImagesFolder.get() or self._ganTrainingImages()
        if real:
            args += ["--real-images", real]
        return args

    def _ganTrainingImages(self):
        """The 2D images folder the GAN was trained on, when it was trained in this project on one."""
        prot = self.inputGan.getObjValue()   # the protocol whose output the pointer names
        folder = getattr(prot, "imagesFolder", None)
        return folder.get() if folder is not None and folder.get() and os.path.isdir(folder.get()) else None

    def createOutputStep(self):
        with open(os.path.join(self.pairsDir(), PAIRS_JSON)) as f:
            info = json.load(f)
        pairs = MembraneSegPairs(path=self.pairsDir(), count=info["count"], pixelSize=info.get("pixel_size"))
        self._defineOutputs(**{OUT_PAIRS: pairs})
        self._defineSourceRelation(self.inputGan, pairs)
        if self.inputMasks.get() is not None:
            self._defineSourceRelation(self.inputMasks, pairs)

    def _validate(self):
        errors = list(Plugin.validateInstallation())
        if self.inputMasks.get() is None and not self.masksFolder.get():
            errors.append("No masks to draw from: give a set of masks or label maps, or a folder of 2D masks.")
        if self.masksFolder.get() and not os.path.isdir(self.masksFolder.get()):
            errors.append("The masks folder %s does not exist." % self.masksFolder.get())
        if self.inputMasks.get() is not None and self.inputMasks.get().getSize() == 0:
            errors.append("The set of masks is empty.")
        if self.realImagesFolder.get() and not os.path.isdir(self.realImagesFolder.get()):
            errors.append("The real images folder %s does not exist." % self.realImagesFolder.get())
        return errors + labelErrors(self.membraneLabels.get())

    def _summary(self):
        pairs = getattr(self, OUT_PAIRS, None)
        return ["%s, in %s." % (pairs, pairs.getPath())] if pairs is not None else []

    def _citations(self):
        return ["MoralesMartinez2025", "Isola2017"]
