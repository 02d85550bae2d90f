"""Scripting membraneseg with pyworkflow: create a project, import tomograms, preprocess, segment, read the masks.

    scipion3 python examples/scripted_workflow.py TOMO_FOLDER --pixel-size 13.68 --bin 2
    .venv/bin/python examples/scripted_workflow.py --phantoms 2      # on phantom tomograms it makes first

For each tomogram it prints the mask's path and the fraction of its voxels marked as membrane. Without the
``scipion3`` launcher (as in this repository's .venv) it sets up a headless Scipion under --workdir.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # run from a clone too

from membraneseg.tests import headless  # noqa: E402  (must configure before pyworkflow is imported)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", help="folder with the tomograms to segment (MRC)")
    parser.add_argument("--pattern", default="*.mrc", help="which files of the folder to import (default *.mrc)")
    parser.add_argument("--pixel-size", type=float, default=10.0,
                        help="pixel size of the tomograms, in Å/px (default 10)")
    parser.add_argument("--bin", type=int, default=1,
                        help="binning factor applied before segmenting, 1 for none (default 1)")
    parser.add_argument("--phantoms", type=int, default=0, metavar="N",
                        help="make N phantom tomograms (10 Å/px) in --workdir and segment them instead of FOLDER")
    parser.add_argument("--workdir", default=os.path.abspath("scripted-workflow"),
                        help="folder for the phantoms and, without the scipion3 launcher, Scipion's data "
                             "(default ./scripted-workflow)")
    parser.add_argument("--project", help="name of the new project (default membraneseg_scripted_<date_time>)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per job (default 2)")
    args = parser.parse_args()
    if not args.folder and not args.phantoms:
        parser.error("give a FOLDER of tomograms, or --phantoms N")
    return args


def make_phantoms(folder, count):
    """Simple phantoms through the engine's command line: <name>.mrc and <name>_labels.mrc per phantom."""
    from membraneseg.engine import cli
    if cli.main(["phantoms", "-o", folder, "--count", str(count), "--kind", "simple", "--seed", "100"]):
        raise SystemExit("could not make phantoms in %s" % folder)


def run(project, prot):
    """Launch and wait; returns the protocol as stored after its run (with its outputs)."""
    project.launchProtocol(prot, wait=True)
    prot = project.getProtocol(prot.getObjId())
    if not prot.isFinished():
        raise SystemExit("%s did not finish (%s); see %s" % (prot.getRunName(), prot.getStatusMessage(),
                                                             prot.getLogPaths()[0]))
    return prot


def main():
    args = parse_args()
    if "SCIPION_HOME" not in os.environ:
        # not under the scipion3 launcher: a headless Scipion in this Python, the engine in it too. Under the
        # launcher, Scipion's own configuration holds, and the engine runs in the plugin's model environment.
        headless.configure(os.path.join(args.workdir, "scipion-userdata"))

    import mrcfile
    from pyworkflow.project import Manager
    from tomo.protocols import ProtImportTomograms

    from membraneseg.constants import OUT_MASKS, OUT_TOMOS
    from membraneseg.protocols import ProtMembraneSegPreprocess, ProtMembraneSegSegment
    from membraneseg.protocols.protocol_preprocess import BIN_FACTOR, BIN_NONE

    folder, exclude = os.path.abspath(args.folder or ""), ""
    if args.phantoms:
        folder, exclude, args.pixel_size = os.path.join(args.workdir, "phantoms"), "_labels", 10.0
        make_phantoms(folder, args.phantoms)

    project = Manager().createProject(args.project or time.strftime("membraneseg_scripted_%Y%m%d_%H%M%S"))
    os.chdir(project.getPath())     # pyworkflow finds a project's files relative to the working directory
    print("Scipion project: %s" % project.getPath())
    imported = run(project, project.newProtocol(ProtImportTomograms, filesPath=folder, filesPattern=args.pattern,
                                                exclusionWords=exclude, samplingRate=args.pixel_size))
    # bin and normalise only: the shipped model was trained without EED and CLAHE, and a model should see the
    # preprocessing it was trained with
    pre = run(project, project.newProtocol(ProtMembraneSegPreprocess, inputTomograms=imported.Tomograms,
                                           binMode=BIN_FACTOR if args.bin > 1 else BIN_NONE, binFactor=args.bin,
                                           doEed=False, doClahe=False, binThreads=args.threads))
    seg = run(project, project.newProtocol(ProtMembraneSegSegment, inputTomograms=getattr(pre, OUT_TOMOS),
                                           binThreads=args.threads))

    print("\n%-16s %-10s %s" % ("tomogram", "membrane", "mask"))
    for mask in getattr(seg, OUT_MASKS):
        path = os.path.join(project.getPath(), mask.getFileName())
        with mrcfile.mmap(path, mode="r") as mrc:
            fraction = float((mrc.data > 0).mean())
        print("%-16s %-10.4f %s" % (mask.getTsId(), fraction, path))


if __name__ == "__main__":
    main()
