"""What the protocol tests share: phantom data written to disk, the engine run as a subprocess, tomogram import
and source-relation look-ups."""
import os
import subprocess

from pyworkflow.utils import magentaStr
from tomo.protocols import ProtImportTomograms

from membraneseg.engine.core import io
from membraneseg.engine.simulation import phantoms

VOXEL = 10.0
SHAPE = (40, 128, 128)       # Z, Y, X


def engine(command, *args):
    """Run an engine command in a subprocess the way the protocols do: inside the model environment (the plugin's
    activation), which in an installed Scipion is not Scipion's own Python and has TensorFlow."""
    from membraneseg import Plugin
    line = "%s %s" % (Plugin.getEngineProgram(useGpu=False), Plugin.engineArguments(command, args, useGpu=False))
    subprocess.run(line, shell=True, check=True, executable="/bin/bash")


def make_phantoms(folder, seeds, shape=SHAPE):
    """Write phantom tomograms and their labels; returns {name: labels path}."""
    os.makedirs(folder, exist_ok=True)
    truth = {}
    for seed in seeds:
        tomo, labels = phantoms.simple_phantom(shape, VOXEL, seed=seed, snr=2.0)
        name = "phantom%d" % seed
        io.write(os.path.join(folder, name + ".mrc"), tomo, VOXEL)
        truth[name] = os.path.join(os.path.dirname(folder), name + "_labels.mrc")
        io.write(truth[name], labels, VOXEL)
    return truth


def sourceParents(project, obj):
    """Ids of the objects recorded as sources of ``obj``."""
    return {p.getObjId() for p in project.getSourceParents(obj)}


def import_tomograms(test, folder, pattern="*.mrc", samplingRate=VOXEL):
    print(magentaStr("\n==> Importing tomograms from %s" % folder))
    prot = test.newProtocol(ProtImportTomograms, filesPath=folder, filesPattern=pattern, samplingRate=samplingRate)
    test.launchProtocol(prot)
    return prot.Tomograms
