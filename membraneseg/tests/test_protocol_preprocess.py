"""Headless Scipion tests of "preprocess tomograms" on generated phantoms (no download), and of how it finds and
calls IMOD's binvol and Tomo3D's tomoeed."""
import json
import os
import shutil
import tempfile

import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject
from pyworkflow.utils import magentaStr
from tomo.tests.test_base_centralized_layer import TestBaseCentralizedLayer

from membraneseg.constants import OUT_FAILED, OUT_TOMOS
from membraneseg.engine.core import io
from membraneseg.engine.preprocessing import recipes
from membraneseg.protocols import ProtMembraneSegPreprocess
from membraneseg.protocols.protocol_preprocess import (BIN_FACTOR, BIN_PIXEL, EXTERNAL, IMOD_HOME_VAR,
                                                       TOMO3D_HOME_VAR, binvolProgram, pluginHome,
                                                       tomoeedProgram)
from membraneseg.tests.common import VOXEL, import_tomograms, make_phantoms

SHAPE = (24, 64, 64)    # Z, Y, X: small, so each run takes seconds


class TestPreprocess(TestBaseCentralizedLayer):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        folder = cls.getOutputPath("tomos")
        make_phantoms(folder, seeds=(1, 2), shape=SHAPE)
        cls.tomograms = import_tomograms(cls, folder)

    def _preprocess(self, **kwargs):
        print(magentaStr("\n==> Preprocessing with %s" % kwargs))
        prot = self.newProtocol(ProtMembraneSegPreprocess, inputTomograms=self.tomograms, numberOfThreads=2,
                                binThreads=1, **kwargs)
        self.launchProtocol(prot)
        return prot

    def test_bin_normalise_eed_clahe(self):
        prot = self._preprocess(binMode=BIN_FACTOR, binFactor=2, eedIterations=3)
        out = getattr(prot, OUT_TOMOS)
        self.checkTomograms(out, expectedSetSize=2, expectedSRate=2 * VOXEL,
                            expectedDimensions=[SHAPE[2] // 2, SHAPE[1] // 2, SHAPE[0] // 2])
        self.assertIsNone(getattr(prot, OUT_FAILED, None))
        for tomo in out:
            vol = io.read(tomo.getFileName())
            self.assertAlmostEqual(vol.voxel_size, 2 * VOXEL, places=3)
            self.assertGreaterEqual(float(vol.data.min()), 0.0)   # CLAHE output is in [0, 1]
            self.assertLessEqual(float(vol.data.max()), 1.0)
            with open(recipes.recipe_path(tomo.getFileName())) as f:
                record = json.load(f)
            self.assertEqual(record["applied"]["output_pixel_size"], 2 * VOXEL)
            recipe = json.loads(tomo.membranesegRecipe.get())
            self.assertEqual(recipe, {k: v for k, v in record.items() if k != "applied"})
            self.assertEqual(recipe["eed"]["iterations"], 3)
            self.assertEqual(tomo.membranesegPrograms.get(), "binning: built-in; EED: built-in")
        summary = " ".join(prot.summary())
        self.assertIn("2 tomograms preprocessed, now at 20.000 Å/px", summary)
        self.assertIn("binning: built-in; EED: built-in", summary)
        self.assertIn("Fernandez2003", prot._citations())
        graph = self.proj.getSourceGraph(True)    # refreshed: output ids are aliases only once runs are loaded
        self.assertIn(graph.getNode(out.strId()), graph.getNode(self.tomograms.strId()).getChildren())

    def test_missing_imod_and_tomo3d_fall_back_to_built_in(self):
        if binvolProgram(pluginHome("imod", IMOD_HOME_VAR)) or tomoeedProgram(pluginHome("tomo3d",
                                                                                         TOMO3D_HOME_VAR)):
            self.skipTest("IMOD or Tomo3D is installed here")
        prot = self._preprocess(binMode=BIN_PIXEL, binPixelSize=20.0, antialias=False, binProgram=EXTERNAL,
                                doNormalize=False, eedIterations=2, eedProgram=EXTERNAL, doClahe=False)
        self.assertEqual(len(prot.warnings()), 2)
        out = getattr(prot, OUT_TOMOS)
        self.checkTomograms(out, expectedSetSize=2, expectedSRate=2 * VOXEL)
        summary = " ".join(prot.summary())
        self.assertIn("IMOD binvol was asked for but was not found", summary)
        self.assertIn("Tomo3D tomoeed was asked for but was not found", summary)

    def test_engine_options_follow_the_form(self):
        prot = self.newProtocol(ProtMembraneSegPreprocess, inputTomograms=self.tomograms, binMode=BIN_PIXEL,
                                binPixelSize=17.5, antialias=False, doNormalize=False, eedAutoK=False, eedK=0.4,
                                eedStep=0.15, doClahe=False)
        self.assertEqual(prot.engineOptions({"bin": "binvol", "eed": "/t3d/tomoeed"}),
                         ["--to-pixel-size", "17.5", "--no-antialias", "--no-normalize", "--eed-sigma", "0.5",
                          "--eed-iterations", "10", "--eed-step", "0.15", "--eed-k", "0.4", "--no-clahe",
                          "--bin-program", "binvol", "--eed-program", "/t3d/tomoeed"])
        prot = self.newProtocol(ProtMembraneSegPreprocess, inputTomograms=self.tomograms, doEed=False)
        self.assertEqual(prot.engineOptions({}), ["--no-eed", "--clahe-block", "32", "--clahe-clip", "3"])


class TestFindingExternalPrograms(BaseTest):
    """Where binvol and tomoeed are looked for, and the commands run (the binaries are not installed here)."""

    def _fakeProgram(self, *parts):
        path = os.path.join(self.folder, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n")
        return path

    def setUp(self):
        # a space in the folder name checks that paths are quoted for the shell
        self.folder = tempfile.mkdtemp(prefix="membraneseg programs ")
        self.addCleanup(shutil.rmtree, self.folder)

    def test_binvol_from_imod_home_or_path(self):
        binvol = self._fakeProgram("IMOD", "bin", "binvol")
        home = os.path.dirname(os.path.dirname(binvol))
        self.assertEqual(binvolProgram(home, which=lambda name: None), "'%s'" % binvol)
        setup = self._fakeProgram("IMOD", "IMOD-linux.sh")
        self.assertEqual(binvolProgram(home, which=lambda name: None), ". '%s' && '%s'" % (setup, binvol))
        self.assertEqual(binvolProgram(None, which=lambda name: "/usr/local/IMOD/bin/" + name),
                         "/usr/local/IMOD/bin/binvol")
        self.assertIsNone(binvolProgram(self.folder, which=lambda name: None))
        command = recipes.binvol_command(binvolProgram(home), "/in/t 1.mrc", "/out/t.mrc", 2)
        self.assertEqual(command, ". '%s' && '%s' -input '/in/t 1.mrc' -output /out/t.mrc -binning 2 "
                                  "-antialias 6" % (setup, binvol))

    def test_tomoeed_from_tomo3d_home_or_path(self):
        tomoeed = self._fakeProgram("tomo3d", "tomoeed")
        home = os.path.dirname(tomoeed)
        self.assertEqual(tomoeedProgram(home, which=lambda name: None), "'%s'" % tomoeed)
        self.assertEqual(tomoeedProgram(None, which=lambda name: "/opt/tomo3d/" + name), "/opt/tomo3d/tomoeed")
        self.assertIsNone(tomoeedProgram(None, which=lambda name: None))

    def test_plugin_home_falls_back_to_the_variable(self):
        os.environ["MEMBRANESEG_TEST_HOME"] = self.folder
        try:
            self.assertEqual(pluginHome("no_such_scipion_plugin", "MEMBRANESEG_TEST_HOME"), self.folder)
        finally:
            del os.environ["MEMBRANESEG_TEST_HOME"]
        self.assertIsNone(pluginHome("no_such_scipion_plugin", "MEMBRANESEG_TEST_UNSET"))


class TestPreprocessFailures(BaseTest):
    """A tomogram the engine cannot read goes to the failed set with its reason; the others are processed."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        folder = cls.getOutputPath("tomos")
        make_phantoms(folder, seeds=(5,), shape=SHAPE)
        with open(os.path.join(folder, "phantom5.mrc"), "rb") as f:
            data = f.read()
        with open(os.path.join(folder, "truncated.mrc"), "wb") as f:
            f.write(data[: len(data) // 2])
        cls.tomograms = import_tomograms(cls, folder)

    def test_bad_tomogram_goes_to_failed_set(self):
        prot = self.newProtocol(ProtMembraneSegPreprocess, inputTomograms=self.tomograms, eedIterations=1,
                                numberOfThreads=2, binThreads=1)
        self.launchProtocol(prot)
        self.assertEqual(getattr(prot, OUT_TOMOS).getSize(), 1)
        failed = getattr(prot, OUT_FAILED)
        self.assertEqual(failed.getSize(), 1)
        self.assertEqual(failed.getFirstItem().getTsId(), "truncated")
        reason = open(prot._getExtraPath("truncated", "FAILED.txt")).read()
        self.assertIn("not a readable MRC file", reason)
        leftovers = [f for f in os.listdir(prot._getExtraPath("truncated")) if f.endswith((".mrc", ".json"))]
        self.assertEqual(leftovers, [])
        self.assertTrue(np.isfinite(io.read(getattr(prot, OUT_TOMOS).getFirstItem().getFileName()).data).all())
