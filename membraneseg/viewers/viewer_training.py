"""Viewer "training curves": loss, validation loss and validation Dice per epoch of a trained model.

Training writes training_history.json into the model folder after every epoch, so the curves of a run still in
progress can be watched too. The window runs in its own process.
"""
import os

import pyworkflow.viewer as pwviewer

from .. import protocols
from ..constants import OUT_MODEL
from ..objects import MembraneSegModel
from . import render
from .launch import launch
from .viewer_overlay import launchLog, projectFile

HISTORY = "training_history.json"   # written by membraneseg.engine.training.loop


def trainingTargets():
    """The model object, and the training protocol once the plugin exports it."""
    train = getattr(protocols, "ProtMembraneSegTrain", None)
    return [MembraneSegModel] + ([train] if train is not None else [])


class MembraneSegTrainingViewer(pwviewer.Viewer):
    """Training curves of a membraneseg model."""
    _label = "membraneseg: training curves"
    _targets = trainingTargets()
    _environments = [pwviewer.DESKTOP_TKINTER]

    def historyPath(self, obj):
        """training_history.json of a model, or of the model a protocol produced; None when there is none."""
        model = obj if isinstance(obj, MembraneSegModel) else getattr(obj, OUT_MODEL, None)
        if model is None or not model.getPath():
            return None
        path = projectFile(self.getProject(), os.path.join(model.getPath(), HISTORY))
        return path if os.path.exists(path) else None

    def _visualize(self, obj, **kwargs):
        path = self.historyPath(obj)
        if path is None:
            return [self.errorMessage("This model has no training history (%s): it was trained before histories "
                                      "were kept, or elsewhere." % HISTORY, "No training curves")]
        launch(["curves", path], launchLog(self.getProject()))
        return []

    def writePngs(self, obj, folder):
        path = self.historyPath(obj)
        if path is None:
            raise ValueError("%s has no %s" % (obj, HISTORY))
        return [render.training_curves_png(path, os.path.join(folder, "training_curves.png"))]
