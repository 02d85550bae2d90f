"""The quick-start demo: a headless Scipion project that segments phantom tomograms with the default model.

It generates a few phantom tomograms with known membranes, imports them into a new Scipion project, runs the
"segment membranes" protocol on them with the model shipped with the plugin, and prints where the masks are and
their Dice against the phantom truth. Run it with ``make demo`` (which installs what is missing first) or
``.venv/bin/python examples/demo.py [--workdir DIR]``.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from membraneseg.tests import headless  # noqa: E402  (must configure before pyworkflow is imported)

VOXEL = 10.0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=os.path.abspath("demo-out"), help="folder for phantoms and project")
    parser.add_argument("--count", type=int, default=3, help="number of phantom tomograms (default 3)")
    args = parser.parse_args()
    headless.configure(os.path.join(args.workdir, "scipion-userdata"))

    import numpy as np
    from pyworkflow.project import Manager
    from tomo.protocols import ProtImportTomograms

    from membraneseg.constants import OUT_MASKS
    from membraneseg.engine.core import io
    from membraneseg.engine.measurement import metrics
    from membraneseg.engine.simulation import phantoms
    from membraneseg.protocols import ProtMembraneSegSegment

    tomoDir = os.path.join(args.workdir, "phantoms")
    truthDir = os.path.join(args.workdir, "truth")
    os.makedirs(tomoDir, exist_ok=True)
    os.makedirs(truthDir, exist_ok=True)
    print("Generating %d phantom tomograms in %s" % (args.count, tomoDir))
    for i in range(args.count):
        tomo, labels = phantoms.simple_phantom((64, 256, 256), VOXEL, seed=1000 + i, snr=1.5)
        io.write(os.path.join(tomoDir, "phantom%d.mrc" % i), tomo, VOXEL)
        io.write(os.path.join(truthDir, "phantom%d.mrc" % i), labels, VOXEL)

    projName = "membraneseg_demo_%s" % time.strftime("%Y%m%d_%H%M%S")
    project = Manager().createProject(projName)
    os.chdir(project.getPath())
    print("Scipion project: %s" % project.getPath())

    imp = project.newProtocol(ProtImportTomograms, filesPath=tomoDir, filesPattern="*.mrc", samplingRate=VOXEL)
    project.launchProtocol(imp, wait=True)
    _check(imp)
    seg = project.newProtocol(ProtMembraneSegSegment, inputTomograms=imp.Tomograms, numberOfThreads=1)
    project.launchProtocol(seg, wait=True)
    seg = project.getProtocol(seg.getObjId())
    _check(seg)

    print("\n%-10s %-8s %s" % ("tomogram", "Dice", "mask"))
    for mask in getattr(seg, OUT_MASKS):
        pred = io.read(mask.getFileName()).data > 0
        ref = io.read(os.path.join(truthDir, os.path.basename(mask.getVolName()))).data > 0
        print("%-10s %-8.3f %s" % (mask.getTsId(), metrics.dice(pred, ref),
                                   os.path.join(project.getPath(), mask.getFileName())))
    print("all-foreground Dice for scale: %.3f" % metrics.dice(np.ones_like(ref), ref))


def _check(prot):
    if not prot.isFinished():
        raise SystemExit("%s did not finish (%s); see %s" % (prot.getRunName(), prot.getStatusMessage(),
                                                             prot.getLogPaths()[0]))


if __name__ == "__main__":
    main()
