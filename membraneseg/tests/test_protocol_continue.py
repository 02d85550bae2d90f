"""Headless Scipion test: a per-tomogram run stopped while its engine works on the second tomogram, then continued.
The tomogram already done is not processed again, the one that was cut leaves no file that looks finished, and the
continued run completes it. The preprocess protocol stands for all per-tomogram protocols (they share their steps,
protocols/base.py) because its engine starts in a second; tests/test_kill.py kills a segmentation itself."""
import os
import signal
import subprocess
import time
from unittest import mock

import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject
from pyworkflow.utils import magentaStr

from membraneseg import Plugin
from membraneseg.constants import OUT_FAILED, OUT_TOMOS
from membraneseg.engine.core import io
from membraneseg.engine.preprocessing import recipes
from membraneseg.protocols.base import EngineKilled

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

    def test_an_engine_killed_by_the_stop_is_not_a_failed_tomogram(self):
        """Scipion's stop kills the engine a moment before the protocol. A step that saw its engine die then must
        not record the tomogram as failed: the continued run would register it in the failed set instead of
        doing it again (the race the test above once lost on a loaded machine)."""
        from membraneseg.protocols import ProtMembraneSegPreprocess
        prot = self.newProtocol(ProtMembraneSegPreprocess, inputTomograms=self.tomograms)
        prot.makePathsAndClean()
        for code, signum in ((-signal.SIGKILL, signal.SIGKILL), (128 + signal.SIGTERM, signal.SIGTERM)):
            killed = subprocess.CalledProcessError(code, "membraneseg preprocess")
            with mock.patch.object(Plugin, "runEngine", side_effect=killed):
                with self.assertRaisesRegex(EngineKilled, "killed by signal %d" % signum):
                    prot.processStep("second")
            self.assertFalse(os.path.exists(prot._failurePath("second")))
        refused = subprocess.CalledProcessError(2, "membraneseg preprocess")   # a plain failure still is one
        with mock.patch.object(Plugin, "runEngine", side_effect=refused):
            prot.processStep("second")
        self.assertTrue(os.path.exists(prot._failurePath("second")))
