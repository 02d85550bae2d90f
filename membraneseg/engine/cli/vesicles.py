"""``membraneseg vesicles``: find the vesicles in membrane masks or probability maps (no network needed): their
centres, sizes, completeness and confidence, as a CSV table, a label map and a picture."""
import os

from ..core.inputs import expand_inputs
from ..measurement import evaluate
from ..vesicles import files, find
from .options import compute_options, probability, refuse_collisions

DEFAULTS = find.Search()


def add(sub):
    p = sub.add_parser("vesicles", help="find vesicles in membrane masks: centres, diameters, completeness",
                       description="Per input: the closed, roughly spherical membrane compartments in a size "
                                   "range, found as rings of membrane around a lumen in each z-slice, chained "
                                   "across z and fitted with a sphere or an ellipsoid. Writes <id>%s.csv (one row "
                                   "per vesicle: centre x y z in voxels, diameter and semi-axes in nm, "
                                   "completeness, confidence), <id>%s.mrc (one label per vesicle), <id>%s.json, "
                                   "and with --png a picture." % ((files.SUFFIX,) * 3))
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="membrane masks, label maps or probability maps (MRC, TIFF), or folders of them")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the results")
    p.add_argument("--min-diameter", type=float, default=DEFAULTS.min_diameter, metavar="NM",
                   help="smallest outer diameter of a vesicle, in nm, at the middle of its membrane (default %g)"
                        % DEFAULTS.min_diameter)
    p.add_argument("--max-diameter", type=float, default=DEFAULTS.max_diameter, metavar="NM",
                   help="largest diameter in nm (default %g); larger closed compartments (organelles, cells) "
                        "are not vesicles" % DEFAULTS.max_diameter)
    p.add_argument("--min-completeness", type=probability, default=DEFAULTS.min_completeness, metavar="F",
                   help="smallest fraction (0-1) of the fitted surface that must have membrane on it (default %g; "
                        "the missing wedge leaves a whole vesicle about 0.7-0.8 complete in a tomogram)"
                        % DEFAULTS.min_completeness)
    p.add_argument("--threshold", type=probability, metavar="P",
                   help="for probability maps: probability (0-1) at or above which a voxel is membrane (default "
                        "%g)" % evaluate.DEFAULT_THRESHOLD)
    p.add_argument("--kind", choices=evaluate.KINDS, default="auto",
                   help="what the inputs hold (default auto: fractional values mean a probability map)")
    p.add_argument("--membrane-labels", type=int, nargs="+", metavar="V",
                   help="in a label map, the values that are membrane (a phantom's: 1 2); default: every non-zero "
                        "voxel of a mask or label map")
    p.add_argument("--pixel-size", type=float, metavar="Å",
                   help="voxel size in Å; overrides the header (needed when it says 0 or 1 Å)")
    p.add_argument("--tomograms", nargs="+", metavar="TOMO",
                   help="the tomograms of the inputs, in the same order, as the background of --png")
    p.add_argument("--png", action="store_true",
                   help="also write <id>%s.png: vesicles drawn over three z-slices, and a histogram of diameters"
                        % files.SUFFIX)
    compute_options(p)
    p.set_defaults(func=run, needs_tensorflow=False)


def run(args):
    search = find.Search(args.min_diameter, args.max_diameter, args.min_completeness)
    try:
        search.check()
    except ValueError as exc:
        raise SystemExit(str(exc))
    inputs = expand_inputs(args.inputs)
    tomograms = args.tomograms or [None] * len(inputs)
    if len(tomograms) != len(inputs):
        raise SystemExit("--tomograms gives %d files for %d inputs; give one per input, in the same order"
                         % (len(tomograms), len(inputs)))
    outputs = [files.output_paths(i, args.output)["csv"] for i in inputs]
    refuse_collisions(inputs, outputs, "vesicles")
    os.makedirs(args.output, exist_ok=True)
    for path, tomogram in zip(inputs, tomograms):
        record = files.find_file(path, args.output, search, args.threshold, args.kind, args.pixel_size, tomogram,
                                 args.png, args.membrane_labels)
        print("%s\t%d vesicles\t%s" % (path, len(record["vesicles"]), record["outputs"]["csv"]))
