"""``membraneseg evaluate``: metrics of predicted masks or probability maps against reference masks (no network,
no TensorFlow)."""
from ..core.inputs import expand_inputs
from ..measurement import evaluate
from .options import compute_options, probability


def add(sub):
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
    compute_options(p)
    p.set_defaults(func=run, needs_tensorflow=False)


def run(args):
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
