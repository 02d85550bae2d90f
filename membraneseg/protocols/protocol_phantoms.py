"""Protocol "generate phantoms": synthetic tomograms with exact label maps, to pretrain models and to test the chain.

The engine's ``phantoms`` command makes them all in one run. The tomograms become a SetOfTomograms and the label
maps a SetOfTomoMasks with the same tsIds (each label map's volName is its tomogram), which is how "train membrane
model" pairs them.
"""
import glob
import os

import pyworkflow.object as pwobj
from pwem.protocols import EMProtocol
from pyworkflow import BETA
from pyworkflow.protocol import params
from pyworkflow.utils import Message
from tomo.objects import SetOfTomoMasks, SetOfTomograms, TomoAcquisition, TomoMask, Tomogram

from .. import Plugin
from ..constants import OUT_LABELS, OUT_TOMOS
from .base import runEngineExplained

KINDS = ("cell", "simple", "raw")
KIND_CELL, KIND_RAW = 0, 2
RANDOM = "random"
# raw phantoms: the engine's choices, with "random" first (drawn per phantom)
RAW_CHOICES = {"rawKv": ("--kv", (RANDOM, "300", "200")),
               "rawPhaseFlip": ("--phase-flip", (RANDOM, "yes", "no")),
               "rawReconstruction": ("--reconstruction", (RANDOM, "wbp", "sirt")),
               "rawLook": ("--look", (RANDOM, "raw", "lowpass", "eed", "denoised")),
               "rawPolarity": ("--polarity", (RANDOM, "dark", "bright")),
               "rawContent": ("--content", ("cell", "negatives", "microtubules", "empty")),
               "rawCarbon": ("--carbon", (RANDOM, "yes", "no")),
               "rawContamination": ("--contamination", (RANDOM, "yes", "no"))}
RAW_VALUES = {"rawDefocus": "--defocus", "rawDose": "--dose", "rawThickness": "--thickness",
              "rawIceAbsorption": "--ice-absorption"}
PREFIX = "phantom"
LABELS_SUFFIX = "_labels.mrc"          # the engine writes <name>.mrc and <name>_labels.mrc
LABEL_NAMES = {"cell": "0 background, 1 membrane, 2 vesicle membrane, 3 filament, 4 macromolecule or gold bead",
               "simple": "0 background, 1 membrane",
               "raw": "0 background, 1 membrane, 2 vesicle membrane, 3 filament, 4 macromolecule or gold bead, "
                      "5 carbon film, 6 ice contamination, 7 membrane hidden by the missing wedge"}
PAPER_VOXELS = 250 * 500 * 500         # the paper's phantoms; the simulation of one takes several GB of RAM


class ProtMembraneSegPhantoms(EMProtocol):
    """Generate synthetic tomograms with exact label maps, as the paper does to pretrain its network (section 2.2).

    "cell" phantoms are realistic: membranes of many curvatures, vesicles, filaments and macromolecules, imaged as a
    noisy, misaligned tilt series and reconstructed by weighted back-projection, so the missing wedge is real.
    "raw" phantoms are recorded as a real microscope does (CTF, dose, radiation damage, shot noise, ice thickness)
    and given a look and a contrast polarity, to train and test models for raw tomograms.
    "simple" phantoms are vesicles in noise: quick, for tests. The outputs are the tomograms and their label maps,
    paired by tsId, ready for "train membrane model".
    """
    _label = "generate phantoms"
    _devStatus = BETA
    _possibleOutputs = {OUT_TOMOS: SetOfTomograms, OUT_LABELS: SetOfTomoMasks}

    def _defineParams(self, form):
        form.addSection(label=Message.LABEL_INPUT)
        form.addParam("count", params.IntParam, default=4, validators=[params.GE(1)], label="Number of phantoms",
                      help="Phantoms to generate. Pretraining wants several (the split keeps whole tomograms "
                           "apart: 70% train, 15% validation, 15% test), e.g. 10 or more.")
        form.addParam("kind", params.EnumParam, choices=list(KINDS), default=KIND_CELL,
                      display=params.EnumParam.DISPLAY_HLIST, label="Kind",
                      help="cell: realistic (membranes, vesicles, filaments, macromolecules, gold; tilt series "
                           "and reconstruction), for pretraining. Labels: %s.\nsimple: vesicles in noise, made in "
                           "a blink, for tests and demos. Labels: %s.\nraw: like a raw tomogram from the "
                           "microscope: the CTF, the electron dose and its damage, shot and detector noise, the ice "
                           "thickness, WBP or SIRT-like reconstruction, a look and a polarity; what you leave "
                           "random is drawn per phantom (see the Raw tab). Labels: %s."
                           % (LABEL_NAMES["cell"], LABEL_NAMES["simple"], LABEL_NAMES["raw"]))
        line = form.addLine("Size (voxels)",
                            help="X, Y and Z in voxels. The paper's phantoms are 500 x 500 x 250; 256 x 256 x 128 "
                                 "takes a few seconds each and is plenty for CPU pretraining.")
        line.addParam("sizeX", params.IntParam, default=256, validators=[params.GE(8)], label="X")
        line.addParam("sizeY", params.IntParam, default=256, validators=[params.GE(8)], label="Y")
        line.addParam("sizeZ", params.IntParam, default=128, validators=[params.GE(8)], label="Z")
        form.addParam("voxelSize", params.FloatParam, default=10.0, validators=[params.GT(0)],
                      label="Voxel size (Å)",
                      help="Å per voxel. The paper pretrains at 10 Å; choose the pixel size your model will work "
                           "at (membranes are about 4 nm thick, so a few voxels at 10 Å).")
        form.addParam("seed", params.IntParam, default=0, label="Random seed",
                      help="Phantom i uses seed + i, so the same seed gives the same phantoms. Use another seed "
                           "for independent test phantoms.")
        form.addParam("tiltRange", params.FloatParam, default=60.0, condition="kind != 1",
                      validators=[params.Range(0.0, 90.0)], label="Tilt range (± degrees)",
                      help="The simulated tilt series goes from minus to plus this angle (the paper: 60). A "
                           "smaller range gives a larger missing wedge.")
        form.addParam("tiltStep", params.FloatParam, default=3.0, condition="kind != 1",
                      validators=[params.GT(0)], label="Tilt step (degrees)",
                      help="Degrees between tilts (3 is common; 2 gives more projections and a slower run).")
        form.addParam("snr", params.FloatParam, allowsNull=True, label="Signal-to-noise ratio (optional)",
                      condition="kind != %d" % KIND_RAW,
                      help="A variance ratio, no unit. Empty: random in [1, 2] per phantom for cell phantoms (the "
                           "paper's range, measured on the tilt series), 1.5 for simple ones (membrane signal over "
                           "noise in the volume). Lower values make harder data.")
        self._defineRawParams(form)
        form.addParallelSection(threads=1, mpi=0)

    def _defineRawParams(self, form):
        form.addSection(label="Raw")
        raw = "kind == %d" % KIND_RAW

        def choice(name, label, help):      # one of RAW_CHOICES, "random" (or its first choice) by default
            form.addParam(name, params.EnumParam, choices=list(RAW_CHOICES[name][1]), default=0, condition=raw,
                          label=label, help=help)

        choice("rawKv", "Voltage (kV)", help="Acceleration voltage; random: 300 kV three times in four.")
        form.addParam("rawDefocus", params.FloatParam, allowsNull=True, condition=raw, label="Defocus (µm)",
                      help="Underfocus in µm (-4 and 4 both mean 4 µm underfocus). Empty: random from 1.5 to 6.")
        choice("rawPhaseFlip", "CTF phase flipping", help="Correct each tilt by phase flipping.")
        form.addParam("rawDose", params.FloatParam, allowsNull=True, condition=raw, label="Total dose (e/Å²)",
                      help="Electrons per Å² over the whole tilt series. Empty: random from 60 to 180.")
        form.addParam("rawThickness", params.FloatParam, allowsNull=True, condition=raw,
                      label="Specimen thickness (nm)",
                      help="Ice thickness in nm (thicker ice dims the images, more so at high tilt); the volume's "
                           "Z is this thickness in voxels, at most the size Z. Empty: random from 100 to 300.")
        choice("rawReconstruction", "Reconstruction",
               help="wbp: weighted back-projection with IMOD's radial filter; sirt: a SIRT-like filter of "
                    "10 to 30 iterations (smoother).")
        choice("rawLook", "Look",
               help="raw: as reconstructed; lowpass: Gaussian low-pass to 30-60 Å; eed: edge-enhancing "
                    "diffusion; denoised: as after cryoCARE or IsoNet.")
        choice("rawPolarity", "Polarity",
               help="dark: matter dark, as IMOD writes; bright: inverted, as some pipelines write.")
        choice("rawContent", "Content",
               help="cell: with membranes; negatives: everything but membranes (microtubules, actin, dense "
                    "particles, gold), to test what a model calls membrane where there is none; "
                    "microtubules: a membrane-free crop of several microtubules among particles; empty: "
                    "ice and noise alone.")
        choice("rawCarbon", "Carbon film edge",
               help="A carbon film 10-25 nm thick whose hole edge crosses the field (label 5); random: one "
                    "phantom in four.")
        choice("rawContamination", "Ice contamination",
               help="Ice crystals of 20-80 nm radius on the surfaces of the specimen (label 6); random: one "
                    "phantom in four.")
        form.addParam("rawIceAbsorption", params.FloatParam, allowsNull=True, condition=raw,
                      label="Ice absorption (fraction)",
                      help="Fraction (0 to 0.99) of the electrons that 100 nm of crystalline ice removes by "
                           "diffraction, varied 0.5-1.5 times per crystal: real contamination is darker than "
                           "anything else in a tomogram. Empty or 0: the crystals are phase objects only, as in "
                           "the shipped models' training volumes.")

    # ------------------------------------------------------------------ steps
    def _insertAllSteps(self):
        self._insertFunctionStep(self.generateStep)
        self._insertFunctionStep(self.createOutputStep)

    def getKind(self):
        return KINDS[self.kind.get()]

    def generateStep(self):
        args = ["-o", self._getExtraPath(), "--count", self.count.get(), "--shape", self.sizeZ.get(),
                self.sizeY.get(), self.sizeX.get(), "--voxel-size", "%g" % self.voxelSize.get(), "--seed",
                self.seed.get(), "--kind", self.getKind(), "--prefix", PREFIX]
        if self.getKind() != "simple":
            args += ["--tilt-range", "%g" % self.tiltRange.get(), "--tilt-step", "%g" % self.tiltStep.get()]
        if self.getKind() == "raw":
            args += self.rawArgs()
        if self.snr.get() is not None:
            args += ["--snr", "%g" % self.snr.get()]
        runEngineExplained(self, "phantoms", args, threads=self.numberOfThreads.get())

    def rawArgs(self):
        """The engine options of the Raw tab: those left random are not passed, so the engine draws them."""
        args = []
        for name, (option, choices) in RAW_CHOICES.items():
            value = choices[getattr(self, name).get()]
            if value != RANDOM:
                args += [option, value]
        for name, option in RAW_VALUES.items():
            if getattr(self, name).get() is not None:
                args += [option, "%g" % getattr(self, name).get()]
        return args

    def createOutputStep(self):
        names = sorted(f for f in glob.glob(self._getExtraPath(PREFIX + "_*.mrc")) if not f.endswith(LABELS_SUFFIX))
        if len(names) != self.count.get():
            raise Exception("the engine wrote %d phantoms instead of %d" % (len(names), self.count.get()))
        acquisition = self.acquisition()
        tomos = SetOfTomograms.create(self._getPath(), template="tomograms%s.sqlite")
        tomos.setSamplingRate(self.voxelSize.get())
        tomos.setAcquisition(acquisition)
        labels = SetOfTomoMasks.create(self._getPath(), template="tomomasks%s.sqlite", suffix="Labels")
        labels.copyInfo(tomos)
        for path in names:
            tomo = Tomogram()
            tomo.setFileName(path)
            tomo.setSamplingRate(self.voxelSize.get())
            tomo.setTsId(os.path.basename(path)[:-len(".mrc")])
            tomo.setOrigin()            # the centre, as ImportTomograms does by default
            tomo.setAcquisition(acquisition.clone())
            tomos.append(tomo)
            label = TomoMask()
            label.copyInfo(tomo)
            label.setFileName(path[:-len(".mrc")] + LABELS_SUFFIX)
            label.setVolName(path)
            label.membranesegKind = pwobj.String("labels")
            labels.append(label)
        self._defineOutputs(**{OUT_TOMOS: tomos, OUT_LABELS: labels})
        self._defineSourceRelation(tomos, labels)

    def acquisition(self):
        """The simulated tilt series, as the tomograms' acquisition (simple phantoms have none)."""
        if self.getKind() == "simple":
            return TomoAcquisition()
        return TomoAcquisition(angleMin=-self.tiltRange.get(), angleMax=self.tiltRange.get(),
                               step=self.tiltStep.get())

    # ------------------------------------------------------------------ info
    def _validate(self):
        errors = list(Plugin.validateInstallation())
        if self.snr.get() is not None and self.snr.get() <= 0:
            errors.append("The signal-to-noise ratio must be positive (or empty for the default).")
        if self.rawIceAbsorption.get() is not None and not 0 <= self.rawIceAbsorption.get() < 1:
            errors.append("The ice absorption is a fraction of the electrons, from 0 to 0.99.")
        return errors

    def _warnings(self):
        voxels = self.sizeX.get() * self.sizeY.get() * self.sizeZ.get()
        if self.getKind() != "simple" and voxels > PAPER_VOXELS:
            return ["Each phantom has %.0f million voxels, more than the paper's 500 x 500 x 250: simulating one "
                    "needs several GB of RAM and minutes." % (voxels / 1e6)]
        return []

    def _summary(self):
        tomos = getattr(self, OUT_TOMOS, None)
        if tomos is None:
            return ["%d %s phantoms of %d x %d x %d voxels to generate." % (
                self.count.get(), self.getKind(), self.sizeX.get(), self.sizeY.get(), self.sizeZ.get())]
        return ["%d %s phantoms of %d x %d x %d voxels at %g Å/voxel (seeds %d to %d)." % (
                    tomos.getSize(), self.getKind(), self.sizeX.get(), self.sizeY.get(), self.sizeZ.get(),
                    self.voxelSize.get(), self.seed.get(), self.seed.get() + tomos.getSize() - 1),
                "Labels: %s." % LABEL_NAMES[self.getKind()]]

    def _methods(self):
        how = {"cell": "imaged as a tilt series from -%g° to %g° every %g° and reconstructed by weighted "
                       "back-projection" % (self.tiltRange.get(), self.tiltRange.get(), self.tiltStep.get()),
               "raw": "imaged as a tilt series from -%g° to %g° every %g° with the contrast transfer function, the "
                      "electron dose, radiation damage and shot noise of a real acquisition, and reconstructed"
                      % (self.tiltRange.get(), self.tiltRange.get(), self.tiltStep.get()),
               "simple": "made of vesicles with a double-Gaussian bilayer profile in noise"}[self.getKind()]
        return ["%d synthetic tomograms of %d x %d x %d voxels at %g Å/voxel with exact labels were generated with "
                "scipion-em-membraneseg in the manner of PolNet [MartinezSanchez2024], %s." % (
                    self.count.get(), self.sizeX.get(), self.sizeY.get(), self.sizeZ.get(), self.voxelSize.get(),
                    how)]

    def _citations(self):
        return ["MartinezSanchez2024", "MoralesMartinez2025"]
