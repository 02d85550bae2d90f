"""Viewer "masks over tomograms": a mask, label map or probability map drawn over its tomogram, slice by slice.

The window (napari where installed, else a matplotlib slice viewer) runs in its own process, so the Scipion GUI
stays usable while it is open.
"""
import json
import os
import tempfile

import pyworkflow.viewer as pwviewer
from tomo.objects import SetOfTomoMasks, TomoMask

from ..engine.segmentation.predict import output_paths
from ..protocols.protocol_clean import itemKind
from . import render
from .launch import launch


def projectFile(project, path):
    """Scipion stores file names relative to the project folder: make them usable from any working folder."""
    return path if os.path.isabs(path) else os.path.join(project.getPath(), path)


def viewerTmp(project, prefix, data):
    """Write ``data`` as JSON into the project's Tmp folder (a unique name) and return the path."""
    folder = os.path.join(project.getPath(), "Tmp")
    os.makedirs(folder, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=".json", dir=folder)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    return path


def launchLog(project):
    return os.path.join(project.getPath(), "Tmp", "membraneseg-viewer.log")


class MembraneSegOverlayViewer(pwviewer.Viewer):
    """Masks or probability maps over their tomograms (napari, else matplotlib)."""
    _label = "membraneseg: masks over tomograms"
    _targets = [SetOfTomoMasks, TomoMask]
    _environments = [pwviewer.DESKTOP_TKINTER]

    def items(self, obj):
        """{"tsId", "tomo", "mask", "kind"} of each mask that names its tomogram (volName), with "prob" where the
        mask is a segmentation whose probability map lies beside it."""
        masks = [obj] if isinstance(obj, TomoMask) else obj
        project = self.getProject()
        out = []
        for m in masks:
            if not m.getVolName():
                continue
            item = dict(tsId=m.getTsId() or m.getObjId(), tomo=projectFile(project, m.getVolName()),
                        mask=projectFile(project, m.getFileName()), kind=itemKind(m))
            # where "segment membranes" wrote this mask, it wrote the probability map beside it
            mask, prob = output_paths(item["tomo"], os.path.dirname(item["mask"]))
            if item["kind"] == "binary" and mask == item["mask"] and os.path.exists(prob):
                item["prob"] = prob
            out.append(item)
        return out

    def _visualize(self, obj, **kwargs):
        items = self.items(obj)
        if not items:
            return [self.errorMessage("These masks do not say which tomogram they belong to (no volName), so "
                                      "there is nothing to draw them on.", "No tomogram")]
        manifest = viewerTmp(self.getProject(), "overlay-", items)
        launch(["overlay", manifest], launchLog(self.getProject()))
        return []

    def writePngs(self, obj, folder):
        """The middle z-slice of each tomogram with its mask on top, as PNGs in ``folder``; their paths."""
        return render.overlay_pngs(self.items(obj), folder)
