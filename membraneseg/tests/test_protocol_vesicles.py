"""Headless Scipion test of "find vesicles" on masks drawn here, where the vesicles are known (no network).

Two tomograms with their membrane masks (imported with ScipionTomo's "import tomomasks", as masks from any tool
would be): one holds a nested pair, a touching pair and a flat membrane, the other one vesicle and a compartment
too large to be one. The protocol must give one coordinate per vesicle at its centre with its radius, a label map
per tomogram, the table, and the pictures the viewer shows.
"""
import os

import numpy as np
from pyworkflow.tests import setupTestProject
from tomo.objects import SetOfCoordinates3D
from tomo.tests.test_base_centralized_layer import TestBaseCentralizedLayer

from membraneseg.constants import OUT_FAILED, OUT_VESICLE_COORDS, OUT_VESICLE_LABELS
from membraneseg.engine.core import io
from membraneseg.protocols import ProtMembraneSegVesicles
from membraneseg.viewers import MembraneSegVesiclesViewer

from .common import VOXEL, import_tomograms, sourceParents
from .shapes import shell
from .test_protocol_clean import import_masks

SHAPE = (48, 96, 96)
VESICLES = {   # tsId: [(centre z, y, x), radius] in voxels of 1 nm
    "tomoA": [((24, 30, 30), 14.0), ((24, 30, 30), 7.5), ((24, 68, 40), 10.0), ((24, 68, 40 + 10 + 10 + 3), 10.0)],
    "tomoB": [((22, 48, 48), 12.0)],
}


def draw(folder_tomos, folder_masks):
    os.makedirs(folder_tomos, exist_ok=True)
    os.makedirs(folder_masks, exist_ok=True)
    z, y, x = np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")
    for i, (name, vesicles) in enumerate(sorted(VESICLES.items())):
        mask = np.zeros(SHAPE, bool)
        for centre, r in vesicles:
            mask |= shell(SHAPE, centre, (r, r, r))
        if name == "tomoA":
            mask |= np.abs(x + 0.2 * z - 88) <= 1.5                      # a flat membrane across the volume
        else:
            mask |= shell(SHAPE, (24, 48, 48), (90, 90, 90))             # a compartment 180 nm across
        noise = np.random.default_rng(i).normal(size=SHAPE).astype(np.float32)
        io.write(os.path.join(folder_tomos, name + ".mrc"), noise - 2 * mask, VOXEL)
        io.write(os.path.join(folder_masks, name + ".mrc"), mask.astype(np.int8), VOXEL)


class TestVesicles(TestBaseCentralizedLayer):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        draw(cls.getOutputPath("tomos"), cls.getOutputPath("masks"))
        cls.tomograms = import_tomograms(cls, cls.getOutputPath("tomos"))
        cls.masks = import_masks(cls, cls.getOutputPath("masks"), cls.tomograms)

    def test_vesicles_coordinates_labels_table_and_pictures(self):
        # 10 nm is the smallest diameter here: the inner vesicle of the nested pair is 15 nm across
        prot = self.newProtocol(ProtMembraneSegVesicles, inputMasks=self.masks, inputTomograms=self.tomograms,
                                minDiameter=10.0)
        self.launchProtocol(prot)
        self.assertIsNone(getattr(prot, OUT_FAILED, None))
        coords = getattr(prot, OUT_VESICLE_COORDS)
        self.assertIsInstance(coords, SetOfCoordinates3D)
        self.assertEqual(coords.getSize(), 5)
        self.assertAlmostEqual(coords.getSamplingRate(), VOXEL)
        self.assertEqual(coords.getBoxSize(), 180)              # 150 nm plus 20 %, at 10 Å
        found = {}
        for c in coords.iterCoordinates():
            found.setdefault(c.getTomoId(), []).append(
                (np.array(c.getPosition(lambda dim: (0, 0, 0))[::-1]), c.membranesegRadiusNm.get(), c.getScore()))
        for tsId, vesicles in VESICLES.items():
            self.assertEqual(len(found[tsId]), len(vesicles))
            for centre, r in vesicles:
                best = min(found[tsId], key=lambda f: np.linalg.norm(f[0] - centre) + abs(f[1] - r))
                self.assertLess(np.linalg.norm(best[0] - centre), 1.0)
                self.assertAlmostEqual(best[1], r, delta=0.05 * r)     # 1 voxel is 1 nm
                self.assertGreater(best[2], 0.5)
        labels = getattr(prot, OUT_VESICLE_LABELS)
        self.checkTomoMasks(labels, expectedSetSize=2, expectedSRate=VOXEL, expectedDimensions=list(SHAPE[::-1]))
        volNames = {t.getTsId(): t.getFileName() for t in self.tomograms}
        for item in labels:
            self.assertEqual(item.getVolName(), volNames[item.getTsId()])
            values = np.unique(np.asarray(io.read(item.getFileName()).data))
            self.assertEqual(values.tolist(), list(range(len(VESICLES[item.getTsId()]) + 1)))
        self.assertIn(self.masks.getObjId(), sourceParents(self.proj, coords))
        self.assertTrue(any("5 vesicles in 2 tomograms" in line for line in prot.summary()), prot.summary())
        viewer = MembraneSegVesiclesViewer(project=self.proj)
        rows = viewer.rows(prot)
        self.assertEqual(len(rows), 5)
        pngs = viewer.writePngs(prot, self.getOutputPath("pictures"))
        self.assertEqual(len(pngs), 2)
        from matplotlib import image
        self.assertGreater(image.imread(pngs[0]).shape[1], 1000)

    def test_inverted_size_range_is_refused(self):
        prot = self.newProtocol(ProtMembraneSegVesicles, inputMasks=self.masks, inputTomograms=self.tomograms,
                                minDiameter=80.0, maxDiameter=40.0)
        self.assertTrue(any("smallest diameter" in e for e in prot.validate()))
