"""``membraneseg segment``: segment MRC volumes or 2D images with a trained model."""
from ...constants import SEGMENT_BATCH
from ..core.inputs import expand_inputs
from .options import check_inputs, compute_options, raise_refused


def add(sub):
    from ..segmentation.predict import MAX_UPSAMPLING, MODES, SINGLE_WINDOW_MAX
    from ..segmentation.scales import COARSEST
    p = sub.add_parser("segment", help="segment membranes in MRC volumes or 2D images",
                       description="Writes <stem>_mask (8-bit, 0/1 or class labels) and <stem>_prob (membrane "
                                   "probability in [0,1]) per input: .mrc for volumes, with the input's voxel "
                                   "size in the header, and .tif for 2D images.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="MRC volume(s), 2D TIFF/PNG image(s), or folders")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the results")
    p.add_argument("--model", metavar="PATH", help="model folder (default: $MEMBRANESEG_MODEL, else a model "
                                                   "shipped with the plugin: the tomogram model for volumes, the "
                                                   "slice model for 2D images)")
    p.add_argument("--threshold", type=float, metavar="P",
                   help="probability (0-1) above which a voxel is membrane (default: the model's calibrated one)")
    p.add_argument("--pixel-size", type=float, metavar="Å",
                   help="input pixel size in Å per voxel; overrides the header (needed when the header says 0 "
                        "or 1 Å)")
    p.add_argument("--polarity", choices=("auto", "dark", "bright"), default="auto",
                   help="is matter dark (as IMOD writes it) or bright in the input? auto measures it per input "
                        "and says so in the log; bright inputs are inverted for the network (default auto)")
    p.add_argument("--max-upsampling", type=float, metavar="F",
                   help="largest factor by which an input coarser than the model is upsampled to the model's pixel "
                        "size (default: what the model's card says it was trained with, else %g: coarser inputs "
                        "are segmented at their own pixel size, which found membranes better in simulated 20-40 Å "
                        "tomograms with models trained at 10 Å only); finer inputs are always brought down to the "
                        "model's" % MAX_UPSAMPLING)
    p.add_argument("--scales", type=float, nargs="+", metavar="F",
                   help="test-time scales: factors over 1 by which a volume (or a 2D image, in-plane) is also "
                        "smoothed and made coarser before segmenting it again; the probability maps are "
                        "averaged. Each adds at most the time of one pass (a volume's copy has f times fewer "
                        "slices), and copies coarser than %g Å/pixel are skipped. A factor under 1 segments a "
                        "volume coarser than the model's largest upsampling allows once more, with the network at "
                        "f times the pixel size of the first pass (never finer than the model's). 1 turns it off "
                        "(default: what the model's card says, for volumes only; the shipped tomogram model: 0.5 1 "
                        "2 4)" % COARSEST)
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
    compute_options(p)
    p.set_defaults(func=run)


def run(args):
    from ..core import io
    from ..core.io import InputError
    from ..network import modelfile
    from ..segmentation import predict, scales
    if args.overlap is not None and not 0 <= args.overlap < 0.95:
        raise SystemExit("--overlap must be in [0, 0.95)")
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise SystemExit("--threshold must be a probability in [0, 1]")
    if args.scales is not None:
        try:
            scales.check_factors(args.scales)
        except ValueError as exc:
            raise SystemExit(str(exc))
    inputs = expand_inputs(args.inputs)
    total = len(inputs)
    inputs, refused = check_inputs(inputs, args.volumes_only)
    if not inputs:
        raise_refused(refused, total)
    overlap, tta = predict.MODES[args.mode]
    overlap = args.overlap if args.overlap is not None else overlap
    if args.max_upsampling is not None and args.max_upsampling < 1:
        raise SystemExit("--max-upsampling must be 1 (never upsample) or more")
    predictors = {}

    def predictor_for(path):
        """The given model, else the shipped one for the input's kind (tomogram model for volumes, slice model for
        2D images), each loaded once."""
        volumes = args.model is None and not io.read(path).is_2d
        if volumes not in predictors:
            model = args.model or modelfile.default_model_path(volumes=volumes)
            predictors[volumes] = predict.Predictor(model, batch_size=args.batch_size, tta=args.tta or tta,
                                                    precision=args.precision, max_upsampling=args.max_upsampling,
                                                    test_scales=args.scales)
        return predictors[volumes]

    for path in inputs:
        try:
            mask, prob = predictor_for(path).segment_file(path, args.output, args.threshold, args.pixel_size,
                                                          overlap, polarity=args.polarity)
        except InputError as exc:
            refused.append(exc)
            continue
        except MemoryError:
            refused.append(InputError(path, "ran out of memory; lower --batch-size, bin the tomogram (membraneseg "
                                            "preprocess --bin 2) or free memory"))
            continue
        print("%s\t%s\t%s" % (path, mask, prob))
    raise_refused(refused, total)
