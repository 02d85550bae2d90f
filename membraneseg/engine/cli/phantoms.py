"""``membraneseg phantoms``: synthetic tomograms with exact membrane labels."""
import logging
import os

from .options import compute_options

log = logging.getLogger("membraneseg")


def add(sub):
    p = sub.add_parser("phantoms", help="generate synthetic tomograms with exact membrane labels",
                       description="Writes <name>.mrc (the tomogram: membranes dark, mean 0, standard deviation "
                                   "1) and <name>_labels.mrc (label map) per phantom. --kind cell (default): a "
                                   "cell-like specimen (membranes, vesicles, filaments, macromolecules, gold) "
                                   "imaged as a noisy, misaligned tilt series and reconstructed by weighted "
                                   "back-projection; labels 0 background, 1 membrane, 2 vesicle membrane, 3 "
                                   "filament, 4 macromolecule or gold bead. --kind simple: vesicles in noise, "
                                   "quick to make; labels 0 background, 1 membrane.")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    p.add_argument("--count", type=int, default=1, metavar="N", help="number of phantoms (default 1)")
    p.add_argument("--shape", type=int, nargs=3, default=(64, 128, 128), metavar=("Z", "Y", "X"),
                   help="size in voxels (default 64 128 128; the paper's phantoms are 250 500 500)")
    p.add_argument("--voxel-size", type=float, default=10.0, metavar="Å", help="Å per voxel (default 10)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed; phantom i uses S+i (default 0)")
    p.add_argument("--kind", choices=("cell", "simple"), default="cell",
                   help="cell: realistic, with a tilt series and WBP; simple: vesicles in noise (default cell)")
    p.add_argument("--tilt-range", type=float, default=60.0, metavar="DEG",
                   help="cell: tilts from -DEG to +DEG degrees (default 60)")
    p.add_argument("--tilt-step", type=float, default=3.0, metavar="DEG",
                   help="cell: degrees between tilts (default 3)")
    p.add_argument("--snr", type=float, default=None,
                   help="signal-to-noise ratio (a variance ratio, no unit). cell: variance of the noiseless tilt "
                        "series over that of the added noise (default: random in [1, 2] per phantom). simple: "
                        "membrane signal standard deviation over noise standard deviation in the volume "
                        "(default 1.5)")
    p.add_argument("--prefix", default="phantom", help="file name prefix (default phantom)")
    compute_options(p)
    p.set_defaults(func=run, needs_tensorflow=False)


def run(args):
    from ..core import io
    from ..simulation import phantoms, simulate
    if args.snr is not None and args.snr <= 0:
        raise SystemExit("--snr must be positive")
    if min(args.shape) < 8 or args.voxel_size <= 0 or args.count < 1:
        raise SystemExit("--shape needs at least 8 voxels per axis, --voxel-size and --count must be positive")
    if args.kind == "cell" and not (0 <= args.tilt_range <= 90 and args.tilt_step > 0):
        raise SystemExit("--tilt-range must be in [0, 90] degrees and --tilt-step positive")
    os.makedirs(args.output, exist_ok=True)
    for i in range(args.count):
        name = "%s_%03d" % (args.prefix, i)
        if args.kind == "simple":
            tomo, labels = phantoms.simple_phantom(args.shape, args.voxel_size, args.seed + i,
                                                   snr=1.5 if args.snr is None else args.snr)
        else:
            p = simulate.generate(args.shape, args.voxel_size, args.seed + i, args.tilt_range, args.tilt_step,
                                  args.snr)
            tomo, labels = p.tomogram, p.labels
            log.info("%s: %d tilts, tilt-series SNR %.2f, %.1f s", name, len(p.angles), p.snr,
                     sum(p.timings.values()))
        io.write(os.path.join(args.output, name + "_labels.mrc"), labels, args.voxel_size)
        io.write(os.path.join(args.output, name + ".mrc"), tomo, args.voxel_size)
        print(os.path.join(args.output, name + ".mrc"))
