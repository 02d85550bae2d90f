"""Protocol "preprocess tomograms": binning, normalisation, EED denoising and CLAHE, as in section 3 of the paper.

The engine's ``preprocess`` command does the work, one tomogram per step. Binning and EED can be delegated to
IMOD's binvol and Tomo3D's tomoeed where those are installed; otherwise (and by default) the built-in versions run,
and the summary says which ran. Each output tomogram has its recipe beside it (``<stem>_recipe.json``) and on the
item, so that segmentation and training can apply the same preprocessing.
"""
import importlib
import json
import os
import shlex
import shutil

import pyworkflow.object as pwobj
from pyworkflow import BETA
from pyworkflow.protocol import params
from pyworkflow.utils import Message
from tomo.objects import SetOfTomograms, Tomogram

from .. import Plugin
from ..constants import OUT_FAILED, OUT_TOMOS
from ..engine.preprocessing import recipes
from .base import ProtMembraneSegPerTomo, addComputeParams

BIN_NONE, BIN_FACTOR, BIN_PIXEL = 0, 1, 2
BUILT_IN, EXTERNAL = 0, 1
IMOD_HOME_VAR, TOMO3D_HOME_VAR = "IMOD_HOME", "TOMO3D_HOME"   # as the imod and tomo3d plugins name them


# ----------------------------------------------------------------------------- finding IMOD and Tomo3D
def pluginHome(module, variable):
    """The installation folder a Scipion plugin is configured with (scipion.conf or the environment), or the
    environment variable when the plugin is not installed; None when neither says."""
    try:
        home = importlib.import_module(module).Plugin.getHome()
    except Exception:  # plugin absent or broken: fall back to the variable it would read
        home = os.environ.get(variable)
    return home or None


def binvolProgram(home, which=shutil.which):
    """Shell prefix that runs IMOD's binvol: from the IMOD installation in ``home`` (sourcing its IMOD-linux.sh,
    which sets IMOD_DIR), else from PATH; None when neither has it."""
    if home and os.path.isfile(os.path.join(home, "bin", "binvol")):
        setup = os.path.join(home, "IMOD-linux.sh")
        prefix = ". %s && " % shlex.quote(setup) if os.path.isfile(setup) else ""
        return prefix + shlex.quote(os.path.join(home, "bin", "binvol"))
    found = which("binvol")
    return shlex.quote(found) if found else None


def tomoeedProgram(home, which=shutil.which):
    """Shell command that runs Tomo3D's tomoeed: from TOMO3D_HOME, else from PATH; None when absent."""
    if home and os.path.isfile(os.path.join(home, "tomoeed")):
        return shlex.quote(os.path.join(home, "tomoeed"))
    found = which("tomoeed")
    return shlex.quote(found) if found else None


class ProtMembraneSegPreprocess(ProtMembraneSegPerTomo):
    """Prepare tomograms for membrane segmentation as in Morales-Martinez et al. (2025), section 3: bin,
    normalise to mean 0 and standard deviation 1, denoise with 3D edge-enhancing diffusion (EED), and equalise
    the contrast of each z-slice with CLAHE. Every step can be switched off.

    Use the same preprocessing for the tomograms you train on and those you segment: the recipe is stored with
    each output tomogram (<name>_recipe.json) and in models trained on them.
    """
    _label = "preprocess tomograms"
    _devStatus = BETA
    _possibleOutputs = {OUT_TOMOS: SetOfTomograms}

    def _defineParams(self, form):
        form.addSection(label=Message.LABEL_INPUT)
        form.addParam("inputTomograms", params.PointerParam, pointerClass="SetOfTomograms", important=True,
                      label="Tomograms",
                      help="Tomograms to preprocess. Their sampling rate (Å/px) in Scipion is used; MRC header "
                           "values are not trusted.")

        form.addSection(label="Steps")
        group = form.addGroup("Binning")
        group.addParam("binMode", params.EnumParam, choices=["no binning", "by a factor", "to a pixel size"],
                       default=BIN_NONE, display=params.EnumParam.DISPLAY_HLIST, label="Binning",
                       help="Reduce the tomograms before the slower steps. Models work at a few Å to 20 Å per "
                            "pixel; binning to near the model's pixel size saves time in every later step.")
        group.addParam("binFactor", params.IntParam, default=2, condition="binMode == %d" % BIN_FACTOR,
                       validators=[params.GE(1)], label="Binning factor",
                       help="Output voxels are N x N x N input voxels, so the pixel size (Å/px) is multiplied by "
                            "N. Sizes that are not multiples of N lose the remainder, evenly at both ends.")
        group.addParam("binPixelSize", params.FloatParam, default=10.0, condition="binMode == %d" % BIN_PIXEL,
                       validators=[params.GT(0)], label="Target pixel size (Å/px)",
                       help="Bin to this pixel size. A whole multiple of the input pixel size bins by blocks; "
                            "any other ratio resamples. A target finer than the input is not applied.")
        group.addParam("antialias", params.BooleanParam, default=True, condition="binMode != %d" % BIN_NONE,
                       label="Antialias?",
                       help="Yes filters with a Lanczos-3 kernel before reducing, as IMOD's binvol does by "
                            "default, so fine noise does not fold into the binned tomogram. No averages plain "
                            "blocks of voxels.")
        group.addParam("binProgram", params.EnumParam, choices=["built-in", "IMOD binvol"], default=BUILT_IN,
                       condition="binMode != %d" % BIN_NONE, expertLevel=params.LEVEL_ADVANCED,
                       label="Binning program",
                       help="IMOD binvol runs where IMOD is installed (the imod plugin's IMOD_HOME, or on the "
                            "PATH) and the factor is whole; otherwise the built-in binning runs. The summary "
                            "says which ran.")

        group = form.addGroup("Normalisation")
        group.addParam("doNormalize", params.BooleanParam, default=True, label="Normalise intensities?",
                       help="Scale each tomogram to mean 0 and standard deviation 1, computed without the 0.5% "
                            "darkest and brightest voxels so that gold beads and carbon edges do not set the "
                            "scale. Those extremes are clipped.")

        group = form.addGroup("Denoising: edge-enhancing diffusion (EED)")
        group.addParam("doEed", params.BooleanParam, default=True, label="Denoise with EED?",
                       help="3D anisotropic diffusion that smooths along membranes and not across them "
                            "(Fernández & Li 2003; TomoEED, Moreno et al. 2018).")
        group.addParam("eedSigma", params.FloatParam, default=0.5, condition="doEed", validators=[params.GE(0)],
                       label="Gaussian pre-smoothing (voxels)",
                       help="Standard deviation, in voxels, of the Gaussian applied before the gradients that "
                            "steer the diffusion are taken. 0.5-1.0 is advisable; higher values blur thin "
                            "membranes.")
        group.addParam("eedIterations", params.IntParam, default=10, condition="doEed", validators=[params.GE(1)],
                       label="Iterations",
                       help="More iterations smooth more. With the automatic contrast parameter, 10-20 suit.")
        group.addParam("eedStep", params.FloatParam, default=0.1, condition="doEed",
                       validators=[params.Range(0.001, 0.15)], expertLevel=params.LEVEL_ADVANCED,
                       label="Time step (0-0.15)",
                       help="Diffusion time per iteration (dimensionless). 0.15 is the stable maximum: raise it "
                            "and lower the iterations for the same smoothing in less time.")
        group.addParam("eedAutoK", params.BooleanParam, default=True, condition="doEed",
                       expertLevel=params.LEVEL_ADVANCED, label="Automatic contrast parameter K?",
                       help="Yes sets K to the mean gradient of the tomogram, re-estimated every iteration (as "
                            "tomoeed does by default).")
        group.addParam("eedK", params.FloatParam, default=1.0, condition="doEed and not eedAutoK",
                       validators=[params.GT(0)], expertLevel=params.LEVEL_ADVANCED,
                       label="Contrast parameter K (intensity/voxel)",
                       help="Gradients well above K (in intensity units per voxel, of the normalised tomogram "
                            "when normalising) are treated as edges and not smoothed across.")
        group.addParam("eedProgram", params.EnumParam, choices=["built-in", "Tomo3D tomoeed"], default=BUILT_IN,
                       condition="doEed", expertLevel=params.LEVEL_ADVANCED, label="EED program",
                       help="Tomo3D's tomoeed runs where it is installed (the tomo3d plugin's TOMO3D_HOME, or on "
                            "the PATH); otherwise the built-in EED runs. The summary says which ran.")

        group = form.addGroup("Contrast: CLAHE")
        group.addParam("doClahe", params.BooleanParam, default=True, label="Equalise contrast (CLAHE)?",
                       help="Contrast-limited adaptive histogram equalisation of each z-slice (OpenCV), after "
                            "mapping the tomogram's 0.5-99.5 percentile range to 8 bits. The output is in [0, 1].")
        group.addParam("claheBlock", params.IntParam, default=32, condition="doClahe", validators=[params.GE(2)],
                       label="Block size (px)",
                       help="Side of the tiles whose histograms are equalised; the paper uses 32 px.")
        group.addParam("claheClip", params.FloatParam, default=3.0, condition="doClahe",
                       validators=[params.GT(0)], label="Clip limit",
                       help="Higher values boost local contrast and noise; the paper uses 3.0.")

        addComputeParams(form, "Threads the EED and CLAHE of one tomogram use.", gpu=False)
        form.addParallelSection(threads=1, mpi=0)

    # ------------------------------------------------------------------ steps
    def processTomogram(self, tsId):
        tomo = self.tomoDict[tsId]
        args = [tomo.getFileName(), "-o", self.outputPath(tsId), "--pixel-size", "%.4f" % tomo.getSamplingRate(),
                "--volumes-only"]
        args += self.engineOptions(self.externalPrograms())
        self.runEngine(tsId, "preprocess", args)

    def registerTomogram(self, tsId):
        tomo = self.tomoDict[tsId]
        path = self.outputPath(tsId)
        with open(recipes.recipe_path(path)) as f:
            record = json.load(f)
        applied = record.pop("applied")
        outSet = self.getOrCreateSet(OUT_TOMOS, SetOfTomograms, "")
        outSet.setSamplingRate(applied["output_pixel_size"])
        item = Tomogram()
        item.copyInfo(tomo)
        item.setFileName(path)
        item.setSamplingRate(applied["output_pixel_size"])
        if applied.get("bin", {}).get("factor", 1) != 1:
            item.setOrigin()   # the default origin for the new size, as the IMOD plugin does after binning
        item.membranesegRecipe = pwobj.String(json.dumps(record, sort_keys=True))
        item.membranesegPrograms = pwobj.String(programsRan(applied))
        self.appendItem(outSet, item)

    def outputPath(self, tsId):
        stem = os.path.splitext(os.path.basename(self.tomoDict[tsId].getFileName()))[0]
        return self.tomoExtra(tsId, stem + ".mrc")

    # ------------------------------------------------------------------ composing the engine command
    def engineOptions(self, programs):
        """The ``membraneseg preprocess`` options for this form; ``programs`` maps "bin"/"eed" to the external
        programs to delegate to."""
        options = []
        if self.binMode.get() == BIN_FACTOR:
            options += ["--bin", self.binFactor.get()]
        elif self.binMode.get() == BIN_PIXEL:
            options += ["--to-pixel-size", "%g" % self.binPixelSize.get()]
        if self.binMode.get() != BIN_NONE and not self.antialias.get():
            options.append("--no-antialias")
        if not self.doNormalize.get():
            options.append("--no-normalize")
        if self.doEed.get():
            options += ["--eed-sigma", "%g" % self.eedSigma.get(), "--eed-iterations", self.eedIterations.get(),
                        "--eed-step", "%g" % self.eedStep.get()]
            if not self.eedAutoK.get():
                options += ["--eed-k", "%g" % self.eedK.get()]
        else:
            options.append("--no-eed")
        if self.doClahe.get():
            options += ["--clahe-block", self.claheBlock.get(), "--clahe-clip", "%g" % self.claheClip.get()]
        else:
            options.append("--no-clahe")
        for step, option in (("bin", "--bin-program"), ("eed", "--eed-program")):
            if programs.get(step):
                options += [option, programs[step]]
        return [str(o) for o in options]

    def externalPrograms(self):
        """The external programs asked for and found: {"bin": binvol command, "eed": tomoeed command}."""
        programs = {}
        if self.binMode.get() != BIN_NONE and self.binProgram.get() == EXTERNAL:
            programs["bin"] = binvolProgram(pluginHome("imod", IMOD_HOME_VAR))
        if self.doEed.get() and self.eedProgram.get() == EXTERNAL:
            programs["eed"] = tomoeedProgram(pluginHome("tomo3d", TOMO3D_HOME_VAR))
        return {k: v for k, v in programs.items() if v}

    # ------------------------------------------------------------------ info
    def _validate(self):
        errors = list(Plugin.validateInstallation())
        tomos = self.getInputSet()
        if tomos is not None and tomos.getSize() == 0:
            errors.append("The input set of tomograms is empty.")
        if tomos is not None and self.binMode.get() == BIN_PIXEL and not tomos.getSamplingRate():
            errors.append("The tomograms have no sampling rate, so they cannot be binned to a pixel size. Bin by "
                          "a factor, or set the sampling rate when importing them.")
        return errors

    def _warnings(self):
        warnings = []
        found = self.externalPrograms()
        if self.binMode.get() != BIN_NONE and self.binProgram.get() == EXTERNAL and "bin" not in found:
            warnings.append("IMOD's binvol was not found (imod plugin's %s, or PATH): the built-in binning will "
                            "run." % IMOD_HOME_VAR)
        if self.doEed.get() and self.eedProgram.get() == EXTERNAL and "eed" not in found:
            warnings.append("Tomo3D's tomoeed was not found (tomo3d plugin's %s, or PATH): the built-in EED will "
                            "run." % TOMO3D_HOME_VAR)
        return warnings

    def _summary(self):
        summary = []
        tomos, failed = getattr(self, OUT_TOMOS, None), getattr(self, OUT_FAILED, None)
        if tomos is not None:
            summary.append("%d tomograms preprocessed, now at %.3f Å/px."
                           % (tomos.getSize(), tomos.getSamplingRate()))
            ran = sorted({item.membranesegPrograms.get() for item in tomos})
            summary.append("Programs that ran: %s." % " | ".join(ran))
            if self.binMode.get() != BIN_NONE and self.binProgram.get() == EXTERNAL \
                    and any("binning: built-in" in r for r in ran):
                summary.append("IMOD binvol was asked for but was not found (or the factor was not whole).")
            if self.doEed.get() and self.eedProgram.get() == EXTERNAL and any("EED: built-in" in r for r in ran):
                summary.append("Tomo3D tomoeed was asked for but was not found.")
        if failed is not None:
            summary.append("%d tomograms failed (see %s and the log for the reasons)." % (failed.getSize(),
                                                                                          OUT_FAILED))
        summary.append("Steps: %s." % ", ".join(self.stepNames()))
        return summary

    def stepNames(self):
        steps = []
        if self.binMode.get() == BIN_FACTOR:
            steps.append("binning by %d" % self.binFactor.get())
        elif self.binMode.get() == BIN_PIXEL:
            steps.append("binning to %g Å/px" % self.binPixelSize.get())
        if steps:
            steps[-1] += " (%s)" % ("Lanczos-3 antialiasing" if self.antialias.get() else "block averaging")
        if self.doNormalize.get():
            steps.append("robust normalisation to mean 0, standard deviation 1")
        if self.doEed.get():
            steps.append("EED (sigma %g voxels, %d iterations, time step %g, K %s)" % (
                self.eedSigma.get(), self.eedIterations.get(), self.eedStep.get(),
                "automatic" if self.eedAutoK.get() else "%g" % self.eedK.get()))
        if self.doClahe.get():
            steps.append("CLAHE on z-slices (block %d px, clip limit %g)"
                         % (self.claheBlock.get(), self.claheClip.get()))
        return steps or ["none (the tomograms are copied as float32)"]

    def _methods(self):
        tomos = self.getInputSet()
        n = tomos.getSize() if tomos is not None else 0
        return ["%d tomograms were preprocessed as in Morales-Martinez et al. [MoralesMartinez2025] with "
                "scipion-em-membraneseg: %s [%s]." % (n, "; ".join(self.stepNames()), ", ".join(self._citations()))]

    def _citations(self):
        cites = ["MoralesMartinez2025"]
        if self.binMode.get() != BIN_NONE or self.doNormalize.get():
            cites.append("Kremer1996")           # IMOD's binning and normalisation
        if self.doEed.get():
            cites += ["Fernandez2003", "Moreno2018", "Agulleiro2011"]
        if self.doClahe.get():
            cites += ["Zuiderveld1994", "Stimper2019"]
        return cites


def programsRan(applied):
    """'binning: ...; EED: ...' from the engine's record of what ran."""
    parts = []
    if applied.get("bin", {}).get("factor", 1) != 1:
        parts.append("binning: %s" % applied["bin"]["program"])
    if "eed" in applied:
        parts.append("EED: %s" % applied["eed"]["program"])
    return "; ".join(parts) or "built-in only"
