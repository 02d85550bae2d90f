"""Viewer of "find vesicles": per tomogram, the vesicles drawn over three z-slices of the tomogram (each in its own
colour, numbered as in the table) beside a histogram of their diameters; and the table of all vesicles."""
import pyworkflow.viewer as pwviewer
from pwem.viewers.views import TableView

from ..engine.vesicles import files
from ..protocols.protocol_vesicles import ProtMembraneSegVesicles
from . import render
from .launch import launch
from .viewer_overlay import launchLog, projectFile

TABLE_COLUMNS = ("tsId",) + files.COLUMNS


class MembraneSegVesiclesViewer(pwviewer.Viewer):
    """Vesicles over their tomograms, with the histogram of diameters, and their table."""
    _label = "membraneseg: vesicles"
    _targets = [ProtMembraneSegVesicles]
    _environments = [pwviewer.DESKTOP_TKINTER]

    def _visualize(self, obj, **kwargs):
        paths = [projectFile(self.getProject(), p) for p in obj.pictures()]
        if not paths:
            return [self.errorMessage("No tomogram has been done yet.", "No vesicles")]
        launch(["pictures"] + paths, launchLog(self.getProject()))
        return [self.table(obj)]

    @staticmethod
    def rows(protocol):
        """One row per vesicle of every tomogram done: TABLE_COLUMNS."""
        return [[tsId] + [v[c] for c in files.COLUMNS]
                for tsId, record in sorted(protocol.records().items()) for v in record["vesicles"]]

    def table(self, protocol):
        rows = self.rows(protocol)
        return TableView(list(TABLE_COLUMNS), rows, title="membraneseg vesicles", height=min(max(len(rows), 1), 25),
                         width=900, mesg="Centres in voxels of the tomogram; sizes in nm.",
                         outFileName=protocol._getExtraPath("vesicles.csv"))

    def writePngs(self, protocol, folder):
        paths = protocol.pictures()
        if not paths:
            raise ValueError("%s has no vesicle pictures yet" % protocol.getRunName())
        return render.copy_pictures(paths, folder)
