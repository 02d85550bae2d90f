"""Viewer "GAN samples": the grid of generated pairs (mask | generated | nearest real image) of "generate synthetic
pairs", and the per-epoch sample grids (mask | generated | real) of "train mask-to-image GAN"."""
import glob
import os

import pyworkflow.viewer as pwviewer

from ..constants import GAN_SAMPLES_DIR, PAIRS_GRID
from ..objects import MembraneSegGanModel, MembraneSegPairs
from ..protocols.protocol_gan import OUT_GAN, OUT_PAIRS, ProtMembraneSegGeneratePairs, ProtMembraneSegTrainGan
from . import render
from .launch import launch
from .viewer_overlay import launchLog, projectFile


class MembraneSegGanViewer(pwviewer.Viewer):
    """Sample grids of a mask-to-image GAN or of the pairs it generated."""
    _label = "membraneseg: GAN samples"
    _targets = [MembraneSegPairs, MembraneSegGanModel, ProtMembraneSegGeneratePairs, ProtMembraneSegTrainGan]
    _environments = [pwviewer.DESKTOP_TKINTER]

    def pictures(self, obj):
        """The PNG grids of ``obj`` (pairs: their grid; a GAN: one grid per epoch, oldest first)."""
        if isinstance(obj, ProtMembraneSegGeneratePairs):
            obj = getattr(obj, OUT_PAIRS, None)
        elif isinstance(obj, ProtMembraneSegTrainGan):
            obj = getattr(obj, OUT_GAN, None)
        if obj is None or not obj.getPath():
            return []
        folder = projectFile(self.getProject(), obj.getPath())
        if isinstance(obj, MembraneSegPairs):
            return [p for p in [os.path.join(folder, PAIRS_GRID)] if os.path.exists(p)]
        return sorted(glob.glob(os.path.join(folder, GAN_SAMPLES_DIR, "epoch_*.png")))

    def _visualize(self, obj, **kwargs):
        paths = self.pictures(obj)
        if not paths:
            return [self.errorMessage("There are no sample grids yet: the run has not finished an epoch or a "
                                      "generation.", "No GAN samples")]
        launch(["pictures"] + paths, launchLog(self.getProject()))
        return []

    def writePngs(self, obj, folder):
        paths = self.pictures(obj)
        if not paths:
            raise ValueError("%s has no sample grids" % obj)
        return render.copy_pictures(paths, folder)
