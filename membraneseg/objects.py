"""MembraneSegModel: a trained network as a Scipion object that protocols can point to.

The object stores the model folder; everything else is read from the folder's JSON card, so the object and the
files can never disagree. A few facts are copied into attributes for display in the GUI.
"""
import json
import os

import pyworkflow.object as pwobj
from pwem.objects import EMObject

from .constants import GAN_JSON, MODEL_JSON


class MembraneSegModel(EMObject):
    """A trained hybrid network (weights + card) usable by the Segment and Train protocols."""

    def __init__(self, path=None, **kwargs):
        super().__init__(**kwargs)
        self._path = pwobj.String(path)
        self._preset = pwobj.String()
        self._context = pwobj.Integer()
        self._pixelSize = pwobj.Float()
        self._threshold = pwobj.Float()
        if path:
            self.refresh()

    def getPath(self):
        return self._path.get()

    def setPath(self, path):
        self._path.set(path)
        self.refresh()

    def getCard(self):
        """The model card as a dict (read from disk)."""
        with open(os.path.join(self.getPath(), MODEL_JSON)) as f:
            return json.load(f)

    def refresh(self):
        card = self.getCard()
        self._preset.set(card["network"]["preset"])
        self._context.set(card["network"]["context"])
        self._pixelSize.set(card["pixel_size"])
        self._threshold.set(card["threshold"])

    def getPixelSize(self):
        return self._pixelSize.get()

    def getThreshold(self):
        return self._threshold.get()

    def getContext(self):
        return self._context.get()

    def getPreset(self):
        return self._preset.get()

    def __str__(self):
        return "MembraneSegModel (preset %s, %d z-slice(s), %.2f Å/px, threshold %.3f)" % (
            self.getPreset(), self.getContext() or 1, self.getPixelSize() or 0, self.getThreshold() or 0)


class MembraneSegGanModel(EMObject):
    """A trained mask-to-image Pix2Pix GAN (generator + discriminator + card) that makes synthetic pairs."""

    def __init__(self, path=None, **kwargs):
        super().__init__(**kwargs)
        self._path = pwobj.String(path)
        self._size = pwobj.Integer()
        self._pixelSize = pwobj.Float()
        self._epochs = pwobj.Integer()
        if path:
            self.refresh()

    def getPath(self):
        return self._path.get()

    def getCard(self):
        with open(os.path.join(self.getPath(), GAN_JSON)) as f:
            return json.load(f)

    def refresh(self):
        card = self.getCard()
        self._size.set(card["size"])
        self._pixelSize.set(card.get("pixel_size"))
        self._epochs.set(card.get("epochs_run"))

    def getPixelSize(self):
        return self._pixelSize.get()

    def __str__(self):
        return "MembraneSegGanModel (%d px, %s epochs%s)" % (
            self._size.get() or 0, self._epochs.get(),
            ", %.2f Å/px" % self.getPixelSize() if self.getPixelSize() else "")


class MembraneSegPairs(EMObject):
    """Synthetic image/mask pairs: a folder with images/ and masks/ (same file names), pairs.csv and grid.png,
    which the Train protocol mixes into its training data."""

    def __init__(self, path=None, count=None, pixelSize=None, **kwargs):
        super().__init__(**kwargs)
        self._path = pwobj.String(path)
        self._count = pwobj.Integer(count)
        self._pixelSize = pwobj.Float(pixelSize)

    def getPath(self):
        return self._path.get()

    def getImagesFolder(self):
        return os.path.join(self.getPath(), "images")

    def getMasksFolder(self):
        return os.path.join(self.getPath(), "masks")

    def getCount(self):
        return self._count.get()

    def getPixelSize(self):
        return self._pixelSize.get()

    def __str__(self):
        return "MembraneSegPairs (%s synthetic image/mask pairs%s)" % (
            self.getCount(), ", %.2f Å/px" % self.getPixelSize() if self.getPixelSize() else "")
