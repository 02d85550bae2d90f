"""The model environment for real: built from the plugin's own definition (``Plugin.defineBinaries``, what
``scipion3 installb`` runs) in a scratch folder, then "segment membranes" with the plugin set to enter it. The
engine job must run inside that environment, not in Scipion's Python: its log names the environment's
interpreter.

Slow (it installs TensorFlow into a new venv: about a minute with pip's cache, several without). Skips, saying
why, where the environment cannot be built (no network, no disk) or where conda would be used (this test builds
the venv kind only), or when MEMBRANESEG_SKIP_ENV_BUILD is set.
"""
import os
import shutil
import subprocess
import tempfile
import unittest

from pyworkflow.tests import BaseTest, setupTestProject

from membraneseg import Plugin
from membraneseg.constants import ENV_ACTIVATION_VAR, OUT_MASKS
from membraneseg.protocols import ProtMembraneSegSegment
from membraneseg.tests.common import import_tomograms, make_phantoms


class _Recorder:
    """Stands in for Scipion's install Environment: keeps what the plugin asks it to install."""

    def __init__(self):
        self.packages = []

    def addPackage(self, name, **kwargs):
        self.packages.append(dict(kwargs, name=name))


class TestModelEnvironment(BaseTest):
    @classmethod
    def setUpClass(cls):
        if os.environ.get("MEMBRANESEG_SKIP_ENV_BUILD"):
            raise unittest.SkipTest("MEMBRANESEG_SKIP_ENV_BUILD is set")
        if Plugin._condaAvailable():
            raise unittest.SkipTest("conda is present, so the plugin would build a conda environment; this test "
                                    "builds the venv kind only")
        recorder = _Recorder()
        Plugin.defineBinaries(recorder)
        (package,) = recorder.packages
        ((command, flag),) = package["commands"]
        cls.tmp = tempfile.mkdtemp(prefix="membraneseg-env-")
        build = subprocess.run(command, shell=True, cwd=cls.tmp, capture_output=True, text=True, timeout=1800)
        if build.returncode != 0 or not os.path.exists(os.path.join(cls.tmp, flag)):
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise unittest.SkipTest("the model environment could not be built here (%s): %s"
                                    % (command, (build.stderr or build.stdout)[-500:]))
        cls.python = os.path.join(cls.tmp, "venv", "bin", "python")
        cls.saved = os.environ.get(ENV_ACTIVATION_VAR)
        # what Plugin._defaultActivation gives for a venv in EM_ROOT, pointed at this one
        os.environ[ENV_ACTIVATION_VAR] = ". %s" % os.path.join(cls.tmp, "venv", "bin", "activate")
        setupTestProject(cls)
        folder = cls.getOutputPath("tomos")
        make_phantoms(folder, seeds=(7,), shape=(12, 96, 96))
        cls.tomograms = import_tomograms(cls, folder)

    @classmethod
    def tearDownClass(cls):
        if cls.saved is None:
            os.environ.pop(ENV_ACTIVATION_VAR, None)
        else:
            os.environ[ENV_ACTIVATION_VAR] = cls.saved
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_segment_runs_inside_the_model_environment(self):
        prot = self.newProtocol(ProtMembraneSegSegment, inputTomograms=self.tomograms, mode=0, binThreads=1)
        self.launchProtocol(prot)
        self.assertEqual(getattr(prot, OUT_MASKS).getSize(), 1)
        with open(prot.getStdoutLog()) as f:       # the command Scipion ran
            self.assertIn(os.path.join(self.tmp, "venv", "bin", "activate"), f.read())
        with open(prot.getStderrLog()) as f:       # the engine's own log: which Python ran it
            self.assertIn("segment, Python %s" % self.python, f.read())
