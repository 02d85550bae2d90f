"""Protocol "find vesicles": membrane masks (or probability maps) in; per vesicle a 3D coordinate with its radius
and confidence, a label map with one label per vesicle, and a CSV table out.

The engine's ``vesicles`` command does the work, one tomogram per step, on the CPU, and draws the picture the
viewer shows (vesicles over three slices of the tomogram, a histogram of diameters).
"""
import json

import pyworkflow.object as pwobj
from pyworkflow import BETA
from pyworkflow.protocol import params
from pyworkflow.utils import Message
from tomo import constants as tomoConst
from tomo.objects import Coordinate3D, SetOfCoordinates3D, SetOfTomoMasks, TomoMask

from ..constants import OUT_FAILED, OUT_VESICLE_COORDS, OUT_VESICLE_LABELS
from ..engine.vesicles import files, find
from .base import ProtMembraneSegPerTomo
from .protocol_clean import itemKind, itemThreshold

DEFAULTS = find.Search()


class ProtMembraneSegVesicles(ProtMembraneSegPerTomo):
    """Find the vesicles in membrane masks: how many, where, how large.

    A vesicle is a closed, roughly spherical or ellipsoidal membrane compartment within a size range. It is found
    as rings of membrane around a lumen in each z-slice, chained across z and fitted with a sphere or an
    ellipsoid, so the missing wedge, which erases its top and bottom, does not hide it; nested and touching
    vesicles stay apart. Each gets a coordinate (for subtomogram extraction) with its radius, diameter,
    completeness (the fraction of its fitted surface that has membrane) and confidence; a label map numbers their
    membranes; a CSV table per tomogram lists them. CPU only, seconds per tomogram.
    """
    _label = "find vesicles"
    _devStatus = BETA
    _possibleOutputs = {OUT_VESICLE_COORDS: SetOfCoordinates3D, OUT_VESICLE_LABELS: SetOfTomoMasks}
    inputAttr = "inputMasks"

    def _defineParams(self, form):
        form.addSection(label=Message.LABEL_INPUT)
        form.addParam("inputMasks", params.PointerParam, pointerClass="SetOfTomoMasks", important=True,
                      label="Membrane masks or probability maps",
                      help="The tomoMasks or tomoProbMaps of 'segment membranes', the masks of 'threshold and "
                           "clean masks', or membrane masks from another tool. Closing small gaps in the masks "
                           "first ('threshold and clean masks') helps where membranes are broken.")
        form.addParam("inputTomograms", params.PointerParam, pointerClass="SetOfTomograms", important=True,
                      label="Tomograms",
                      help="The tomograms the masks belong to (matched by tilt-series id): the coordinates refer to "
                           "them, and the pictures show them.")
        form.addParam("useMapThreshold", params.BooleanParam, default=True,
                      label="Use each map's own threshold?",
                      help="For probability maps made by 'segment membranes': threshold each at the value it was "
                           "segmented with. Say No to set one below. Masks are used as they are.")
        form.addParam("threshold", params.FloatParam, default=0.5, condition="not useMapThreshold",
                      validators=[params.Range(0.0, 1.0)], label="Probability threshold (0-1)",
                      help="Voxels with a membrane probability at or above this value are membrane.")
        form.addSection(label="Vesicles")
        form.addParam("minDiameter", params.FloatParam, default=DEFAULTS.min_diameter, validators=[params.GT(0)],
                      label="Smallest diameter (nm)",
                      help="Outer diameter at the middle of the membrane, in nm. Synaptic vesicles are about "
                           "35-50 nm across; rings smaller than this are left out.")
        form.addParam("maxDiameter", params.FloatParam, default=DEFAULTS.max_diameter, validators=[params.GT(0)],
                      label="Largest diameter (nm)",
                      help="Closed compartments larger than this (organelles, cells, large endosomes) are not "
                           "vesicles. Raise it to include large vesicles.")
        form.addParam("minCompleteness", params.FloatParam, default=DEFAULTS.min_completeness,
                      validators=[params.Range(0.0, 1.0)], label="Smallest completeness (0-1)",
                      help="Fraction of the fitted surface that must have membrane on it. The missing wedge "
                           "erases the top and bottom of every vesicle, leaving about 0.5-0.8 of a whole one; "
                           "lower it for broken masks, raise it to keep only clear vesicles.")
        form.addParam("boxSize", params.IntParam, default=0, validators=[params.GE(0)],
                      expertLevel=params.LEVEL_ADVANCED, label="Box size (px)",
                      help="Box size recorded with the coordinates, for subtomogram extraction, in pixels of the "
                           "tomograms. 0: the largest diameter plus 20 %.")
        form.addParallelSection(threads=1, mpi=0)

    # ------------------------------------------------------------------ steps
    def getThreshold(self, item):
        if itemKind(item) in ("binary", "labels"):
            return None
        if self.useMapThreshold.get() and itemThreshold(item) is not None:
            return itemThreshold(item)
        return self.threshold.get()

    def _initialize(self):
        """The masks by tsId (tomoDict), and the tomograms they belong to, cloned once per run."""
        super()._initialize()
        self.tomograms = {t.getTsId(): t.clone() for t in self.inputTomograms.get()}

    def processTomogram(self, tsId):
        item = self.tomoDict[tsId]
        tomo = self.tomograms.get(tsId)
        if tomo is None:
            raise Exception("no tomogram with the id %s among the input tomograms" % tsId)
        args = [item.getFileName(), "-o", self.tomoExtra(tsId), "--kind", itemKind(item),
                "--pixel-size", "%.4f" % item.getSamplingRate(), "--min-diameter", "%g" % self.minDiameter.get(),
                "--max-diameter", "%g" % self.maxDiameter.get(),
                "--min-completeness", "%g" % self.minCompleteness.get(),
                "--tomograms", tomo.getFileName(), "--png"]
        if self.getThreshold(item) is not None:
            args += ["--threshold", "%g" % self.getThreshold(item)]
        self.runEngine(tsId, "vesicles", args)

    def registerTomogram(self, tsId):
        item, tomo = self.tomoDict[tsId], self.tomograms[tsId]
        paths = files.output_paths(item.getFileName(), self.tomoExtra(tsId))
        labels = self.getOrCreateSet(OUT_VESICLE_LABELS, SetOfTomoMasks, "Vesicles", template="tomomasks%s.sqlite")
        mask = TomoMask()
        mask.copyInfo(item)
        mask.setFileName(paths["labels"])
        mask.setVolName(tomo.getFileName())
        mask.membranesegKind = pwobj.String("labels")
        self.appendItem(labels, mask)
        coords = self._coordinates()
        for row in files.read_csv(paths["csv"]):
            coord = Coordinate3D()
            coord.setVolume(tomo)
            coord.setTomoId(tsId)
            coord.setPosition(row["x"], row["y"], row["z"], tomoConst.BOTTOM_LEFT_CORNER)
            coord.setBoxSize(coords.getBoxSize())
            coord.setGroupId(row["id"])          # the vesicle's number in the table and the label map
            coord.setScore(row["confidence"])
            coord.membranesegRadiusNm = pwobj.Float(row["radius_nm"])
            coord.membranesegDiameterNm = pwobj.Float(row["diameter_nm"])
            coord.membranesegCompleteness = pwobj.Float(row["completeness"])
            coords.append(coord)
        coords.write()
        self._store(coords)

    # ------------------------------------------------------------------ helpers
    def _coordinates(self):
        coords = getattr(self, OUT_VESICLE_COORDS, None)
        if coords is not None:
            coords.enableAppend()
            return coords
        tomos = self.inputTomograms.get()
        coords = SetOfCoordinates3D.create(self._getPath(), template="coordinates%s.sqlite", suffix="Vesicles")
        coords.setPrecedents(self.inputTomograms)
        coords.setSamplingRate(tomos.getSamplingRate())
        coords.setBoxSize(self.getBoxSize())
        coords.setStreamState(coords.STREAM_OPEN)
        self._defineOutputs(**{OUT_VESICLE_COORDS: coords})
        self._defineSourceRelation(self.inputMasks, coords)
        self._defineSourceRelation(self.inputTomograms, coords)
        return coords

    def getBoxSize(self):
        if self.boxSize.get():
            return self.boxSize.get()
        return int(round(1.2 * self.maxDiameter.get() * 10.0 / self.inputTomograms.get().getSamplingRate()))

    def records(self):
        """{tsId: the engine's JSON record} of the tomograms done so far."""
        if self.tomoDict is None:
            self._initialize()
        out = {}
        for tsId, item in self.tomoDict.items():
            try:
                with open(files.output_paths(item.getFileName(), self.tomoExtra(tsId))["json"]) as f:
                    out[tsId] = json.load(f)
            except (OSError, ValueError):
                continue
        return out

    def pictures(self):
        return [r["outputs"]["png"] for r in self.records().values() if r["outputs"].get("png")]

    # ------------------------------------------------------------------ info
    def _validate(self):
        errors = []
        if self.minDiameter.get() >= self.maxDiameter.get():
            errors.append("The smallest diameter must be below the largest.")
        masks, tomos = self.getInputSet(), self.inputTomograms.get()
        if masks is not None and tomos is not None:
            missing = {m.getTsId() for m in masks} - {t.getTsId() for t in tomos}
            if missing:
                errors.append("No tomogram for the masks %s among the input tomograms." % ", ".join(sorted(missing)))
            if not masks.getSamplingRate():
                errors.append("The masks have no sampling rate, so sizes in nm cannot be measured.")
        return errors

    def _summary(self):
        records = self.records()
        summary = []
        if records:
            diameters = [v["diameter_nm"] for r in records.values() for v in r["vesicles"]]
            summary.append("%d vesicles in %d tomograms%s." % (
                len(diameters), len(records), ", diameter %.1f-%.1f nm (median %.1f)" % (
                    min(diameters), max(diameters), sorted(diameters)[len(diameters) // 2]) if diameters else ""))
        failed = getattr(self, OUT_FAILED, None)
        if failed is not None:
            summary.append("%d tomograms failed (see %s and the log for the reasons)." % (failed.getSize(), OUT_FAILED))
        summary.append("Vesicles of %g-%g nm across, at least %.0f %% complete." % (
            self.minDiameter.get(), self.maxDiameter.get(), 100 * self.minCompleteness.get()))
        return summary

    def _methods(self):
        return ["Vesicles were found in membrane masks with the membraneseg plugin as closed membrane rings in each "
                "z-slice, chained across z and fitted with spheres or ellipsoids (diameters %g-%g nm, at least "
                "%.0f %% of the fitted surface covered by membrane)." % (
                    self.minDiameter.get(), self.maxDiameter.get(), 100 * self.minCompleteness.get())]
