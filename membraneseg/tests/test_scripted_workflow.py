"""The scripting example, examples/scripted_workflow.py, run as a user runs it (a new process) on phantoms, so that
it cannot go stale: it must finish, print one row per tomogram, and what it prints must match the mask files."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

from membraneseg.engine.core import io

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "examples",
                       "scripted_workflow.py")


class TestScriptedWorkflow(unittest.TestCase):
    def test_example_on_phantoms(self):
        if not os.path.exists(EXAMPLE):
            self.skipTest("%s is not here: examples/ comes with a clone, not with the installed plugin" % EXAMPLE)
        work = tempfile.mkdtemp(prefix="membraneseg-scripted-")
        self.addCleanup(shutil.rmtree, work, ignore_errors=True)
        # the example's project goes to a folder of its own, not to the test projects
        env = dict(os.environ, SCIPION_USER_DATA=os.path.join(work, "userdata"))
        run = subprocess.run([sys.executable, EXAMPLE, "--phantoms", "2", "--bin", "2", "--workdir", work,
                              "--project", "scripted"], env=env, capture_output=True, text=True, timeout=900)
        self.assertEqual(run.returncode, 0, run.stdout[-3000:] + run.stderr[-3000:])
        rows = [row.split() for row in run.stdout.split("\ntomogram")[-1].splitlines()[1:] if row.strip()]
        phantoms = os.path.join(work, "phantoms")
        made = sorted(f[:-len(".mrc")] for f in os.listdir(phantoms) if not f.endswith("_labels.mrc"))
        self.assertEqual(len(made), 2)
        self.assertEqual(sorted(tsId for tsId, _, _ in rows), made)
        for tsId, fraction, path in rows:
            mask = io.read(path)
            labels = np.asarray(io.read(os.path.join(phantoms, tsId + "_labels.mrc")).data) > 0
            self.assertEqual(mask.data.shape, tuple(s // 2 for s in labels.shape))      # binned by 2
            self.assertAlmostEqual(mask.voxel_size, 20.0, places=3)
            self.assertAlmostEqual(float(fraction), float((np.asarray(mask.data) > 0).mean()), places=4)
            # the default model finds the phantoms' membranes: about as many voxels as the labels mark
            self.assertTrue(0.5 < float(fraction) / labels.mean() < 2, (fraction, labels.mean()))
