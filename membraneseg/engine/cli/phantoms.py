"""``membraneseg phantoms``: synthetic tomograms with exact membrane labels."""
import logging
import os

from .options import compute_options

log = logging.getLogger("membraneseg")


RANDOM = "random"
TRUTH_SUFFIX = "_vesicles_truth.csv"
CHOICE_HELP = "(default: random per phantom)"


def add(sub):
    from ..simulation.raw import CONTENTS, LOOKS, POLARITIES, RECONSTRUCTIONS, SCHEMES
    p = sub.add_parser("phantoms", help="generate synthetic tomograms with exact membrane labels",
                       description="Writes <name>.mrc (the tomogram, mean 0, standard deviation 1) and "
                                   "<name>_labels.mrc (label map) per phantom, and for cell and raw phantoms "
                                   "<name>%s (each vesicle's centre in voxels and size in nm, the truth for "
                                   "membraneseg vesicles). --kind cell (default): a cell-like "
                                   "specimen (membranes, vesicles, filaments, macromolecules, gold) imaged as a "
                                   "noisy, misaligned tilt series and reconstructed by weighted back-projection, "
                                   "membranes dark; labels 0 background, 1 membrane, 2 vesicle membrane, 3 "
                                   "filament, 4 macromolecule or gold bead. --kind raw: the same kind of specimen "
                                   "(microtubules with protofilaments, optionally a carbon film edge and ice "
                                   "contamination, labels 5 and 6; membrane the missing wedge hides, label 7) "
                                   "recorded as a real microscope does (CTF, dose, "
                                   "radiation damage, shot and detector noise, ice thickness), reconstructed by "
                                   "WBP or a SIRT-like filter, with a look and a polarity; every setting not given "
                                   "is drawn at random per phantom and written to <name>.json. Z is the specimen "
                                   "thickness in voxels, at most the --shape Z. --kind simple: vesicles in noise, "
                                   "quick to make; labels 0 background, 1 membrane." % TRUTH_SUFFIX)
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    p.add_argument("--count", type=int, default=1, metavar="N", help="number of phantoms (default 1)")
    p.add_argument("--shape", type=int, nargs=3, default=(64, 128, 128), metavar=("Z", "Y", "X"),
                   help="size in voxels (default 64 128 128; the paper's phantoms are 250 500 500)")
    p.add_argument("--voxel-size", type=float, metavar="Å",
                   help="Å per voxel (default 10; raw: random from 5 to 40, even on a log scale)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed; phantom i uses S+i (default 0)")
    p.add_argument("--kind", choices=("cell", "raw", "simple"), default="cell",
                   help="cell: realistic, with a tilt series and WBP; raw: as a real raw tomogram, with the "
                        "microscope's optics and noise; simple: vesicles in noise (default cell)")
    p.add_argument("--tilt-range", type=float, metavar="DEG",
                   help="cell and raw: tilts from -DEG to +DEG degrees (default: cell 60; raw random 40-70)")
    p.add_argument("--tilt-step", type=float, metavar="DEG",
                   help="cell and raw: degrees between tilts (default: cell 3; raw random 1-3)")
    p.add_argument("--snr", type=float, default=None,
                   help="cell and simple: signal-to-noise ratio (a variance ratio, no unit). cell: variance of "
                        "the noiseless tilt series over that of the added noise (default: random in [1, 2] per "
                        "phantom). simple: membrane signal standard deviation over noise standard deviation in "
                        "the volume (default 1.5). Raw phantoms get their noise from the dose instead")
    p.add_argument("--prefix", default="phantom", help="file name prefix (default phantom)")
    r = p.add_argument_group("raw phantoms: the microscope " + CHOICE_HELP)
    r.add_argument("--kv", type=float, choices=(200.0, 300.0), help="acceleration voltage in kV")
    r.add_argument("--cs", type=float, metavar="MM", help="spherical aberration in mm (default 2.7)")
    r.add_argument("--amplitude-contrast", type=float, metavar="A",
                   help="amplitude contrast, a fraction (random 0.07-0.10)")
    r.add_argument("--defocus", type=float, metavar="µm",
                   help="underfocus in µm; -4 and 4 both mean 4 µm underfocus (random 1.5-6)")
    r.add_argument("--phase-flip", choices=("yes", "no"), help="CTF correction of each tilt by phase flipping")
    r.add_argument("--dose", type=float, metavar="e/Å²", help="total dose over the tilt series (random 60-180)")
    r.add_argument("--dose-scheme", choices=SCHEMES, help="order of the tilts, for radiation damage")
    r.add_argument("--thickness", type=float, metavar="NM", help="specimen thickness in nm (random 100-300)")
    r.add_argument("--misalignment", type=float, metavar="PX",
                   help="mean residual alignment error in pixels (random 0.2-2)")
    r.add_argument("--detector-noise", type=float, metavar="F",
                   help="Gaussian detector noise, as a fraction of the shot noise (random 0-0.3)")
    g = p.add_argument_group("raw phantoms: the reconstruction and what was done to it " + CHOICE_HELP)
    g.add_argument("--reconstruction", choices=RECONSTRUCTIONS,
                   help="wbp (IMOD's radial filter) or sirt (a SIRT-like filter of 10-30 iterations)")
    g.add_argument("--look", choices=LOOKS,
                   help="raw as reconstructed; lowpass (Gaussian, 30-60 Å); eed (edge-enhancing diffusion); "
                        "denoised (as after cryoCARE or IsoNet)")
    g.add_argument("--polarity", choices=POLARITIES, help="dark: matter dark, as IMOD writes; bright: inverted")
    g.add_argument("--content", choices=CONTENTS, default="cell",
                   help="cell: with membranes; negatives: everything but membranes (microtubules, actin, dense "
                        "crowding, gold); microtubules: a membrane-free crop of several microtubules among "
                        "particles; empty: ice and noise alone (default cell)")
    g.add_argument("--carbon", choices=("yes", "no"), help="a carbon film edge crossing the field (random 25%%)")
    g.add_argument("--contamination", choices=("yes", "no"), help="ice crystals on the surfaces (random 25%%)")
    g.add_argument("--ice-absorption", type=float, metavar="F", default=0.0,
                   help="fraction (0-0.99) of the electrons 100 nm of crystalline ice removes by diffraction, "
                        "which makes the crystals dark, as real contamination is; 0 draws them as phase objects "
                        "only, as the training volumes of the shipped models were (default 0)")
    compute_options(p)
    p.set_defaults(func=run, needs_tensorflow=False)


def raw_settings(args, rng):
    """The raw-phantom settings the options fix, the others drawn with ``rng``."""
    from ..simulation import raw
    yes = {"yes": True, "no": False, None: None}
    return raw.draw_settings(
        rng, pixel_size=args.voxel_size, kv=args.kv, cs=args.cs, amplitude=args.amplitude_contrast,
        defocus=None if args.defocus is None else abs(args.defocus) * 1e4, phase_flip=yes[args.phase_flip],
        dose=args.dose, scheme=args.dose_scheme, tilt_range=args.tilt_range, tilt_step=args.tilt_step,
        thickness=None if args.thickness is None else args.thickness * 10, misalignment=args.misalignment,
        detector_noise=args.detector_noise, reconstruction=args.reconstruction, look=args.look,
        polarity=args.polarity, content=args.content, carbon=yes[args.carbon], contamination=yes[args.contamination],
        ice_absorption=args.ice_absorption)


def run(args):
    import numpy as np
    from ..core import io
    from ..simulation import phantoms, raw, simulate
    from ..vesicles import files
    if args.snr is not None and args.snr <= 0:
        raise SystemExit("--snr must be positive")
    if min(args.shape) < 8 or (args.voxel_size is not None and args.voxel_size <= 0) or args.count < 1:
        raise SystemExit("--shape needs at least 8 voxels per axis, --voxel-size and --count must be positive")
    tilt_range = 60.0 if args.tilt_range is None and args.kind == "cell" else args.tilt_range
    tilt_step = 3.0 if args.tilt_step is None and args.kind == "cell" else args.tilt_step
    if (tilt_range is not None and not 0 <= tilt_range <= 90) or (tilt_step is not None and tilt_step <= 0):
        raise SystemExit("--tilt-range must be in [0, 90] degrees and --tilt-step positive")
    os.makedirs(args.output, exist_ok=True)
    for i in range(args.count):
        name = "%s_%03d" % (args.prefix, i)
        voxel = args.voxel_size or 10.0
        if args.kind == "simple":
            tomo, labels = phantoms.simple_phantom(args.shape, voxel, args.seed + i,
                                                   snr=1.5 if args.snr is None else args.snr)
        elif args.kind == "cell":
            p = simulate.generate(args.shape, voxel, args.seed + i, tilt_range, tilt_step, args.snr)
            tomo, labels = p.tomogram, p.labels
            log.info("%s: %d tilts, tilt-series SNR %.2f, %.1f s", name, len(p.angles), p.snr,
                     sum(p.timings.values()))
        else:
            try:
                settings = raw_settings(args, np.random.default_rng([args.seed + i, 1]))
            except ValueError as exc:
                raise SystemExit(str(exc))
            voxel = settings.pixel_size
            depth = int(np.clip(round(settings.thickness / voxel), 8, args.shape[0]))
            p = raw.generate_raw((depth,) + tuple(args.shape[1:]), settings, args.seed + i)
            tomo, labels = p.tomogram, p.labels
            io.write_json(os.path.join(args.output, name + ".json"),
                          dict(raw.settings_record(settings), tilt_series_snr=round(p.snr, 5), seed=args.seed + i))
            log.info("%s: %.1f Å/px, %g kV, %.1f µm underfocus, %.0f e/Å², %s, %s look, %s, tilt-series SNR "
                     "%.3f, %.1f s", name, voxel, settings.kv, settings.defocus / 1e4, settings.dose,
                     settings.reconstruction, settings.look, settings.polarity, p.snr, sum(p.timings.values()))
        if args.kind != "simple":   # the vesicles' truth, in the table format of ``membraneseg vesicles``
            files.write_csv(os.path.join(args.output, name + TRUTH_SUFFIX), files.truth_rows(p.vesicles, voxel),
                            files.TRUTH_COLUMNS)
        io.write(os.path.join(args.output, name + "_labels.mrc"), labels, voxel)
        io.write(os.path.join(args.output, name + ".mrc"), tomo, voxel)
        print(os.path.join(args.output, name + ".mrc"))
