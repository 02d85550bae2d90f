"""Headless Scipion tests of "evaluate segmentation": probability maps and masks made here against the phantoms'
label maps, pairing by tsId, and the refusals (a tomogram without reference, masks of another size)."""
import json
import os
import shutil

import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject
from pyworkflow.utils import magentaStr

from membraneseg.constants import MODEL_JSON, MODEL_WEIGHTS
from membraneseg.engine.core import io
from membraneseg.engine.measurement import metrics
from membraneseg.engine.network import modelfile
from membraneseg.objects import MembraneSegModel
from membraneseg.protocols import ProtMembraneSegEvaluate
from membraneseg.viewers import MembraneSegEvaluationViewer, MembraneSegTrainingViewer

from .test_protocol_clean import import_masks, make_maps
from .common import VOXEL, import_tomograms, make_phantoms

SHAPE = (20, 64, 64)


def shifted_map(labels, i):
    """The membrane moved by one voxel along y (and the second map fainter): Dice suffers, tolerant Dice not."""
    prob = np.where(np.roll(labels > 0, 1, axis=1), 0.8 - 0.2 * i, 0.1).astype(np.float32)
    return prob


class TestEvaluate(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.truth = make_phantoms(cls.getOutputPath("tomos"), seeds=(3, 4), shape=SHAPE)
        cls.tomograms = import_tomograms(cls, cls.getOutputPath("tomos"))
        make_maps(cls.getOutputPath("refs"), cls.truth, lambda labels, i: labels)
        cls.refs = import_masks(cls, cls.getOutputPath("refs"), cls.tomograms)
        cls.probs = make_maps(cls.getOutputPath("probs"), cls.truth, shifted_map)
        cls.probMaps = import_masks(cls, cls.getOutputPath("probs"), cls.tomograms)

    def _evaluate(self, preds, refs, **kwargs):
        print(magentaStr("\n==> Evaluating %s" % kwargs))
        return self.newProtocol(ProtMembraneSegEvaluate, inputMasks=preds, referenceMasks=refs, **kwargs)

    def test_metrics_table_json_and_plots(self):
        prot = self._evaluate(self.probMaps, self.refs, tolerance=1.0)
        self.launchProtocol(prot)
        report = prot.getReport()
        self.assertEqual([r["tsId"] for r in report["tomograms"]], ["phantom3", "phantom4"])
        for r in report["tomograms"]:
            self.assertEqual(r["kind"], "probability")
            ref = np.asarray(io.read(self.truth[r["tsId"]]).data) > 0
            pred = self.probs[r["tsId"]] >= 0.5
            self.assertEqual(r["threshold"], 0.5)            # imported maps record none: the default
            self.assertAlmostEqual(r["dice"], metrics.dice(pred, ref), places=6)
            self.assertAlmostEqual(r["iou"], metrics.iou(pred, ref), places=6)
            tolerant = metrics.tolerant_scores(*metrics.tolerant_counts(pred, ref, 1.0))["tolerant_dice"]
            self.assertAlmostEqual(r["tolerant_dice"], tolerant, places=6)
            self.assertGreater(r["tolerant_dice"], 0.95)      # a one-voxel shift, forgiven (but at the edge)
            self.assertLess(r["dice"], 0.9)
            self.assertAlmostEqual(r["mcov"], metrics.mcov(pred, ref)[0], places=6)
        for i, r in enumerate(report["tomograms"]):            # membranes at 0.8 and 0.6, background 0.1
            self.assertTrue(0.1 < r["best_threshold"] <= 0.8 - 0.2 * i, r["best_threshold"])
        pooled = report["pooled"]
        self.assertEqual(pooled["tomograms"], 2)
        self.assertGreater(report["pr_curve"]["best_f1"], 0)
        for name in ("evaluation.json", "metrics.csv", "metrics.png", "pr_curve.png"):
            self.assertTrue(os.path.exists(prot._getExtraPath(name)), name)
        with open(prot._getExtraPath("metrics.csv")) as f:
            self.assertEqual(len(f.readlines()), 4)           # header, two tomograms, pooled
        summary = "\n".join(prot.summary())
        self.assertIn("pooled: Dice %.4f, IoU %.4f" % (pooled["dice"], pooled["iou"]), summary)
        self.assertIn("Best threshold", summary)
        # the evaluation viewer's plots, headless
        viewer = MembraneSegEvaluationViewer(project=self.proj, protocol=prot)
        pngs = viewer.writePngs(prot, self.getOutputPath("evaluation-plots"))
        self.assertEqual(sorted(os.path.basename(p) for p in pngs), ["metrics.png", "pr_curve.png"])

    def test_own_threshold_2d_and_reference_labels(self):
        prot = self._evaluate(self.probMaps, self.refs, useRecordedThreshold=False, threshold=0.65,
                              distanceMode=1, referenceLabels="1", computeMcov=False)
        self.launchProtocol(prot)
        report = prot.getReport()
        first, second = report["tomograms"]
        self.assertEqual(first["threshold"], 0.65)
        self.assertGreater(first["dice"], 0)
        self.assertEqual(second["recall"], 0.0)               # its map is 0.6 < 0.65 everywhere
        self.assertEqual(report["settings"]["distances"], "2d")
        self.assertNotIn("mcov", report["pooled"])
        with open(prot._getExtraPath("pairs.json")) as f:
            self.assertEqual({p["tsId"] for p in json.load(f)}, {"phantom3", "phantom4"})

    def test_missing_tomogram_and_other_size_are_refused(self):
        folder = self.getOutputPath("one-ref")
        os.makedirs(folder, exist_ok=True)
        io.write(os.path.join(folder, "phantom3.mrc"), io.read(self.getOutputPath("refs", "phantom3.mrc")).data, VOXEL)
        onlyOne = import_masks(self, folder, self.tomograms)
        prot = self._evaluate(self.probMaps, onlyOne)
        errors = prot.validate()
        self.assertTrue(any("no reference for tomogram(s) phantom4" in e for e in errors), errors)
        prot = self._evaluate(self.probMaps, onlyOne, allowUnmatched=True)
        self.assertEqual(prot.validate(), [])
        self.launchProtocol(prot)
        self.assertEqual([r["tsId"] for r in prot.getReport()["tomograms"]], ["phantom3"])
        # masks of another size for the same tomogram ids
        small = self.getOutputPath("small")
        os.makedirs(small, exist_ok=True)
        for name in self.truth:
            io.write(os.path.join(small, name + ".mrc"), np.zeros((SHAPE[0], 32, 32), np.uint8), VOXEL)
        smallTomos = import_tomograms(self, small)
        smallMasks = import_masks(self, small, smallTomos)
        errors = self._evaluate(self.probMaps, smallMasks).validate()
        self.assertTrue(any("phantom3: the prediction is (64, 64, 20)" in e for e in errors), errors)

    def test_training_curves_viewer(self):
        model = MembraneSegModel(path=modelfile.default_model_path())
        viewer = MembraneSegTrainingViewer(project=self.proj)
        pngs = viewer.writePngs(model, self.getOutputPath("curves"))
        self.assertEqual([os.path.basename(p) for p in pngs], ["training_curves.png"])
        # a model folder without a history: the viewer says so instead of opening an empty window
        bare = self.getOutputPath("model-without-history")
        os.makedirs(bare, exist_ok=True)
        for name in (MODEL_JSON, MODEL_WEIGHTS):
            shutil.copy(os.path.join(modelfile.default_model_path(), name), bare)
        views = viewer._visualize(MembraneSegModel(path=bare))
        self.assertEqual(len(views), 1)
        self.assertIn("no training history", views[0].getMessage())
