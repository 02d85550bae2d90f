"""``membraneseg train``: train a model, or fine-tune one, on tomograms with label maps and 2D image/mask pairs."""
import logging

from ..core.inputs import image_pairs
from ..training.config import PRESET_NAMES, QUICK
from .options import check_folder_pairs, compute_options

log = logging.getLogger("membraneseg")


def add(sub):
    from ..training.config import BORDERS, LOSS_TOLERANCE_PX, LOSSES, TrainConfig
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
                                                         "(slices and step) and classes are kept")
    p.add_argument("--preset", default=d.preset, choices=PRESET_NAMES,
                   help="network size, smallest first: %s; cpu-fine is the shipped models' (default %s)"
                        % (", ".join(PRESET_NAMES), d.preset))
    p.add_argument("--context", type=int, default=d.context,
                   help="z-slices per input: 1 (single slice) or odd k for 2.5D (default 1)")
    p.add_argument("--context-step", type=int, default=d.context_step, metavar="SLICES",
                   help="2.5D: slices (of the model's pixel size) between the z-slices of an input; more than 1 "
                        "lets the model see whether a line runs on through z, as an edge-on membrane does and a "
                        "filament lying in the slice does not (default %d: adjacent)" % d.context_step)
    p.add_argument("--classes", type=int, default=d.classes,
                   help="1 for a binary membrane model (default); N > 1 for a multi-class model over labels "
                        "0..N-1; 0 counts the classes in the label maps")
    p.add_argument("--membrane-labels", type=int, nargs="+", default=d.membrane_labels, metavar="L",
                   help="binary model: label values that count as membrane (default 1 2, the membranes and "
                        "vesicles of the phantoms); in 0/1 masks, 1 is membrane")
    p.add_argument("--ignore-label", type=int, nargs="+", default=[], metavar="V",
                   help="label value(s) meaning 'not annotated' (MemBrain-seg's maps use 2 for it): those voxels "
                        "never reach the loss or the validation figures, and patches are centred on annotated "
                        "ones; a value also in --membrane-labels counts as not annotated (default: none, every "
                        "voxel of a label map is annotated)")
    p.add_argument("--annotated-slices", nargs="+", metavar="Z",
                   help="the tomograms' label maps are annotated on these z-slices only (0-based indices, e.g. "
                        "40 80 120), or 'auto': on the slices with any label other than background; the other "
                        "slices never reach the loss (default: every slice is annotated)")
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
    p.add_argument("--quick", action="store_true",
                   help="fine-tune on a few annotated slices with settings sized for it: --start-model a "
                        "shipped model unless given (the tomogram model for --volume data, else the slice model), "
                        "%d epochs of %d batches at learning rate %g, the %s loss, turns by 90 degrees, no "
                        "intensity or style augmentation (the slices come from the data to segment; options given "
                        "still win; the log says what was chosen). About 5-8 minutes on 2 CPU cores"
                        % (QUICK["epochs"], QUICK["steps_per_epoch"], QUICK["learning_rate"], QUICK["loss"]))
    p.add_argument("--epochs", type=int, help="maximum epochs (default %d)" % d.epochs)
    p.add_argument("--steps", type=int, help="batches per epoch (default %d)" % d.steps_per_epoch)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="patches per batch (default %d)"
                   % d.batch_size)
    p.add_argument("--learning-rate", type=float, help="Adam's learning rate (default %g)" % d.learning_rate)
    p.add_argument("--loss", choices=LOSSES,
                   help="bce: binary cross-entropy (categorical for classes); dice; focal; bce+dice; "
                        "bce+dice+tolerant adds a boundary-tolerant Dice (%d px in-plane) (default %s)"
                        % (LOSS_TOLERANCE_PX, d.loss))
    p.add_argument("--no-augment", action="store_true", help="train without augmentation")
    p.add_argument("--rot90", action="store_true", default=None,
                   help="also turn patches by random multiples of 90 degrees (not in the paper's recipe)")
    p.add_argument("--intensity-augment", type=float, metavar="S",
                   help="strength of random contrast, brightness, blur and noise, in units of the normalised "
                        "image's standard deviation (0 = off, as in the paper; 1 is strong) (default %g)"
                        % d.intensity)
    p.add_argument("--style-augment", type=float, metavar="S",
                   help="strength of random changes of look: an uneven background, a tone curve, sharpening or "
                        "smoothing (0 = off; 1 is strong), for a model meant for data unlike its training "
                        "data (default %g)" % d.style)
    p.add_argument("--invert-augment", type=float, default=d.invert, metavar="P",
                   help="probability (0-1) that a training patch has its contrast inverted, so that the model "
                        "works on tomograms with dark and with bright density (default %g: off)" % d.invert)
    p.add_argument("--border", choices=BORDERS, default=d.border,
                   help="what a patch shows beyond the edge of an image: the image mirrored (reflect), or its "
                        "edge pixels repeated (replicate, which smears them into stripes) (default %s)" % d.border)
    p.add_argument("--patience", type=int, help="epochs without improvement before stopping (default %d)" % d.patience)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--recipe", metavar="FILE",
                   help="the preprocessing the training data had (a <stem>_recipe.json or a model folder), for "
                        "the model card (default: the recipe `preprocess` wrote beside the tomograms)")
    p.add_argument("--name", default="", help="name stored in the model card")
    compute_options(p)
    p.set_defaults(func=run)


def run(args):
    from ..training import data, loop
    from ..network import modelfile
    from ..training.config import TrainConfig, resolved
    if args.context < 1 or args.context % 2 == 0:
        raise SystemExit("--context must be 1 or an odd number of z-slices")
    if args.context_step < 1:
        raise SystemExit("--context-step must be 1 or more slices")
    if not 0 <= args.context_dropout <= 1:
        raise SystemExit("--context-dropout must be a probability in [0, 1]")
    if not (args.volume or args.images):
        raise SystemExit("no training data: give --volume TOMO LABELS and/or --images DIR --masks DIR")
    if not 0 <= args.invert_augment <= 1:
        raise SystemExit("--invert-augment must be a probability in [0, 1]")
    if not 0 <= args.synthetic_fraction <= 1:
        raise SystemExit("--synthetic-fraction must be a fraction in [0, 1]")
    if any(not 0 <= v <= 254 for v in args.ignore_label):
        raise SystemExit("--ignore-label values must be label values 0-254")
    check_folder_pairs(args.images, args.masks, "--images", "--masks")
    check_folder_pairs(args.val_images, args.val_masks, "--val-images", "--val-masks")
    check_folder_pairs(args.synthetic_images, args.synthetic_masks, "--synthetic-images", "--synthetic-masks")
    chosen = resolved(dict(epochs=args.epochs, steps_per_epoch=args.steps, learning_rate=args.learning_rate,
                           loss=args.loss, patience=args.patience, rot90=args.rot90,
                           intensity=args.intensity_augment, style=args.style_augment), args.quick)
    start_model = args.start_model
    if args.quick:
        # fine-tuning on tomograms starts from the tomogram model, on 2D images from the slice model
        start_model = start_model or modelfile.default_model_path(volumes=bool(args.volume))
        log.info("quick fine-tuning of %s: %s", start_model,
                 ", ".join("%s %s" % kv for kv in sorted(chosen.items())))
    config = data.resolve_start_model(TrainConfig(
        preset=args.preset, context=args.context, context_step=args.context_step, classes=args.classes,
        patch=args.patch,
        pixel_size=args.pixel_size, batch_size=args.batch_size, augment=not args.no_augment,
        invert=args.invert_augment, border=args.border, **chosen, context_dropout=args.context_dropout, seed=args.seed,
        membrane_labels=args.membrane_labels, ignore_labels=args.ignore_label,
        annotated_slices=" ".join(args.annotated_slices) if args.annotated_slices else None,
        start_model=start_model, name=args.name,
        synthetic_fraction=args.synthetic_fraction if args.synthetic_images else 0.0))
    if config.classes == 0:
        config.classes = data.count_classes([labels for _, labels in args.volume + args.val_volume])
        log.info("%d classes in the label maps", config.classes)
    groups = data.read_groups(args.groups) if args.groups else None
    samples = data.load_items(args.volume, image_pairs(args.images, args.masks), config, args.volume_pixel_size,
                              args.image_pixel_size, groups)
    val = data.load_items(args.val_volume, image_pairs(args.val_images, args.val_masks), config,
                          args.volume_pixel_size, args.image_pixel_size, groups)
    test = []
    if not val:
        samples, val, test = data.split_by_source(samples, seed=args.seed)
    synthetic = [data.load_image_pair(i, m, config, args.synthetic_pixel_size or data.pairs_pixel_size(folder),
                                      "synthetic")
                 for i, m, folder in image_pairs(args.synthetic_images, args.synthetic_masks)]
    recipe = data.training_recipe([tomo for tomo, _ in args.volume + args.val_volume], args.recipe)
    card = loop.train(samples, val, config, args.output, test_samples=test, preprocessing=recipe,
                      synthetic_samples=synthetic)
    print("%s\tthreshold %.3f\tvalidation Dice %.3f" % (args.output, card.threshold,
                                                        card.provenance["validation_dice"]))
