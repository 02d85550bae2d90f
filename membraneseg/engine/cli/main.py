"""The ``membraneseg`` command line: the engine without Scipion.

    membraneseg segment INPUT... -o OUTDIR      segment MRC volumes or 2D images
    membraneseg phantoms -o OUTDIR              synthetic tomograms with exact labels
    membraneseg train -o MODELDIR ...           train or fine-tune a model
    membraneseg preprocess INPUT -o OUTPUT      binning, normalisation, EED, CLAHE
    membraneseg evaluate --pred ... --ref ...   metrics against reference masks
    membraneseg clean INPUT... -o OUTDIR        re-threshold and clean probability maps
    membraneseg vesicles INPUT... -o OUTDIR     vesicles in membrane masks: centres, diameters, a table
    membraneseg inspect-model [PATH]            load a model folder and print its card
    membraneseg gan train -o GANDIR ...         train the Pix2Pix GAN (mask -> tomogram slice) on pairs
    membraneseg gan generate GANDIR -o OUTDIR   synthetic image/mask pairs from a trained GAN

``python -m membraneseg.engine`` is the same program. Bad input ends with one line naming the file and the
problem, and exit status 2; an unexpected failure keeps its traceback and exits with 1.
"""
import argparse
import logging
import os
import sys

from ... import __version__
from . import clean, evaluate, gan, inspect_model, phantoms, preprocess, segment, train, vesicles

log = logging.getLogger("membraneseg")

EXIT_BAD_INPUT = 2
COMMANDS = (segment, phantoms, train, inspect_model, preprocess, evaluate, clean, vesicles, gan)


def setup_runtime(args):
    """Logging and compute settings; must run before TensorFlow is imported."""
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    threads = getattr(args, "threads", 0)
    if threads:
        for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
            os.environ[var] = str(threads)
    if getattr(args, "device", None) == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    # commands without a network (preprocess, evaluate, clean, phantoms) never pay for importing TensorFlow
    if getattr(args, "needs_tensorflow", True) and (threads or getattr(args, "device", None) == "gpu"):
        import tensorflow as tf
        try:
            if threads:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            # TensorFlow fixes these once it has started: a second command in the same process (a script or a
            # test calling main() twice) keeps the first one's settings
            logging.getLogger(__name__).info("TensorFlow already running: keeping its thread and device settings")


def build_parser():
    parser = argparse.ArgumentParser(prog="membraneseg", description="Membrane and vesicle segmentation of "
                                     "cryo-electron tomograms with the hybrid network of Morales-Martinez et al.")
    parser.add_argument("--version", action="version", version="membraneseg %s" % __version__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    from ..core.io import InputError
    from ..network.modelfile import ModelError
    try:
        setup_runtime(args)   # may import TensorFlow
        # which environment runs the engine: in Scipion, the model environment, not Scipion's own Python
        log.info("membraneseg %s: %s, Python %s", __version__, args.command, sys.executable)
        args.func(args)
    except (InputError, ModelError) as exc:
        return _refuse(args, str(exc))
    except MemoryError:
        return _refuse(args, "%s ran out of memory: bin the input (membraneseg preprocess --bin 2), lower "
                             "--batch-size, or use a machine with more memory" % args.command)
    except ImportError as exc:  # an environment without TensorFlow or another dependency: say how to mend it
        from ...constants import ENV_NAME
        return _refuse(args, "%s cannot run in the Python environment %s (%s): install the engine's dependencies "
                             "there (pip install 'scipion-em-membraneseg[engine]'), or in Scipion: scipion3 "
                             "installb %s" % (args.command, sys.executable, exc, ENV_NAME))
    return 0


def _refuse(args, reason):
    """Say in one line why the command cannot run (and write it to --error-file); exit status 2."""
    log.error("%s", reason)
    if getattr(args, "error_file", None):
        with open(args.error_file, "w") as f:
            f.write(reason + "\n")
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
