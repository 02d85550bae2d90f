"""The ``membraneseg`` command line: the engine without Scipion.

    membraneseg segment INPUT... -o OUTDIR      segment MRC volumes or 2D images
    membraneseg phantoms -o OUTDIR              synthetic tomograms with exact labels
    membraneseg train -o MODELDIR ...           train or fine-tune a model
    membraneseg preprocess INPUT -o OUTPUT      binning, normalisation, EED, CLAHE
    membraneseg evaluate --pred ... --ref ...   metrics against reference masks
    membraneseg clean INPUT... -o OUTDIR        re-threshold and clean probability maps
    membraneseg inspect-model [PATH]            load a model folder and print its card
    membraneseg gan train -o GANDIR ...         train the Pix2Pix GAN (mask -> tomogram slice) on pairs
    membraneseg gan generate GANDIR -o OUTDIR   synthetic image/mask pairs from a trained GAN

``python -m membraneseg.engine`` is the same program. Bad input ends with one line naming the file and the
problem, and exit status 2; an unexpected failure keeps its traceback and exits with 1.
"""
import argparse
import glob
import logging
import os
import sys

from ..constants import SEGMENT_BATCH

log = logging.getLogger("membraneseg")

EXIT_BAD_INPUT = 2


def _setup(args):
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


def _compute_options(p):
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="CPU threads for TensorFlow, numba and OpenCV (default: all cores)")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                   help="auto uses a GPU when TensorFlow sees one; cpu hides all GPUs (default: auto)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--error-file", metavar="FILE", help="on bad input, also write the one-line reason to FILE "
                                                        "(used by the Scipion protocols)")


def expand_inputs(paths):
    """Files as given; folders expand to the MRC volumes and images inside them (sorted)."""
    from . import io
    out = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(f for f in glob.glob(os.path.join(p, "*")) if io.is_supported(f))
            if not found:
                raise io.InputError(p, "folder holds no MRC volume or image")
            out.extend(found)
        else:
            out.append(p)
    return out


def read_input(path, volumes_only=False):
    """The input (memory-mapped), refused with the reason when it is unreadable, or 2D and ``volumes_only``."""
    from . import io
    vol = io.read(path)
    if volumes_only and vol.is_2d:
        raise io.InputError(path, "a 2D image (%d x %d pixels) where a volume is needed" % vol.data.shape[:0:-1])
    return vol


def check_inputs(paths, volumes_only=False):
    """Read every input's header and a sample of its voxels before any slow work (loading a model) starts.
    Returns the usable paths and the InputErrors of the others."""
    from . import io, preprocess
    usable, refused = [], []
    for path in paths:
        try:
            preprocess.check_volume(read_input(path, volumes_only))
            usable.append(path)
        except io.InputError as exc:
            refused.append(exc)
    return usable, refused


def raise_refused(refused, total):
    """Once the usable inputs are done, fail with the reasons for the refused ones (exit status 2): one bad input
    among several does not stop the others."""
    from . import io
    if not refused:
        return
    if total == 1:
        raise refused[0]
    for exc in refused:
        log.error("%s", exc)
    raise io.InputError("%d of %d inputs" % (len(refused), total), "; ".join(str(e) for e in refused))


# ----------------------------------------------------------------------------- segment
def add_segment(sub):
    from .predict import MODES, SINGLE_WINDOW_MAX
    p = sub.add_parser("segment", help="segment membranes in MRC volumes or 2D images",
                       description="Writes <stem>_mask (8-bit, 0/1 or class labels) and <stem>_prob (membrane "
                                   "probability in [0,1]) per input: .mrc for volumes, with the input's voxel "
                                   "size in the header, and .tif for 2D images.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="MRC volume(s), 2D TIFF/PNG image(s), or folders")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the results")
    p.add_argument("--model", metavar="PATH", help="model folder (default: $MEMBRANESEG_MODEL, else the "
                                                   "model shipped with the plugin)")
    p.add_argument("--threshold", type=float, metavar="P",
                   help="probability (0-1) above which a voxel is membrane (default: the model's calibrated one)")
    p.add_argument("--pixel-size", type=float, metavar="Å",
                   help="input pixel size in Å per voxel; overrides the header (needed when the header says 0 "
                        "or 1 Å)")
    p.add_argument("--volumes-only", action="store_true",
                   help="refuse 2D images (the Scipion protocols, whose inputs are tomograms, ask for this)")
    p.add_argument("--mode", choices=tuple(MODES), default="default",
                   help="speed against quality. preview: windows overlap by 12.5%% of their width, no flips; "
                        "default: 25%% overlap; quality: 50%% overlap and flip test-time augmentation (the "
                        "average of 4 flipped predictions; about 4x the time of default). Overlap applies to "
                        "slices wider than " + str(SINGLE_WINDOW_MAX) + " px at the model's pixel size; "
                        "smaller slices go through the network whole (default: default)")
    p.add_argument("--overlap", type=float, default=None, metavar="F",
                   help="fraction (0-0.9) of a window shared with its neighbour; overrides --mode")
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation whatever --mode says")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="arithmetic of the network: fp32 (default) or bf16 (bfloat16 with float32 weights and "
                        "output; can be faster for the wider presets on CPUs with native bfloat16, AVX512-BF16 "
                        "or AMX, and on recent GPUs; probabilities differ by up to about 0.04)")
    p.add_argument("--batch-size", type=int, default=SEGMENT_BATCH, metavar="N",
                   help="224 x 224 patches' worth of pixels per forward pass (default %d; each 8 patches take "
                        "about 0.17 GB with the default model: lower it when memory is short)" % SEGMENT_BATCH)
    _compute_options(p)
    p.set_defaults(func=cmd_segment)


def cmd_segment(args):
    from . import predict
    from .io import InputError
    if args.overlap is not None and not 0 <= args.overlap < 0.95:
        raise SystemExit("--overlap must be in [0, 0.95)")
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise SystemExit("--threshold must be a probability in [0, 1]")
    inputs = expand_inputs(args.inputs)
    total = len(inputs)
    inputs, refused = check_inputs(inputs, args.volumes_only)
    if not inputs:
        raise_refused(refused, total)
    overlap, tta = predict.MODES[args.mode]
    overlap = args.overlap if args.overlap is not None else overlap
    predictor = predict.Predictor(args.model, batch_size=args.batch_size, tta=args.tta or tta,
                                  precision=args.precision)
    for path in inputs:
        try:
            mask, prob = predictor.segment_file(path, args.output, args.threshold, args.pixel_size, overlap)
        except InputError as exc:
            refused.append(exc)
            continue
        except MemoryError:
            refused.append(InputError(path, "ran out of memory; lower --batch-size, bin the tomogram (membraneseg "
                                            "preprocess --bin 2) or free memory"))
            continue
        print("%s\t%s\t%s" % (path, mask, prob))
    raise_refused(refused, total)


# ----------------------------------------------------------------------------- phantoms
def add_phantoms(sub):
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
    _compute_options(p)
    p.set_defaults(func=cmd_phantoms, needs_tensorflow=False)


def cmd_phantoms(args):
    from . import io, phantoms, simulate
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


# ----------------------------------------------------------------------------- train
def add_train(sub):
    from .trainconfig import BORDERS, LOSS_TOLERANCE_PX, LOSSES, TrainConfig
    d = TrainConfig()
    p = sub.add_parser("train", help="train a model, or fine-tune one with --start-model",
                       description="Trains on tomograms with label maps (--volume) and/or folders of 2D "
                                   "image/mask pairs matched by file name (--images/--masks; images without a "
                                   "mask are left out). Without explicit validation data, the data are split "
                                   "70/15/15 into training, validation and test by group: each tomogram is a "
                                   "group, and 2D images are grouped by --groups, else by folder. The model "
                                   "folder gets membraneseg_model.json, model.weights.h5 and "
                                   "training_history.json; rerunning an interrupted training with the same "
                                   "options resumes it from its last epoch.")
    p.add_argument("-o", "--output", required=True, metavar="MODELDIR", help="folder to write the model to")
    p.add_argument("--volume", nargs=2, action="append", default=[], metavar=("TOMO", "LABELS"),
                   help="a training tomogram and its label map (repeat the option for more)")
    p.add_argument("--val-volume", nargs=2, action="append", default=[], metavar=("TOMO", "LABELS"),
                   help="a validation tomogram and its label map (repeatable)")
    p.add_argument("--images", action="append", default=[], metavar="DIR", help="folder of 2D training images")
    p.add_argument("--masks", action="append", default=[], metavar="DIR",
                   help="folder of masks matching --images by file name (0/1, 0/255 or soft 0..255)")
    p.add_argument("--val-images", action="append", default=[], metavar="DIR")
    p.add_argument("--val-masks", action="append", default=[], metavar="DIR")
    p.add_argument("--groups", metavar="CSV",
                   help="CSV file naming each 2D image's group, e.g. the field of view it was cut from (columns "
                        "'group' and one of image, file, name, id, image_png); a group never sits on both sides "
                        "of the split (default: one group per --images folder)")
    p.add_argument("--synthetic-images", action="append", default=[], metavar="DIR",
                   help="folder of generated images (membraneseg gan generate: OUT/images) that add to the "
                        "training data; never validated on")
    p.add_argument("--synthetic-masks", action="append", default=[], metavar="DIR",
                   help="their masks, matched by file name (OUT/masks)")
    p.add_argument("--synthetic-fraction", type=float, default=0.3, metavar="F",
                   help="fraction (0-1) of the training patches cut from the synthetic pairs, however many there "
                        "are (default 0.3)")
    p.add_argument("--synthetic-pixel-size", type=float, metavar="Å",
                   help="Å per pixel of the synthetic pairs (default: the pairs.json beside them, else the "
                        "model's)")
    p.add_argument("--start-model", metavar="PATH", help="model folder to fine-tune from; its preset, context "
                                                         "and classes are kept")
    p.add_argument("--preset", default=d.preset, help="network size: tiny, cpu-small, cpu, cpu-large, paper "
                                                      "(default %s)" % d.preset)
    p.add_argument("--context", type=int, default=d.context,
                   help="z-slices per input: 1 (single slice) or odd k for 2.5D (default 1)")
    p.add_argument("--classes", type=int, default=d.classes,
                   help="1 for a binary membrane model (default); N > 1 for a multi-class model over labels "
                        "0..N-1; 0 counts the classes in the label maps")
    p.add_argument("--membrane-labels", type=int, nargs="+", default=d.membrane_labels, metavar="L",
                   help="binary model: label values that count as membrane (default 1 2, the membranes and "
                        "vesicles of the phantoms); in 0/1 masks, 1 is membrane")
    p.add_argument("--patch", type=int, help="patch size in pixels (default 224, or the starting model's)")
    p.add_argument("--pixel-size", type=float, metavar="Å",
                   help="Å per pixel the model works at; inputs are resampled to it (default: the starting "
                        "model's, else %g)" % d.pixel_size)
    p.add_argument("--volume-pixel-size", type=float, metavar="Å",
                   help="Å per voxel of the --volume and --val-volume tomograms (default: their MRC headers)")
    p.add_argument("--image-pixel-size", type=float, metavar="Å",
                   help="Å per pixel of the 2D images (default: same as --pixel-size)")
    p.add_argument("--context-dropout", type=float, default=d.context_dropout, metavar="P",
                   help="2.5D: probability (0-1) that a tomogram patch gets its own slice repeated instead of "
                        "its z-neighbours, as 2D images always do, so the model works on both (default %g)"
                        % d.context_dropout)
    p.add_argument("--epochs", type=int, default=d.epochs, help="maximum epochs (default %d)" % d.epochs)
    p.add_argument("--steps", type=int, default=d.steps_per_epoch, help="batches per epoch")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--learning-rate", type=float, default=d.learning_rate)
    p.add_argument("--loss", default=d.loss, choices=LOSSES,
                   help="bce: binary cross-entropy (categorical for classes); dice; focal; bce+dice; "
                        "bce+dice+tolerant adds a boundary-tolerant Dice (%d px in-plane) (default %s)"
                        % (LOSS_TOLERANCE_PX, d.loss))
    p.add_argument("--no-augment", action="store_true", help="train without augmentation")
    p.add_argument("--rot90", action="store_true",
                   help="also turn patches by random multiples of 90 degrees (not in the paper's recipe)")
    p.add_argument("--intensity-augment", type=float, default=d.intensity, metavar="S",
                   help="strength of random contrast, brightness, blur and noise, in units of the normalised "
                        "image's standard deviation (0 = off, as in the paper; 1 is strong) (default %g)"
                        % d.intensity)
    p.add_argument("--style-augment", type=float, default=d.style, metavar="S",
                   help="strength of random changes of look: an uneven background, a tone curve, sharpening or "
                        "smoothing (0 = off; 1 is strong), for a model meant for data unlike its training "
                        "data (default %g)" % d.style)
    p.add_argument("--border", choices=BORDERS, default=d.border,
                   help="what a patch shows beyond the edge of an image: the image mirrored (reflect), or its "
                        "edge pixels repeated (replicate, which smears them into stripes) (default %s)" % d.border)
    p.add_argument("--patience", type=int, default=d.patience, help="epochs without improvement before stopping")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--recipe", metavar="FILE",
                   help="the preprocessing the training data had (a <stem>_recipe.json or a model folder), for "
                        "the model card (default: the recipe `preprocess` wrote beside the tomograms)")
    p.add_argument("--name", default="", help="name stored in the model card")
    _compute_options(p)
    p.set_defaults(func=cmd_train)


def _image_pairs(image_dirs, mask_dirs):
    """(image, mask, image folder) for every image with a mask of the same name; images without one (unlabelled
    slices) are left out, and said so."""
    from . import io
    if len(image_dirs) != len(mask_dirs):
        raise SystemExit("give one --masks folder per --images folder")
    pairs = []
    for idir, mdir in zip(image_dirs, mask_dirs):
        images, unlabelled = expand_inputs([idir]), []
        for image in images:
            stem = os.path.splitext(os.path.basename(image))[0]
            masks = sorted(m for m in glob.glob(os.path.join(glob.escape(mdir), glob.escape(stem) + ".*"))
                           if io.is_supported(m))
            if masks:
                pairs.append((image, masks[0], idir))
            else:
                unlabelled.append(os.path.basename(image))
        if len(unlabelled) == len(images):
            raise io.InputError(mdir, "no mask has the name of an image in %s (e.g. %s)" % (idir, unlabelled[0]))
        if unlabelled:
            log.warning("%s: %d image(s) have no mask in %s and are left out (e.g. %s)", idir, len(unlabelled),
                        mdir, unlabelled[0])
    return pairs


def cmd_train(args):
    from . import train
    from .model import PRESETS
    if args.preset not in PRESETS:
        raise SystemExit("--preset must be one of %s" % ", ".join(PRESETS))
    if args.context < 1 or args.context % 2 == 0:
        raise SystemExit("--context must be 1 or an odd number of z-slices")
    if not 0 <= args.context_dropout <= 1:
        raise SystemExit("--context-dropout must be a probability in [0, 1]")
    if not (args.volume or args.images):
        raise SystemExit("no training data: give --volume TOMO LABELS and/or --images DIR --masks DIR")
    if not 0 <= args.synthetic_fraction <= 1:
        raise SystemExit("--synthetic-fraction must be a fraction in [0, 1]")
    config = train.resolve_start_model(train.TrainConfig(
        preset=args.preset, context=args.context, classes=args.classes, patch=args.patch,
        pixel_size=args.pixel_size, epochs=args.epochs, steps_per_epoch=args.steps, batch_size=args.batch_size,
        learning_rate=args.learning_rate, loss=args.loss, augment=not args.no_augment,
        rot90=args.rot90, intensity=args.intensity_augment, style=args.style_augment, border=args.border,
        context_dropout=args.context_dropout, patience=args.patience, seed=args.seed,
        membrane_labels=args.membrane_labels, start_model=args.start_model, name=args.name,
        synthetic_fraction=args.synthetic_fraction if args.synthetic_images else 0.0))
    if config.classes == 0:
        config.classes = train.count_classes([labels for _, labels in args.volume + args.val_volume])
        log.info("%d classes in the label maps", config.classes)
    groups = train.read_groups(args.groups) if args.groups else None

    def load_all(volumes, image_dirs, mask_dirs):
        items = [train.load_volume_pair(t, l, config, args.volume_pixel_size) for t, l in volumes]
        items += [train.load_image_pair(i, m, config, args.image_pixel_size, train.image_group(i, groups, folder))
                  for i, m, folder in _image_pairs(image_dirs, mask_dirs)]
        return items

    samples = load_all(args.volume, args.images, args.masks)
    val = load_all(args.val_volume, args.val_images, args.val_masks)
    test = []
    if not val:
        samples, val, test = train.split_by_source(samples, seed=args.seed)
    synthetic = [train.load_image_pair(i, m, config, args.synthetic_pixel_size or _pairs_pixel_size(folder),
                                       "synthetic") for i, m, folder in _image_pairs(args.synthetic_images,
                                                                                    args.synthetic_masks)]
    recipe = train.training_recipe([tomo for tomo, _ in args.volume + args.val_volume], args.recipe)
    card = train.train(samples, val, config, args.output, test_samples=test, preprocessing=recipe,
                       synthetic_samples=synthetic)
    print("%s\tthreshold %.3f\tvalidation Dice %.3f" % (args.output, card.threshold,
                                                        card.provenance["validation_dice"]))


def _pairs_pixel_size(images_dir):
    """The pixel size ``gan generate`` recorded in pairs.json beside an images folder, or None."""
    import json
    from ..constants import PAIRS_JSON
    path = os.path.join(os.path.dirname(os.path.abspath(images_dir)), PAIRS_JSON)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f).get("pixel_size")


# ----------------------------------------------------------------------------- inspect-model
def add_inspect_model(sub):
    p = sub.add_parser("inspect-model", help="load a model folder (checksum, network, weights) and print its card",
                       description="Exits with status 2 and the reason when the folder is missing, corrupt, or "
                                   "its weights do not fit the network its card describes.")
    p.add_argument("model", nargs="?", metavar="PATH", help="model folder (default: the default model)")
    _compute_options(p)
    p.set_defaults(func=cmd_inspect_model)


def cmd_inspect_model(args):
    import json
    from . import model as net
    from . import modelfile
    keras_model, card = modelfile.load(args.model or modelfile.default_model_path())
    summary = {k: v for k, v in card.to_dict().items() if k != "provenance"}
    summary["parameters"] = net.count_params(keras_model)
    summary["gflop_per_patch"] = round(net.flops_per_patch(keras_model) / 1e9, 3)
    print(json.dumps(summary, indent=1, sort_keys=True))


# ----------------------------------------------------------------------------- main
def build_parser():
    from .. import __version__
    parser = argparse.ArgumentParser(prog="membraneseg", description="Membrane and vesicle segmentation of "
                                     "cryo-electron tomograms with the hybrid network of Morales-Martinez et al.")
    parser.add_argument("--version", action="version", version="membraneseg %s" % __version__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from .cli_preprocess import add_preprocess
    from .cli_evaluate import add_clean, add_evaluate
    from .cli_gan import add_gan
    for add in (add_segment, add_phantoms, add_train, add_inspect_model, add_preprocess, add_evaluate, add_clean,
                add_gan):
        add(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    from .io import InputError
    from .modelfile import ModelError
    try:
        _setup(args)   # may import TensorFlow
        args.func(args)
    except (InputError, ModelError) as exc:
        return _refuse(args, str(exc))
    except MemoryError:
        return _refuse(args, "%s ran out of memory: bin the input (membraneseg preprocess --bin 2), lower "
                             "--batch-size, or use a machine with more memory" % args.command)
    except ImportError as exc:  # an environment without TensorFlow or another dependency: say how to mend it
        from ..constants import ENV_NAME
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
