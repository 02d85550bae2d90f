"""``membraneseg clean``: re-threshold probability maps and clean masks (closing, small pieces, one label per
piece) without running the network (no TensorFlow)."""
import os

from ..core.inputs import expand_inputs
from ..measurement import clean, evaluate
from .options import compute_options, probability, refuse_collisions


def add(sub):
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
    compute_options(p)
    p.set_defaults(func=run, needs_tensorflow=False)


def run(args):
    if args.closing < 0 or args.min_voxels < 0 or (args.min_volume or 0) < 0:
        raise SystemExit("--closing, --min-voxels and --min-volume must not be negative")
    inputs = expand_inputs(args.inputs)
    outputs = [clean.output_path(i, args.output) for i in inputs]
    refuse_collisions(inputs, outputs, "result")
    os.makedirs(args.output, exist_ok=True)
    unit, size = ("nm3", args.min_volume) if args.min_volume is not None else ("voxels", args.min_voxels)
    for path, out in zip(inputs, outputs):
        record = clean.clean_file(path, out, args.threshold, size, unit, args.closing, args.labels, args.pixel_size,
                                  args.kind)
        print("%s\t%s\t%s pieces kept\t%d removed" % (path, out, "all" if record["pieces_kept"] is None
                                                       else record["pieces_kept"], record["pieces_removed"]))
