"""Segmenting through a real SLURM queue: a one-node cluster started here (``slurm.LocalSlurm``), the SLURM section
of docs/cluster-and-gpu.rst as Scipion's hosts.conf, word for word, and "segment membranes" with *Use queue* (its
``cpu`` queue: the node has no GPU) and one job per tomogram. The job must pass through sbatch, run on the node,
and its outputs be registered.

Skips, saying why, where the SLURM programs are missing or this is not root; the cluster is stopped afterwards.
"""
import glob
import os
import shutil
import tempfile
import unittest

from pyworkflow.tests import BaseTest, setupTestProject

from membraneseg.constants import OUT_MASKS
from membraneseg.tests import slurm
from membraneseg.tests.common import import_tomograms, make_phantoms

class TestSegmentOnSlurm(BaseTest):
    @classmethod
    def setUpClass(cls):
        why = slurm.unavailable() or (None if slurm.documented_hosts_conf() else "docs/cluster-and-gpu.rst is not here")
        if why:
            raise unittest.SkipTest(why)
        cls.tmp = tempfile.mkdtemp(prefix="membraneseg-slurm-")
        cls.cluster = slurm.LocalSlurm(os.path.join(cls.tmp, "cluster"), partition="cpu").start()
        try:
            cls._setUpProject()
        except BaseException:   # unittest skips tearDownClass when setUpClass fails: stop the daemons here
            cls.tearDownClass()
            raise

    @classmethod
    def _setUpProject(cls):
        # sbatch and squeue find the cluster through SLURM_CONF; the protocol's process inherits the environment
        cls.restore = slurm.use_hosts_conf(os.path.join(cls.tmp, "hosts.conf"), slurm.documented_hosts_conf(),
                                           SLURM_CONF=cls.cluster.conf)
        setupTestProject(cls)
        folder = cls.getOutputPath("tomos")
        make_phantoms(folder, seeds=(6,), shape=(12, 96, 96))
        cls.tomograms = import_tomograms(cls, folder)

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()
        if hasattr(cls, "restore"):
            cls.restore()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_segment_runs_as_a_slurm_job(self):
        prot = slurm.segment_on_queue(self, self.tomograms, "cpu", JOB_MEMORY="8192", JOB_GRES="none")
        self.assertEqual(getattr(prot, OUT_MASKS).getSize(), 1)
        # the job went through sbatch: its script and the node's log of it are there
        scripts = glob.glob(prot._getLogsPath("*.job"))
        self.assertEqual(len(scripts), 1, "one job per tomogram")
        with open(scripts[0]) as f:
            script = f.read()
        self.assertIn("#SBATCH -p cpu", script)
        self.assertIn("#SBATCH --gres=none", script)
        self.assertIn("python -m membraneseg.engine segment", script)
        daemon = self.cluster.log("slurmd.log")
        self.assertRegex(daemon, r"(?i)launching batch job \d+|JobId=\d+")
        with open(prot.getStdoutLog()) as f:
            self.assertRegex(f.read(), r"Launched job with id \d+")
