"""Headless Scipion tests of "threshold and clean masks" on probability maps made here (no network, no download).

The maps are imported with ScipionTomo's "import tomomasks", as maps from another tool would be; a second run
cleans the first one's output, which carries this plugin's kind and threshold attributes.
"""
import os

import numpy as np
from pyworkflow.tests import setupTestProject
from pyworkflow.utils import magentaStr
from tomo.protocols import ProtImportTomomasks
from tomo.tests.test_base_centralized_layer import TestBaseCentralizedLayer

from membraneseg.constants import OUT_FAILED, OUT_MASKS
from membraneseg.engine.core import io
from membraneseg.engine.measurement import metrics
from membraneseg.protocols import ProtMembraneSegClean
from membraneseg.protocols.protocol_clean import UNIT_VOXELS
from membraneseg.viewers import MembraneSegOverlayViewer, render

from .common import VOXEL, import_tomograms, make_phantoms, sourceParents

SHAPE = (24, 64, 64)          # Z, Y, X: small, so each engine run takes a moment


def speck_positions(labels, n=3):
    """Corners of n 2x2x2 specks placed well away (>= 2 voxels) from any membrane."""
    found = []
    for z in range(2, labels.shape[0] - 4, 5):
        for y in range(2, labels.shape[1] - 4, 9):
            for x in range(2, labels.shape[2] - 4, 9):
                if not labels[z - 2:z + 4, y - 2:y + 4, x - 2:x + 4].any() and len(found) < n:
                    found.append((z, y, x))
    return found


def probability_map(labels, seed):
    """A map as a network might give: membranes at 0.55-0.95, three 2x2x2 specks of 0.8, faint noise below 0.3."""
    rng = np.random.default_rng(seed)
    prob = 0.3 * rng.random(labels.shape).astype(np.float32)
    membrane = labels > 0
    prob[membrane] = rng.uniform(0.55, 0.95, int(membrane.sum()))
    for z, y, x in speck_positions(labels):
        prob[z:z + 2, y:y + 2, x:x + 2] = 0.8
    return prob


def import_masks(test, folder, tomograms, pattern="*.mrc"):
    print(magentaStr("\n==> Importing masks from %s" % folder))
    prot = test.newProtocol(ProtImportTomomasks, filesPath=folder, filesPattern=pattern, inputTomos=tomograms)
    test.launchProtocol(prot)
    return prot.tomomasks


def make_maps(folder, truth, maker):
    """Write maker(labels, i) as <name>.mrc in ``folder`` for each phantom; returns {name: array}."""
    os.makedirs(folder, exist_ok=True)
    maps = {}
    for i, (name, labels_path) in enumerate(sorted(truth.items())):
        maps[name] = maker(np.asarray(io.read(labels_path).data), i)
        io.write(os.path.join(folder, name + ".mrc"), maps[name], VOXEL)
    return maps


class TestClean(TestBaseCentralizedLayer):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        truth = make_phantoms(cls.getOutputPath("tomos"), seeds=(1, 2), shape=SHAPE)
        cls.tomograms = import_tomograms(cls, cls.getOutputPath("tomos"))
        cls.probs = make_maps(cls.getOutputPath("probs"), truth, probability_map)
        cls.specks = {name: speck_positions(np.asarray(io.read(path).data)) for name, path in truth.items()}
        cls.probMaps = import_masks(cls, cls.getOutputPath("probs"), cls.tomograms)

    def _clean(self, inputMasks, **kwargs):
        print(magentaStr("\n==> Cleaning with %s" % kwargs))
        prot = self.newProtocol(ProtMembraneSegClean, inputMasks=inputMasks, **kwargs)
        self.launchProtocol(prot)
        out = getattr(prot, OUT_MASKS)
        self.checkTomoMasks(out, expectedSetSize=2, expectedSRate=VOXEL, expectedDimensions=list(SHAPE[::-1]))
        self.assertIsNone(getattr(prot, OUT_FAILED, None))
        self.assertIn(inputMasks.getObjId(), sourceParents(self.proj, out))
        volNames = {t.getTsId(): t.getFileName() for t in self.tomograms}
        for item in out:
            self.assertEqual(item.getVolName(), volNames[item.getTsId()])
        return prot, out

    def test_threshold_and_remove_specks(self):
        prot, out = self._clean(self.probMaps, threshold=0.5, minSize=9, sizeUnit=UNIT_VOXELS)
        for item in out:
            self.assertEqual(item.membranesegKind.get(), "binary")
            self.assertEqual(item.membranesegThreshold.get(), 0.5)
            mask = np.asarray(io.read(item.getFileName()).data)
            self.assertAlmostEqual(io.read(item.getFileName()).voxel_size, VOXEL, places=3)
            # expected: the thresholded map without pieces under 9 voxels (the 8-voxel specks)
            labels, _ = metrics.label_instances(self.probs[item.getTsId()] >= 0.5)
            sizes = np.bincount(labels.ravel())
            expected = (sizes >= 9)[labels] & (labels > 0)
            np.testing.assert_array_equal(mask > 0, expected)
            self.assertEqual(len(self.specks[item.getTsId()]), 3)
            for z, y, x in self.specks[item.getTsId()]:
                self.assertEqual(mask[z, y, x], 0)
        self.assertTrue(any("pieces kept" in line for line in prot.summary()))
        # the overlay viewer shows the cleaned mask over its tomogram
        viewer = MembraneSegOverlayViewer(project=self.proj)
        pngs = viewer.writePngs(out, self.getOutputPath("overlays"))
        self.assertEqual(len(pngs), 2)
        item = out.getFirstItem()
        bare = render.overlay_png(item.getVolName(), item.getFileName(), self.getOutputPath("bare.png"), alpha=0)
        shown = [p for p in pngs if os.path.basename(p).startswith(item.getTsId() + "_")][0]
        over, bare = render_array(shown), render_array(bare)
        under = np.asarray(io.read(item.getFileName()).data)[SHAPE[0] // 2] > 0
        self.assertTrue(under.any())
        changed = np.any(over != bare, axis=2)
        self.assertTrue(changed[under].all() and not changed[~under].any())

    def test_labels_volume_in_nm3_and_closing_then_reclean(self):
        # 9 nm³ = 9 voxels of 10 Å: the specks go; closing keeps the vesicles whole
        prot, out = self._clean(self.probMaps, threshold=0.5, minSize=9, doClosing=True, closingSize=3,
                                labelInstances=True)
        for item in out:
            labels = np.asarray(io.read(item.getFileName()).data)
            self.assertEqual(item.membranesegKind.get(), "labels")
            n = len(np.unique(labels)) - 1
            self.assertGreaterEqual(n, 1)
            self.assertEqual(sorted(np.unique(labels).tolist()), list(range(n + 1)))
        # cleaning a cleaned set: masks are not thresholded again, and the threshold they were made with is kept
        prot2, out2 = self._clean(out, minSize=0, threshold=0.9)
        for first, second in zip(out, out2):
            self.assertEqual(second.membranesegThreshold.get(), 0.5)
            self.assertEqual(second.membranesegKind.get(), "binary")
            np.testing.assert_array_equal(np.asarray(io.read(second.getFileName()).data) > 0,
                                          np.asarray(io.read(first.getFileName()).data) > 0)
        self.assertTrue(any("not used" in w for w in prot2.warnings()))


def render_array(path):
    from matplotlib import image
    return np.rint(image.imread(path)[..., :3] * 255).astype(int)
