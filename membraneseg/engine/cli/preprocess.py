"""``membraneseg preprocess``: bin, normalise, denoise (EED) and contrast-equalise (CLAHE) one tomogram.

Each step can be switched off; the recipe that ran is written beside the output as ``<stem>_recipe.json``, and
``--recipe`` repeats one (from such a file or from a model), so training and prediction see the same input.
"""
import logging
import os

from ..preprocessing import recipes
from .options import compute_options, read_input

log = logging.getLogger("membraneseg")


def add(sub):
    eed, clahe = recipes.EED_DEFAULTS, recipes.CLAHE_DEFAULTS
    p = sub.add_parser("preprocess", help="bin, normalise, denoise (EED) and CLAHE a tomogram before segmenting "
                                          "or training",
                       description="Steps, in order: binning (off unless asked for), robust normalisation to mean "
                                   "0 and standard deviation 1, 3D edge-enhancing diffusion, and CLAHE on z-slices "
                                   "(output in [0, 1]). Writes OUTPUT (float32 MRC, voxel size updated) and "
                                   "<stem>_recipe.json beside it.")
    p.add_argument("input", metavar="INPUT", help="MRC volume (or a 2D TIFF/PNG image)")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                   help="output file (.mrc; .tif for 2D images), or a folder to write <input stem>.mrc into")
    p.add_argument("--pixel-size", type=float, metavar="Å",
                   help="input pixel size in Å per voxel; overrides the header (needed with --to-pixel-size when "
                        "the header says 0 or 1 Å)")
    p.add_argument("--volumes-only", action="store_true",
                   help="refuse 2D images (the Scipion protocols, whose inputs are tomograms, ask for this)")
    p.add_argument("--recipe", metavar="FILE",
                   help="apply the recipe in FILE (a <stem>_recipe.json, a model card or a model folder) instead "
                        "of the step options below")
    g = p.add_argument_group("binning")
    size = g.add_mutually_exclusive_group()
    size.add_argument("--bin", type=int, metavar="N",
                      help="bin by N in X, Y and Z; an axis of n voxels becomes n // N, the remainder dropped "
                           "evenly at both ends")
    size.add_argument("--to-pixel-size", type=float, metavar="Å",
                      help="bin to this pixel size in Å per voxel (a whole factor when within 0.1%% of one; a "
                           "finer target than the input is not applied)")
    g.add_argument("--no-antialias", action="store_true",
                   help="plain block averaging instead of IMOD's default Lanczos-3 antialiasing filter")
    g.add_argument("--bin-program", metavar="CMD",
                   help="shell command that runs IMOD's binvol (e.g. 'binvol'); whole factors of volumes are "
                        "then binned by it instead of the built-in code")
    g = p.add_argument_group("normalisation")
    g.add_argument("--no-normalize", action="store_true",
                   help="keep the intensities (default: robust mean 0 and standard deviation 1, ignoring the "
                        "0.5%% darkest and brightest voxels, so gold beads do not set the scale)")
    g = p.add_argument_group("edge-enhancing diffusion (EED)")
    g.add_argument("--no-eed", action="store_true", help="skip the denoising")
    g.add_argument("--eed-sigma", type=float, default=eed["sigma"], metavar="S",
                   help="Gaussian pre-smoothing in voxels before the gradients are taken; 0.5-1.0 is advisable "
                        "(default %g)" % eed["sigma"])
    g.add_argument("--eed-iterations", type=int, default=eed["iterations"], metavar="N",
                   help="diffusion iterations; more smooth more (default %d)" % eed["iterations"])
    g.add_argument("--eed-step", type=float, default=eed["step"], metavar="T",
                   help="time step per iteration, dimensionless, at most 0.15 for stability (default %g)"
                        % eed["step"])
    g.add_argument("--eed-k", type=float, metavar="K",
                   help="contrast parameter K in intensity units per voxel (of the normalised volume unless "
                        "--no-normalize): gradients much above K are edges that diffusion does not cross "
                        "(default: the mean gradient, re-estimated every iteration)")
    g.add_argument("--eed-program", metavar="CMD",
                   help="shell command that runs Tomo3D's tomoeed; EED is then run by it instead of the "
                        "built-in code")
    g = p.add_argument_group("contrast-limited adaptive histogram equalisation (CLAHE)")
    g.add_argument("--no-clahe", action="store_true", help="skip CLAHE (the output then keeps the scale of the "
                                                           "previous step)")
    g.add_argument("--clahe-block", type=int, default=clahe["block"], metavar="PX",
                   help="tile size in pixels; a slice W px wide has W // PX tiles across (default %d)"
                        % clahe["block"])
    g.add_argument("--clahe-clip", type=float, default=clahe["clip"], metavar="C",
                   help="clip limit: higher boosts local contrast and noise (default %g)" % clahe["clip"])
    compute_options(p)
    # numba and OpenCV do the work: TensorFlow is not needed (cli._setup may skip it)
    p.set_defaults(func=run, needs_tensorflow=False)


def output_path(input_path, output):
    """OUTPUT as given when it names a file, else ``<folder>/<input stem>.mrc``."""
    if os.path.isdir(output) or not os.path.splitext(output)[1]:
        stem = os.path.splitext(os.path.basename(input_path))[0]
        return os.path.join(output, stem + ".mrc")
    return output


def _set_threads(threads):
    if threads:
        import cv2
        import numba
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
        cv2.setNumThreads(threads)


def run(args):
    try:
        recipe = recipes.recipe_from_args(args)
    except ValueError as exc:
        raise SystemExit("preprocess: %s" % exc)
    read_input(args.input, args.volumes_only)   # apply_recipe checks the voxels
    _set_threads(args.threads)
    out = output_path(args.input, args.output)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    programs = {k: v for k, v in (("bin", args.bin_program), ("eed", args.eed_program)) if v}
    record = recipes.apply_recipe(args.input, out, recipe, args.pixel_size, programs)
    log.info("%s: %s -> %s at %.3f Å/px", out, "x".join(map(str, record["applied"]["input_shape"])),
             "x".join(map(str, record["applied"]["output_shape"])), record["applied"]["output_pixel_size"])
    print("%s\t%s\t%s" % (args.input, out, recipes.recipe_path(out)))
