"""Viewer of "evaluate segmentation": the metrics table (per tomogram and pooled) and the plots."""
from pwem.viewers.views import TableView
from pyworkflow.protocol import params
from pyworkflow.viewer import DESKTOP_TKINTER, ProtocolViewer

from ..engine.measurement import evaluate
from ..protocols.protocol_evaluate import TABLE, ProtMembraneSegEvaluate
from . import render
from .launch import launch
from .viewer_overlay import launchLog


class MembraneSegEvaluationViewer(ProtocolViewer):
    """Metrics table and plots of an evaluation."""
    _label = "membraneseg: evaluation results"
    _targets = [ProtMembraneSegEvaluate]
    _environments = [DESKTOP_TKINTER]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        form.addParam("displayTable", params.LabelParam, label="Metrics table",
                      help="One row per tomogram and a pooled row (voxel counts summed over all tomograms): "
                           "accuracy, precision, recall, F1, Dice, IoU, tolerant Dice and mCov. 'Save Data' "
                           "writes it as CSV.")
        form.addParam("displayPlots", params.LabelParam, label="Plots",
                      help="Bars of the metrics per tomogram and, for probability maps, the precision-recall "
                           "curve with F1 against the threshold and the best threshold marked.")

    def _getVisualizeDict(self):
        return {"displayTable": self._showTable, "displayPlots": self._showPlots}

    def _missing(self):
        return [self.errorMessage("The evaluation has not finished: there is no %s yet."
                                  % self.protocol.getReportPath(), "No results")]

    def _showTable(self, paramName=None):
        report = self.protocol.getReport()
        if report is None:
            return self._missing()
        header, rows = evaluate.table_rows(report)
        return [TableView(header, rows, title="membraneseg evaluation", height=min(len(rows), 25), width=800,
                          mesg="Pooled: voxel counts summed over all tomograms.",
                          outFileName=self.protocol._getExtraPath(TABLE))]

    def _showPlots(self, paramName=None):
        if self.protocol.getReport() is None:
            return self._missing()
        launch(["evaluation", self.protocol.getReportPath()], launchLog(self.getProject()))
        return []

    def writePngs(self, protocol, folder):
        """The evaluation plots of ``protocol`` as PNGs in ``folder``; their paths."""
        report = protocol.getReport()
        if report is None:
            raise ValueError("%s has not finished: no %s" % (protocol.getRunName(), protocol.getReportPath()))
        return render.evaluation_pngs(report, folder)
