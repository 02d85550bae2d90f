"""``membraneseg evaluate`` (metrics against reference masks) and ``membraneseg clean`` (re-threshold and clean
probability maps or masks). Neither needs TensorFlow or a GPU."""
import logging
import os

from . import clean, evaluate, io
from .cli import _compute_options, expand_inputs

log = logging.getLogger("membraneseg")


def probability(text):
    value = float(text)
    if not 0 <= value <= 1:
        raise ValueError("not a probability in [0, 1]")
    return value


def add_evaluate(sub):
    p = sub.add_parser("evaluate", help="compare predicted masks or probability maps with reference masks",
                       description="Pairs predictions and references by tomogram id: the file name without "
                                   "folder, extension and the suffixes %s (or give --pairs). Reports per "
                                   "tomogram and pooled: accuracy, precision, recall, F1, Dice, IoU, a "
                                   "boundary-tolerant Dice and mCov (mean best IoU of the reference's connected "
                                   "pieces); for probability maps also the precision-recall curve and the "
                                   "threshold with the best F1." % ", ".join(evaluate.NAME_SUFFIXES))
    p.add_argument("--pred", nargs="+", default=[], metavar="FILE",
                   help="predicted masks or probability maps (MRC, TIFF/PNG), or folders of them")
    p.add_argument("--ref", nargs="+", default=[], metavar="FILE",
                   help="reference masks or label maps, or folders of them")
    p.add_argument("--pairs", metavar="FILE.json",
                   help="instead of --pred/--ref: a JSON list of {\"tsId\", \"pred\", \"ref\", optional "
                        "\"threshold\", \"kind\"}")
    p.add_argument("--allow-unmatched", action="store_true",
                   help="skip tomograms that have a prediction or a reference but not both (default: refuse)")
    p.add_argument("--threshold", type=probability, metavar="P",
                   help="probability (0-1) at or above which a voxel of a probability map is membrane (default: "
                        "the threshold recorded for each map in --pairs, else %g)" % evaluate.DEFAULT_THRESHOLD)
    p.add_argument("--kind", choices=evaluate.KINDS, default="auto",
                   help="what the predictions hold (default auto: fractional values mean a probability map)")
    p.add_argument("--tolerance", type=float, default=evaluate.DEFAULT_TOLERANCE, metavar="VOXELS",
                   help="boundary tolerance in voxels for the tolerant Dice: a predicted voxel this close to a "
                        "reference voxel counts as right, and vice versa (default %g; 0 gives the plain Dice)"
                        % evaluate.DEFAULT_TOLERANCE)
    p.add_argument("--per-slice", action="store_true",
                   help="measure distances and connected pieces within each z-slice (2D), as for stacks of "
                        "annotated slices (default: in 3D)")
    p.add_argument("--ref-labels", type=int, nargs="+", metavar="N",
                   help="label values of the reference that are membrane (default: every non-zero value), e.g. "
                        "1 2 for the membranes and vesicles of 'membraneseg phantoms --kind cell'")
    p.add_argument("--no-mcov", action="store_true",
                   help="skip mCov (saves the two int32 instance maps, 8 bytes per voxel)")
    p.add_argument("--json", metavar="FILE", help="write the full report (with the precision-recall curve) here")
    _compute_options(p)
    p.set_defaults(func=cmd_evaluate, needs_tensorflow=False)


def cmd_evaluate(args):
    if args.tolerance < 0:
        raise SystemExit("--tolerance must be 0 or more voxels")
    if args.pairs:
        if args.pred or args.ref:
            raise SystemExit("give either --pairs or --pred/--ref, not both")
        pairs = evaluate.read_pairs(args.pairs)
    elif args.pred and args.ref:
        pairs = evaluate.pair_by_name(expand_inputs(args.pred), expand_inputs(args.ref), args.allow_unmatched)
    else:
        raise SystemExit("give --pred and --ref (files or folders), or --pairs FILE.json")
    if args.kind != "auto":
        for pair in pairs:
            pair.kind = args.kind
    report = evaluate.evaluate(pairs, args.threshold, args.tolerance, args.per_slice, args.ref_labels,
                               instances=not args.no_mcov)
    if args.json:
        evaluate.write_report(report, args.json)
    print(evaluate.format_table(report))


def add_clean(sub):
    p = sub.add_parser("clean", help="re-threshold probability maps and clean masks (no network needed)",
                       description="Per input: threshold (probability >= P), optional closing of each z-slice, "
                                   "removal of connected pieces smaller than a size, optional one label per "
                                   "piece. Writes <stem>%s.mrc (.tif for 2D images; a trailing _prob or _mask of "
                                   "the stem is dropped) and <stem>%s.json with what was done."
                                   % (clean.CLEAN_SUFFIX, clean.CLEAN_SUFFIX))
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="probability maps or masks (MRC, TIFF), or folders")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the results")
    p.add_argument("--threshold", type=probability, metavar="P",
                   help="probability (0-1) at or above which a voxel is membrane (default %g; not used for "
                        "masks)" % clean.DEFAULT_THRESHOLD)
    p.add_argument("--kind", choices=evaluate.KINDS, default="auto",
                   help="what the inputs hold (default auto: fractional values mean a probability map)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--min-voxels", type=float, default=0, metavar="N",
                      help="remove connected pieces of fewer than N voxels (default 0: keep all)")
    size.add_argument("--min-volume", type=float, metavar="NM3",
                      help="remove connected pieces smaller than this volume in nm³ (uses the voxel size; a "
                           "small vesicle of 20 nm radius with a 4 nm membrane is about 20000 nm³)")
    p.add_argument("--pixel-size", type=float, metavar="Å",
                   help="voxel size in Å; overrides the header (needed for --min-volume when it says 0 or 1 Å)")
    p.add_argument("--closing", type=int, default=0, metavar="PX",
                   help="close gaps with a PX x PX square on each z-slice (the authors use 5; default 0: off)")
    p.add_argument("--labels", action="store_true",
                   help="write one label per connected piece (1, 2, ...) instead of a 0/1 mask")
    _compute_options(p)
    p.set_defaults(func=cmd_clean, needs_tensorflow=False)


def cmd_clean(args):
    if args.closing < 0 or args.min_voxels < 0 or (args.min_volume or 0) < 0:
        raise SystemExit("--closing, --min-voxels and --min-volume must not be negative")
    inputs = expand_inputs(args.inputs)
    outputs = [clean.output_path(i, args.output) for i in inputs]
    for out in set(outputs):
        if outputs.count(out) > 1:
            same = [i for i, o in zip(inputs, outputs) if o == out]
            raise io.InputError(same[1], "would overwrite the result of %s (%s); clean them into separate "
                                         "folders" % (same[0], out))
    os.makedirs(args.output, exist_ok=True)
    unit, size = ("nm3", args.min_volume) if args.min_volume is not None else ("voxels", args.min_voxels)
    for path, out in zip(inputs, outputs):
        record = clean.clean_file(path, out, args.threshold, size, unit, args.closing, args.labels, args.pixel_size,
                                  args.kind)
        print("%s\t%s\t%s pieces kept\t%d removed" % (path, out, "all" if record["pieces_kept"] is None
                                                       else record["pieces_kept"], record["pieces_removed"]))
