"""Segmenting through a cluster queue: the engine command reaches the job script that Scipion submits.

The hosts.conf is the SLURM section of docs/cluster-and-gpu.rst whose submit command is a fake ``sbatch``: it
records the job script it receives, runs it as a node would, and answers with a job id. The protocol is launched with
useQueue and QUEUE_FOR_JOBS, so every runJob (one engine command per tomogram) becomes a job.
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

FAKE_SBATCH = """#!/bin/bash
# a stand-in for sbatch: keep the job script, run it as a node would, answer as sbatch does
cp "$1" %(record)s/
bash "$1" > "$1.out" 2>&1
echo "Submitted batch job 4242"
"""



def hosts_conf(sbatch):
    """The SLURM section of docs/cluster-and-gpu.rst with sbatch replaced by the fake, squeue and scancel by
    harmless commands."""
    conf = slurm.documented_hosts_conf()
    for real, fake in (("sbatch %_(JOB_SCRIPT)s", "bash %s %%_(JOB_SCRIPT)s" % sbatch),
                       ("scancel %_(JOB_ID)s", "true %_(JOB_ID)s"), ("squeue -h -j %_(JOB_ID)s", "true %_(JOB_ID)s")):
        assert real in conf, real
        conf = conf.replace(real, fake)
    return conf


class TestSegmentOnQueue(BaseTest):
    @classmethod
    def setUpClass(cls):
        if slurm.documented_hosts_conf() is None:
            raise unittest.SkipTest("docs/cluster-and-gpu.rst, whose SLURM section this test runs, is not here")
        cls.tmp = tempfile.mkdtemp(prefix="membraneseg-queue-")
        cls.record = os.path.join(cls.tmp, "submitted")
        os.makedirs(cls.record)
        sbatch = os.path.join(cls.tmp, "fake_sbatch.sh")
        with open(sbatch, "w") as f:
            f.write(FAKE_SBATCH % dict(record=cls.record))
        cls.restore = slurm.use_hosts_conf(os.path.join(cls.tmp, "hosts.conf"), hosts_conf(sbatch))
        setupTestProject(cls)
        folder = cls.getOutputPath("tomos")
        make_phantoms(folder, seeds=(5,), shape=(12, 96, 96))
        cls.tomograms = import_tomograms(cls, folder)

    @classmethod
    def tearDownClass(cls):
        cls.restore()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_engine_command_is_submitted(self):
        prot = slurm.segment_on_queue(self, self.tomograms, "gpu", JOB_MEMORY="8192", JOB_GRES="gpu:1")
        scripts = glob.glob(os.path.join(self.record, "*.job"))
        self.assertEqual(len(scripts), 1, "one job per tomogram")
        with open(scripts[0]) as f:
            script = f.read()
        self.assertIn("#SBATCH --mem=8192M", script)
        self.assertIn("#SBATCH --gres=gpu:1", script)
        self.assertIn("python -m membraneseg.engine segment", script)
        self.assertIn(self.tomograms.getFirstItem().getFileName(), script)
        self.assertIn("--mode preview", script)
        # the job ran: its outputs were registered
        self.assertEqual(getattr(prot, OUT_MASKS).getSize(), 1)
