"""Protocol "evaluate segmentation": predicted masks or probability maps against reference masks, by tomogram id.

The engine's ``evaluate`` command computes the metrics of all pairs in one job (pooled values need them all) and
writes extra/evaluation.json; this protocol then draws the plots (extra/metrics.png, extra/pr_curve.png) and a
CSV table, which the evaluation viewer and the summary show.
"""
import csv
import json
import os

from pwem.protocols import EMProtocol
from pyworkflow import BETA
from pyworkflow.protocol import params
from pyworkflow.utils import Message

from ..engine.measurement import evaluate
from .base import runEngineExplained
from .protocol_clean import itemKind, itemThreshold

MODE_3D, MODE_2D = 0, 1
REPORT, PAIRS, TABLE = "evaluation.json", "pairs.json", "metrics.csv"


class ProtMembraneSegEvaluate(EMProtocol):
    """Measure how well predicted membrane masks (or probability maps) agree with reference masks.

    Tomograms are paired by their id (tsId). For each tomogram and pooled over all: accuracy, precision, recall,
    F1, Dice and IoU (section 2.3 of Morales-Martinez et al. 2025), a boundary-tolerant Dice that forgives
    membranes drawn a voxel or two off, and mCov (mean best IoU of each reference membrane piece, as in TARDIS).
    For probability maps, the precision-recall curve and the threshold with the best F1, which you can then
    apply with "threshold and clean masks".
    """
    _label = "evaluate segmentation"
    _devStatus = BETA
    _possibleOutputs = {}

    def _defineParams(self, form):
        form.addSection(label=Message.LABEL_INPUT)
        form.addParam("inputMasks", params.PointerParam, pointerClass="SetOfTomoMasks", important=True,
                      label="Predicted masks or probability maps",
                      help="The output of 'segment membranes' (tomoMasks or tomoProbMaps), of 'threshold and clean "
                           "masks', or of another segmentation tool. Probability maps also give a precision-recall "
                           "curve and the best threshold.")
        form.addParam("referenceMasks", params.PointerParam, pointerClass="SetOfTomoMasks", important=True,
                      label="Reference masks",
                      help="Masks you trust (manual annotation, or a phantom's label map), one per tomogram with "
                           "the same tsId and size as its prediction.")
        form.addParam("referenceLabels", params.StringParam, default="", label="Reference labels that are membrane",
                      help="Label values of the reference that count as membrane, separated by spaces. Leave "
                           "empty to count every non-zero voxel. For label maps of 'generate phantoms' (cell "
                           "kind), '1 2' selects membranes and vesicles and leaves out filaments and particles.")
        form.addParam("useRecordedThreshold", params.BooleanParam, default=True,
                      label="Use each map's own threshold?",
                      help="Probability maps from 'segment membranes' record the threshold their mask was made "
                           "with; Yes evaluates at that one. Say No to set one below. The best threshold is "
                           "reported either way.")
        form.addParam("threshold", params.FloatParam, default=0.5, condition="not useRecordedThreshold",
                      validators=[params.Range(0.0, 1.0)], label="Probability threshold (0-1)",
                      help="Voxels of a probability map at or above this value count as membrane. Not used for "
                           "masks.")
        form.addSection(label="Metrics")
        form.addParam("tolerance", params.FloatParam, default=evaluate.DEFAULT_TOLERANCE,
                      validators=[params.GE(0)], label="Boundary tolerance (voxels)",
                      help="For the tolerant Dice, a predicted membrane voxel counts as right when a reference "
                           "membrane voxel is at most this far, and vice versa. 1-2 voxels forgives the usual "
                           "disagreement on where a thin membrane's edge lies; 0 gives the plain Dice.")
        form.addParam("distanceMode", params.EnumParam, choices=["3D", "2D (each z-slice)"], default=MODE_3D,
                      display=params.EnumParam.DISPLAY_HLIST, label="Distances and pieces in",
                      help="3D for tomograms annotated as volumes. 2D when the reference was drawn slice by "
                           "slice: distances and connected pieces then stay within each z-slice.")
        form.addParam("computeMcov", params.BooleanParam, default=True, expertLevel=params.LEVEL_ADVANCED,
                      label="Compute mCov?",
                      help="mCov needs the connected pieces of both masks: two 32-bit maps, 8 bytes per voxel. "
                           "Say No for very large tomograms if memory is short.")
        form.addParam("allowUnmatched", params.BooleanParam, default=False, expertLevel=params.LEVEL_ADVANCED,
                      label="Skip unmatched tomograms?",
                      help="No (default) refuses to run when a tomogram has a prediction but no reference, or "
                           "the other way round. Yes evaluates only the tomograms present in both sets.")

    # ------------------------------------------------------------------ steps
    def _insertAllSteps(self):
        self._insertFunctionStep(self.evaluateStep)
        self._insertFunctionStep(self.reportStep)

    def _pairs(self):
        """{tsId: (prediction, reference)} for the tomograms in both sets."""
        preds = {m.getTsId(): m.clone() for m in self.inputMasks.get()}
        refs = {m.getTsId(): m.clone() for m in self.referenceMasks.get()}
        return {t: (preds[t], refs[t]) for t in sorted(set(preds) & set(refs))}, set(preds), set(refs)

    def _refLabels(self):
        return [int(v) for v in self.referenceLabels.get("").replace(",", " ").split()]

    def evaluateStep(self):
        pairs, predIds, refIds = self._pairs()
        evaluate.check_matched(predIds, refIds, self.allowUnmatched.get(), where=self.getObjLabel() or "input")
        rows = [dict(tsId=t, pred=os.path.abspath(p.getFileName()), ref=os.path.abspath(r.getFileName()),
                     threshold=itemThreshold(p), kind=itemKind(p)) for t, (p, r) in pairs.items()]
        with open(self._getExtraPath(PAIRS), "w") as f:
            json.dump(rows, f, indent=1)
        args = ["--pairs", self._getExtraPath(PAIRS), "--json", self._getExtraPath(REPORT),
                "--tolerance", "%g" % self.tolerance.get()]
        if not self.useRecordedThreshold.get():
            args += ["--threshold", "%g" % self.threshold.get()]
        if self.distanceMode.get() == MODE_2D:
            args.append("--per-slice")
        if self._refLabels():
            args += ["--ref-labels"] + [str(v) for v in self._refLabels()]
        if not self.computeMcov.get():
            args.append("--no-mcov")
        runEngineExplained(self, "evaluate", args)

    def reportStep(self):
        from ..viewers import render   # drawing needs matplotlib only here, not when Scipion loads protocols
        report = self.getReport()
        render.evaluation_pngs(report, self._getExtraPath())
        header, rows = evaluate.table_rows(report)
        with open(self._getExtraPath(TABLE), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)

    # ------------------------------------------------------------------ results
    def getReportPath(self):
        return self._getExtraPath(REPORT)

    def getReport(self):
        """The engine's report (see membraneseg.engine.measurement.evaluate), or None before it exists."""
        if not os.path.exists(self.getReportPath()):
            return None
        with open(self.getReportPath()) as f:
            return json.load(f)

    # ------------------------------------------------------------------ info
    def _validate(self):
        errors = []
        preds, refs = self.inputMasks.get(), self.referenceMasks.get()
        if preds is None or refs is None:
            return errors
        try:
            self._refLabels()
        except ValueError:
            errors.append("Reference labels must be whole numbers separated by spaces, e.g. '1 2'.")
        pairs, predIds, refIds = self._pairs()
        try:
            evaluate.check_matched(predIds, refIds, self.allowUnmatched.get())
        except ValueError as exc:
            errors.append(exc.problem if hasattr(exc, "problem") else str(exc))
        for tsId, (p, r) in pairs.items():
            if p.getDim() != r.getDim():
                errors.append("%s: the prediction is %s voxels (X, Y, Z) but the reference is %s. Both must cover "
                              "the same voxels: segment the tomograms the references were drawn on."
                              % (tsId, p.getDim(), r.getDim()))
        return errors

    def _summary(self):
        report = self.getReport()
        if report is None:
            return ["Not evaluated yet."]
        p, s = report["pooled"], report["settings"]
        lines = ["%d tomograms, pooled: Dice %.4f, IoU %.4f, F1 %.4f, precision %.4f, recall %.4f, accuracy %.4f."
                 % (p["tomograms"], p["dice"], p["iou"], p["f1"], p["precision"], p["recall"], p["accuracy"]),
                 "Tolerant Dice (within %g voxels, %s): %.4f." % (s["tolerance_voxels"], s["distances"],
                                                                 p["tolerant_dice"])]
        if "mcov" in p:
            lines.append("mCov %.4f (size-weighted %.4f) over %d reference pieces." % (p["mcov"], p["mwcov"],
                                                                                      p["reference_instances"]))
        if "pr_curve" in report:
            c = report["pr_curve"]
            lines.append("Best threshold %.3f (pooled F1 %.4f): apply it with 'threshold and clean masks'."
                         % (c["best_threshold"], c["best_f1"]))
        lines.append("Per tomogram: Analyze Results, or %s." % self._getExtraPath(TABLE))
        return lines

    def _methods(self):
        report = self.getReport()
        if report is None:
            return []
        p = report["pooled"]
        return ["Segmentations of %d tomograms were compared with reference masks (scipion-em-membraneseg): "
                "pooled Dice %.3f, IoU %.3f, F1 %.3f, boundary-tolerant Dice %.3f (tolerance %g voxels)%s, with the "
                "metrics of Morales-Martinez et al. [MoralesMartinez2025]."
                % (p["tomograms"], p["dice"], p["iou"], p["f1"], p["tolerant_dice"],
                   report["settings"]["tolerance_voxels"], ", mCov %.3f" % p["mcov"] if "mcov" in p else "")]

    def _citations(self):
        return ["MoralesMartinez2025", "Kiewisz2024"]
