"""Protocol "threshold and clean masks": re-threshold probability maps and clean masks without the network.

The engine's ``clean`` command does the work, one tomogram per step, on the CPU: threshold, optional closing of each
z-slice, removal of small connected pieces, optional one label per piece.
"""
import json

import pyworkflow.object as pwobj
from pyworkflow import BETA
from pyworkflow.protocol import params
from pyworkflow.utils import Message
from tomo.objects import SetOfTomoMasks, TomoMask

from ..constants import OUT_FAILED, OUT_MASKS
from ..engine.measurement import clean
from .base import ProtMembraneSegPerTomo

UNIT_NM3, UNIT_VOXELS = 0, 1


def itemKind(item):
    """What a TomoMask holds as recorded by this plugin's protocols ('probability', 'binary', 'labels'), or
    'auto' for masks from elsewhere (the engine then looks at the values)."""
    kind = getattr(item, "membranesegKind", None)
    return kind.get() if kind is not None and kind.get() else "auto"


def itemThreshold(item):
    threshold = getattr(item, "membranesegThreshold", None)
    return threshold.get() if threshold is not None else None


class ProtMembraneSegClean(ProtMembraneSegPerTomo):
    """Threshold membrane probability maps again and clean the masks, without running the network.

    Give the tomoProbMaps output of "segment membranes" to choose a new threshold, or any set of masks to clean
    them. Small isolated pieces (noise, ice, gold) can be removed by size, gaps closed, and each connected
    membrane given its own label. Cheap and CPU-only.
    """
    _label = "threshold and clean masks"
    _devStatus = BETA
    _possibleOutputs = {OUT_MASKS: SetOfTomoMasks}
    inputAttr = "inputMasks"

    def _defineParams(self, form):
        form.addSection(label=Message.LABEL_INPUT)
        form.addParam("inputMasks", params.PointerParam, pointerClass="SetOfTomoMasks", important=True,
                      label="Probability maps or masks",
                      help="The tomoProbMaps output of 'segment membranes' to re-threshold, or a set of masks "
                           "(tomoMasks) to clean. Each item keeps the tomogram it belongs to.")
        form.addParam("keepThreshold", params.BooleanParam, default=False, label="Keep the segmentation's threshold?",
                      help="Yes reuses the threshold each probability map was made with (only clean). No sets a "
                           "new one below. Masks are not thresholded again either way.")
        form.addParam("threshold", params.FloatParam, default=0.5, condition="not keepThreshold",
                      validators=[params.Range(0.0, 1.0)], label="Probability threshold (0-1)",
                      help="Voxels with a membrane probability at or above this value are membrane. Lower it "
                           "(e.g. 0.3) when membranes are broken or faint ones are missing; raise it (e.g. 0.7) "
                           "when noise or carbon edges come out as membrane. Try a few values: each run takes "
                           "seconds. The 'evaluate segmentation' protocol reports the best one when you have "
                           "reference masks.")

        form.addSection(label="Cleaning")
        form.addParam("minSize", params.FloatParam, default=0.0, validators=[params.GE(0)],
                      label="Remove pieces smaller than",
                      help="Connected pieces (touching by a face, an edge or a corner) smaller than this are "
                           "removed; 0 keeps everything. A small vesicle of 20 nm radius with a 4 nm membrane is "
                           "about 20,000 nm³; noise specks are a few voxels. Start at about 1/10 of the smallest "
                           "structure you want to keep.")
        form.addParam("sizeUnit", params.EnumParam, choices=["nm³", "voxels"], default=UNIT_NM3,
                      display=params.EnumParam.DISPLAY_HLIST, label="Size unit",
                      help="nm³ converts with the tomograms' sampling rate (1 nm³ = 1000 Å³), so the same value "
                           "works at any binning; voxels are taken as they are.")
        form.addParam("doClosing", params.BooleanParam, default=False, label="Close small gaps?",
                      help="Morphological closing (dilate, then erode) of each z-slice: joins membrane pieces "
                           "separated by a gap narrower than the kernel and smooths their outline. The authors' "
                           "notebook uses a 5 x 5 kernel.")
        form.addParam("closingSize", params.IntParam, default=5, condition="doClosing",
                      validators=[params.Range(2, 51)], label="Closing kernel (px)",
                      help="Side, in pixels, of the square kernel. 5 closes gaps up to about 4 px; larger "
                           "kernels also fill the inside of small vesicles.")
        form.addParam("labelInstances", params.BooleanParam, default=False, label="One label per membrane?",
                      help="Yes numbers each connected piece (1, 2, ...) so that every membrane or vesicle can "
                           "be picked or measured on its own; No writes a 0/1 mask.")
        form.addParallelSection(threads=1, mpi=0)

    # ------------------------------------------------------------------ steps
    def _sizeArgs(self):
        if not self.minSize.get():
            return []
        option = "--min-volume" if self.sizeUnit.get() == UNIT_NM3 else "--min-voxels"
        return [option, "%g" % self.minSize.get()]

    def getThreshold(self, item):
        """The threshold applied to ``item`` (None for masks)."""
        if itemKind(item) in ("binary", "labels"):
            return itemThreshold(item)
        if self.keepThreshold.get() and itemThreshold(item) is not None:
            return itemThreshold(item)
        return self.threshold.get()

    def processTomogram(self, tsId):
        item = self.tomoDict[tsId]
        args = [item.getFileName(), "-o", self.tomoExtra(tsId), "--kind", itemKind(item),
                "--pixel-size", "%.4f" % item.getSamplingRate()] + self._sizeArgs()
        if itemKind(item) not in ("binary", "labels"):
            args += ["--threshold", "%g" % self.getThreshold(item)]
        if self.doClosing.get():
            args += ["--closing", self.closingSize.get()]
        if self.labelInstances.get():
            args.append("--labels")
        self.runEngine(tsId, "clean", args)

    def registerTomogram(self, tsId):
        item = self.tomoDict[tsId]
        path = clean.output_path(item.getFileName(), self.tomoExtra(tsId))
        outSet = self.getOrCreateSet(OUT_MASKS, SetOfTomoMasks, "Masks", template="tomomasks%s.sqlite")
        mask = TomoMask()
        mask.copyInfo(item)
        mask.setFileName(path)
        mask.setVolName(item.getVolName())
        mask.membranesegKind = pwobj.String("labels" if self.labelInstances.get() else "binary")
        mask.membranesegThreshold = pwobj.Float(self.getThreshold(item))
        self.appendItem(outSet, mask)

    # ------------------------------------------------------------------ info
    def _validate(self):
        errors = []
        masks = self.getInputSet()
        if masks is not None and masks.getSize() == 0:
            errors.append("The input set is empty.")
        if masks is not None and self.minSize.get() and self.sizeUnit.get() == UNIT_NM3 \
                and not masks.getSamplingRate():
            errors.append("The input set has no sampling rate, so a size in nm³ cannot be converted to voxels. "
                          "Give the size in voxels.")
        return errors

    def _warnings(self):
        masks = self.getInputSet()
        if masks is None or masks.getSize() == 0:
            return []
        if itemKind(masks.getFirstItem()) in ("binary", "labels") and not self.keepThreshold.get():
            return ["The input holds masks, not probability maps: the threshold is not used. Give the "
                    "tomoProbMaps output of 'segment membranes' to re-threshold."]
        return []

    def _summary(self):
        summary = []
        out, failed = getattr(self, OUT_MASKS, None), getattr(self, OUT_FAILED, None)
        if out is not None:
            records = [self._record(item) for item in out]
            kept = sum(r["pieces_kept"] or 0 for r in records if r)
            removed = sum(r["pieces_removed"] for r in records if r)
            summary.append("%d tomograms cleaned: %d pieces kept, %d removed." % (out.getSize(), kept, removed)
                           if self.minSize.get() or self.labelInstances.get()
                           else "%d tomograms thresholded." % out.getSize())
        if failed is not None:
            summary.append("%d tomograms failed (see %s and the log for the reasons)." % (failed.getSize(), OUT_FAILED))
        summary.append("Threshold: %s; minimum size %g %s; closing %s; %s." % (
            "as segmented" if self.keepThreshold.get() else "%.3f" % self.threshold.get(), self.minSize.get(),
            self.getEnumText("sizeUnit"), "%d px" % self.closingSize.get() if self.doClosing.get() else "off",
            "one label per membrane" if self.labelInstances.get() else "0/1 masks"))
        return summary

    @staticmethod
    def _record(item):
        """What the engine did to one tomogram (its JSON record), or None when the file is gone."""
        try:
            with open(clean.record_path(item.getFileName())) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def _methods(self):
        masks = self.getInputSet()
        n = masks.getSize() if masks is not None else 0
        text = "Membrane probability maps of %d tomograms were thresholded" % n
        if not self.keepThreshold.get():
            text += " at %.3f" % self.threshold.get()
        if self.doClosing.get():
            text += ", closed slice by slice with a %d x %d square" % (self.closingSize.get(), self.closingSize.get())
        if self.minSize.get():
            text += ", and connected pieces smaller than %g %s were removed" % (self.minSize.get(),
                                                                                 self.getEnumText("sizeUnit"))
        return [text + " (scipion-em-membraneseg)."]

    def _citations(self):
        return ["MoralesMartinez2025"]
