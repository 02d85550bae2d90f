"""Headless Scipion test: a per-tomogram run stopped while its engine works on the second tomogram, then continued.
The tomogram already done is not processed again, the one that was cut leaves no file that looks finished, and the
continued run completes it. The preprocess protocol stands for all per-tomogram protocols (they share their steps,
protocols/base.py) because its engine starts in a second; tests/test_kill.py kills a segmentation itself."""
import os
import time

import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject
from pyworkflow.utils import magentaStr

from membraneseg.constants import OUT_FAILED, OUT_TOMOS
from membraneseg.engine import io, recipes

from .common import VOXEL, import_tomograms

SHAPES = {"first": (4, 64, 64), "second": (64, 256, 256)}   # the second takes seconds to preprocess


class TestStopAndContinue(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        folder = cls.getOutputPath("tomos")
        os.makedirs(folder, exist_ok=True)
        for i, (name, shape) in enumerate(SHAPES.items()):
            io.write(os.path.join(folder, name + ".mrc"), np.random.default_rng(i).normal(size=shape), VOXEL)
        cls.tomograms = import_tomograms(cls, folder)

    def test_continuing_skips_the_tomograms_already_done(self):
        from membraneseg.protocols import ProtMembraneSegPreprocess
        prot = self.newProtocol(ProtMembraneSegPreprocess, inputTomograms=self.tomograms, binThreads=2)
        print(magentaStr("\n==> Preprocessing, to be stopped while the second tomogram is worked on"))
        self.proj.launchProtocol(prot, wait=False)
        prot._initialize()                   # the tomograms by tsId, as the run has them
        outputs = {tsId: prot.outputPath(tsId) for tsId in SHAPES}
        deadline = time.time() + 300
        while not os.path.isdir(prot._getExtraPath("second")) and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)                      # its engine is at work
        self.proj.stopProtocol(prot)
        done = {p: os.stat(p) for p in (outputs["first"], recipes.recipe_path(outputs["first"]))}
        self.assertFalse(os.path.exists(outputs["second"]), "the second tomogram finished too soon")

        print(magentaStr("\n==> Continuing"))
        self.launchProtocol(prot)            # the default run mode resumes: unfinished steps run again
        self.assertEqual(sorted(t.getTsId() for t in getattr(prot, OUT_TOMOS)), ["first", "second"])
        self.assertIsNone(getattr(prot, OUT_FAILED, None))
        for path, before in done.items():    # not written again
            after = os.stat(path)
            self.assertEqual((after.st_ino, after.st_mtime_ns), (before.st_ino, before.st_mtime_ns))
        vol = io.read(outputs["second"])
        self.assertEqual(vol.data.shape, SHAPES["second"])
        self.assertAlmostEqual(vol.voxel_size, VOXEL, places=3)
        self.assertEqual(sorted(os.listdir(prot._getExtraPath("second"))),   # no partial, scratch or FAILED file
                         ["second.mrc", "second_recipe.json"])
