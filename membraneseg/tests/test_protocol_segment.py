"""Headless Scipion tests of "segment membranes" (and "import membrane model") on our registered dataset,
membraneseg_phantoms: phantom tomograms, their labels and a tiny model trained on other phantoms (built on this
machine the first time, see phantom_dataset.py; nothing is downloaded). The shipped default model is exercised too.
"""
import os
import shutil

import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject
from pyworkflow.utils import magentaStr
from tomo.tests.test_base_centralized_layer import TestBaseCentralizedLayer

from membraneseg.constants import OUT_FAILED, OUT_MASKS, OUT_MODEL, OUT_PROBS
from membraneseg.engine.core import io
from membraneseg.engine.measurement import metrics
from membraneseg.protocols import ProtMembraneSegImportModel, ProtMembraneSegSegment
from membraneseg.tests.common import SHAPE, VOXEL, import_tomograms, sourceParents
from membraneseg.tests.datasets import getPhantomDataSet
from membraneseg.viewers import MembraneSegOverlayViewer


class TestSegment(TestBaseCentralizedLayer):
    @classmethod
    def setUpClass(cls):
        cls.ds = getPhantomDataSet()
        setupTestProject(cls)
        cls.modelDir = cls.ds.getFile("model")
        cls.tomograms = import_tomograms(cls, cls.ds.getFile("tomograms"))
        cls.truth = {t.getTsId(): os.path.join(cls.ds.getFile("labels"), os.path.basename(t.getFileName()))
                     for t in cls.tomograms}

    def _segment(self, tomograms, model=None, **kwargs):
        print(magentaStr("\n==> Segmenting"))
        prot = self.newProtocol(ProtMembraneSegSegment, inputTomograms=tomograms, inputModel=model,
                                binThreads=2, **kwargs)
        self.launchProtocol(prot)
        return prot

    def _checkOutputs(self, prot, n):
        masks, probs = getattr(prot, OUT_MASKS), getattr(prot, OUT_PROBS)
        dims = [SHAPE[2], SHAPE[1], SHAPE[0]]
        for outSet in (masks, probs):
            self.checkTomoMasks(outSet, expectedSetSize=n, expectedSRate=VOXEL, expectedDimensions=dims)
        inputNames = {t.getTsId(): t.getFileName() for t in self.tomograms}
        for mask, prob in zip(masks, probs):
            self.assertEqual(mask.getVolName(), inputNames[mask.getTsId()])
            self.assertEqual(prob.getVolName(), inputNames[prob.getTsId()])
            self.assertEqual(mask.membranesegKind.get(), "binary")
            self.assertEqual(prob.membranesegKind.get(), "probability")
            m, p = io.read(mask.getFileName()), io.read(prob.getFileName())
            self.assertAlmostEqual(m.voxel_size, VOXEL, places=3)
            self.assertAlmostEqual(p.voxel_size, VOXEL, places=3)
            self.assertTrue(set(np.unique(m.data)).issubset({0, 1}))
            self.assertGreaterEqual(float(p.data.min()), 0.0)
            self.assertLessEqual(float(p.data.max()), 1.0)
            # the mask is the probability map at the recorded threshold
            thr = mask.membranesegThreshold.get()
            np.testing.assert_array_equal(np.asarray(m.data) > 0, np.asarray(p.data) >= thr)
        # source relations: tomograms -> masks and probability maps
        for outSet in (masks, probs):
            self.assertIn(self.tomograms.getObjId(), sourceParents(self.proj, outSet))
        return masks

    def test_default_model(self):
        prot = self._segment(self.tomograms, useModelThreshold=False, threshold=0.3)
        masks = self._checkOutputs(prot, 2)
        self.assertEqual({m.membranesegThreshold.get() for m in masks}, {0.3})
        self.assertIsNone(getattr(prot, OUT_FAILED, None))
        # the overlay viewer (napari) is given each mask's probability map too
        items = MembraneSegOverlayViewer(project=self.proj).items(masks)
        self.assertEqual(len(items), 2)
        probs = {p.getTsId(): p.getFileName() for p in getattr(prot, OUT_PROBS)}
        for item in items:
            self.assertTrue(item["prob"].endswith(probs[item["tsId"]]))

    def test_trained_model_finds_membranes(self):
        imp = self.newProtocol(ProtMembraneSegImportModel, modelPath=self.modelDir)
        self.launchProtocol(imp)
        model = getattr(imp, OUT_MODEL)
        self.assertEqual(model.getPreset(), "tiny")
        prot = self._segment(self.tomograms, model=model)
        masks = self._checkOutputs(prot, 2)
        self.assertIn(model.getObjId(), sourceParents(self.proj, masks))
        # polarity auto: measured in each tomogram, and said in the job's log
        self.assertIn("measured per tomogram", " ".join(prot.summary()))
        logs = "".join(open(path).read() for path in prot.getLogPaths() if os.path.exists(path))
        self.assertIn("matter is dark", logs)
        for mask in masks:
            ref = io.read(self.truth[mask.getTsId()]).data > 0
            pred = io.read(mask.getFileName()).data > 0
            d = metrics.dice(pred, ref)
            trivial = max(metrics.dice(np.ones_like(ref), ref), metrics.dice(np.zeros_like(ref), ref))
            print("%s: Dice %.3f (all-foreground %.3f)" % (mask.getTsId(), d, trivial))
            self.assertGreater(d, 0.5)
            self.assertGreater(d, trivial + 0.2)


class TestSegmentFailures(BaseTest):
    """One unreadable tomogram in a set must not stop the others, and must say why."""

    @classmethod
    def setUpClass(cls):
        good = os.path.join(getPhantomDataSet().getFile("tomograms"), "phantom1.mrc")
        setupTestProject(cls)
        folder = cls.getOutputPath("tomos")
        shutil.rmtree(folder, ignore_errors=True)    # the project folder may hold an earlier run's tomograms
        os.makedirs(folder)
        shutil.copy(good, folder)
        with open(good, "rb") as f:
            data = f.read()
        with open(os.path.join(folder, "truncated.mrc"), "wb") as f:
            f.write(data[: len(data) // 2])
        cls.tomograms = import_tomograms(cls, folder)

    def test_bad_tomogram_goes_to_failed_set(self):
        prot = self.newProtocol(ProtMembraneSegSegment, inputTomograms=self.tomograms, numberOfThreads=2)
        self.launchProtocol(prot)
        self.assertEqual(getattr(prot, OUT_MASKS).getSize(), 1)
        failed = getattr(prot, OUT_FAILED)
        self.assertEqual(failed.getSize(), 1)
        bad = failed.getFirstItem()
        self.assertEqual(bad.getTsId(), "truncated")
        reason = open(prot._getExtraPath("truncated", "FAILED.txt")).read()
        self.assertIn("truncated.mrc", reason)
        self.assertIn("not a readable MRC file", reason)
        # nothing that looks finished was left for the bad tomogram
        self.assertEqual([f for f in os.listdir(prot._getExtraPath("truncated")) if f.endswith(".mrc")], [])
