"""``membraneseg gan train`` (train the Pix2Pix GAN of the paper's Appendix B on mask/image pairs) and
``membraneseg gan generate`` (new synthetic training pairs from a trained GAN)."""
import logging
import os

from ..core.inputs import expand_inputs, image_pairs
from .options import check_folder_pairs, compute_options

log = logging.getLogger("membraneseg")


def add(sub):
    p = sub.add_parser("gan", help="Pix2Pix GAN: train it on mask/image pairs, or generate new pairs with it",
                       description="A Pix2Pix GAN (Morales-Martinez et al. 2025, Appendix B) turns binary membrane "
                                   "masks into realistic tomogram slices. 'gan train' learns it from image/mask "
                                   "pairs; 'gan generate' varies masks (turns, flips, blur) and draws images for "
                                   "them, as extra training pairs for 'membraneseg train'.")
    gsub = p.add_subparsers(dest="gan_command", required=True, metavar="ACTION")
    add_gan_train(gsub)
    add_gan_generate(gsub)


def add_gan_train(gsub):
    t = gsub.add_parser("train", help="train a GAN on image/mask pairs and/or tomograms with label maps",
                        description="Trains on random crops (with flips and turns by 90 degrees) of 2D image/mask "
                                    "pairs matched by file name (--images/--masks) and of the z-slices with "
                                    "membrane of tomograms with label maps (--volume). GANDIR gets "
                                    "generator.weights.h5, discriminator.weights.h5, gan_model.json and "
                                    "samples/epoch_NNN.png (rows mask | generated | real) after every epoch; "
                                    "rerunning with the same options resumes after the last finished epoch, and "
                                    "with more --epochs trains further.")
    t.add_argument("-o", "--output", required=True, metavar="GANDIR", help="folder to write the GAN model to")
    t.add_argument("--images", action="append", default=[], metavar="DIR",
                   help="folder of 2D training images (repeat with --masks for more)")
    t.add_argument("--masks", action="append", default=[], metavar="DIR",
                   help="folder of masks matching --images by file name (0/1, 0/255 or soft 0..255)")
    t.add_argument("--volume", nargs=2, action="append", default=[], metavar=("TOMO", "LABELS"),
                   help="a tomogram and its label map (repeatable); its z-slices with membrane are pairs")
    t.add_argument("--membrane-labels", type=int, nargs="+", default=[1, 2], metavar="L",
                   help="label values of --volume label maps that are membrane (default 1 2; in 0/1 maps, 1)")
    t.add_argument("--slice-stride", type=int, default=1, metavar="N",
                   help="use every N-th z-slice with membrane of each --volume (default 1: all)")
    t.add_argument("--size", type=int, default=256, metavar="PX",
                   help="crop side in pixels, a multiple of 2^(floor(log2(PX)) - 2), e.g. 128, 224, 256 "
                        "(default 256; the paper uses 224)")
    t.add_argument("--filters", type=int, default=32, metavar="N",
                   help="filters of the first layer of generator and discriminator (default 32; Pix2Pix uses 64)")
    t.add_argument("--epochs", type=int, default=100, metavar="N", help="epochs in all (default 100, as the paper)")
    t.add_argument("--steps", type=int, metavar="N", help="batches per epoch (default: pairs / batch size)")
    t.add_argument("--batch-size", type=int, default=4, metavar="N", help="crops per batch (default 4)")
    t.add_argument("--learning-rate", type=float, default=2e-4, metavar="LR",
                   help="Adam learning rate of both networks (default 2e-4; beta_1 is 0.5)")
    t.add_argument("--l1-weight", type=float, default=100.0, metavar="LAMBDA",
                   help="weight of the L1 loss against the adversarial one in the generator's loss (default 100)")
    t.add_argument("--pixel-size", type=float, metavar="Å",
                   help="Å per pixel the GAN works at; inputs of a known pixel size are resampled to it "
                        "(default: the first known one of --volume-pixel-size, the tomograms' headers, "
                        "--image-pixel-size)")
    t.add_argument("--image-pixel-size", type=float, metavar="Å",
                   help="Å per pixel of the 2D images (default: unknown, taken to be --pixel-size)")
    t.add_argument("--volume-pixel-size", type=float, metavar="Å",
                   help="Å per voxel of the --volume tomograms (default: their MRC headers)")
    t.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    compute_options(t)
    t.set_defaults(func=cmd_gan_train)


def add_gan_generate(gsub):
    g = gsub.add_parser("generate", help="make synthetic image/mask pairs with a trained GAN",
                        description="Each pair starts from a source mask (the sources are used in turn, in a "
                                    "random order per round; larger masks are cut at random, smaller ones padded "
                                    "with background), turned by a random angle, flipped and blurred, then drawn "
                                    "by the generator. OUTDIR gets images/ and masks/ (PNG, same names; give "
                                    "them to 'membraneseg train --synthetic-images OUTDIR/images "
                                    "--synthetic-masks OUTDIR/masks', which reads their pixel size from "
                                    "pairs.json), pairs.csv, grid.png and pairs.json. The same --seed gives "
                                    "identical files.")
    g.add_argument("gan", metavar="GANDIR", help="GAN model folder (from 'membraneseg gan train')")
    g.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="folder for the pairs (a new one, or one an earlier 'gan generate' wrote: it is replaced)")
    g.add_argument("--masks", nargs="+", required=True, metavar="FILE_OR_DIR",
                   help="source masks: 2D masks (PNG/TIFF/MRC; 0/1, 0/255 or soft 0..255) or MRC label maps "
                        "(their z-slices with membrane), or folders of them")
    g.add_argument("--membrane-labels", type=int, nargs="+", default=[1, 2], metavar="L",
                   help="label values of MRC masks that are membrane (default 1 2, the membranes and vesicles of "
                        "'membraneseg phantoms'; in 0/1 maps, 1)")
    g.add_argument("--slice-stride", type=int, default=1, metavar="N",
                   help="use every N-th z-slice with membrane of each label map (default 1: all)")
    g.add_argument("--mask-pixel-size", type=float, metavar="Å",
                   help="Å per pixel of the source masks (default: MRC headers; images are taken to be at the "
                        "GAN's pixel size); masks are resampled to the GAN's")
    g.add_argument("-n", "--count", type=int, default=100, metavar="N", help="pairs to make (default 100)")
    g.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    g.add_argument("--real-images", nargs="+", default=[], metavar="DIR",
                   help="real 2D images (files or folders, at the GAN's pixel size), e.g. the GAN's training "
                        "images: pairs.csv names the real tile nearest to each generated image, to show copies")
    g.add_argument("--max-angle", type=float, default=180.0, metavar="DEG",
                   help="masks are turned by a random angle in [-DEG, DEG] degrees (default 180)")
    g.add_argument("--blur-sigma", type=float, default=1.0, metavar="PX",
                   help="largest Gaussian blur sigma in pixels that smooths the mask contours, 0-2 (default 1; "
                        "each mask gets a random sigma from 0 to PX; 2-px lines survive up to 2)")
    compute_options(g)
    g.set_defaults(func=cmd_gan_generate)


def _check_folders(*dirs):
    from ..core import io
    for d in dirs:
        if not os.path.isdir(d):
            raise io.InputError(d, "folder not found")


def cmd_gan_train(args):
    from ..gan import data, pix2pix
    from ..core import io
    if not (args.images or args.volume):
        raise SystemExit("no training data: give --images DIR --masks DIR and/or --volume TOMO LABELS")
    if min(args.epochs, args.batch_size, args.filters, args.slice_stride, args.steps or 1) < 1:
        raise SystemExit("--epochs, --steps, --batch-size, --filters and --slice-stride must be positive")
    try:
        data.generator_depth(args.size)
    except ValueError as exc:
        raise SystemExit("--size: %s" % exc)
    check_folder_pairs(args.images, args.masks, "--images", "--masks")
    _check_folders(*args.images, *args.masks)
    pairs = [data.load_image_pair(i, m, args.image_pixel_size, folder)
             for i, m, folder in image_pairs(args.images, args.masks)]
    for tomo, labels in args.volume:
        pairs += data.load_volume_pairs(tomo, labels, args.membrane_labels, args.volume_pixel_size,
                                            args.slice_stride)
    px = args.pixel_size or next((p.pixel_size for p in pairs if p.pixel_size), 0.0)
    pairs = [data.resample(p, px) for p in pairs]
    small = [p for p in pairs if min(p.image.shape) < args.size // 2]
    if small:
        log.warning("%d pair(s) are smaller than half the crop size (%d px) and are mostly border, e.g. %s",
                    len(small), args.size, small[0].source)
    log.info("GAN input: %d pair(s) from %d image folder(s) and %d tomogram(s), at %s", len(pairs),
             len(args.images), len(args.volume), "%.2f Å/px" % px if px else "an unknown pixel size")
    if not pairs:
        raise io.InputError(args.output, "no training pairs")
    card = pix2pix.train_gan(pairs, args.output, size=args.size, filters=args.filters, epochs=args.epochs,
                         steps=args.steps, batch_size=args.batch_size, lr=args.learning_rate,
                         lambda_l1=args.l1_weight, seed=args.seed, pixel_size=px)
    print("%s\t%d epochs\tg_l1 %.4f" % (args.output, card.epochs_run, card.history[-1]["g_l1"]))


def cmd_gan_generate(args):
    from ..gan import data, generate, pix2pix
    from ..core import io
    if args.count < 1 or args.slice_stride < 1:
        raise SystemExit("--count and --slice-stride must be positive")
    if not 0 <= args.blur_sigma <= 2 or not 0 <= args.max_angle <= 180:
        raise SystemExit("--blur-sigma must be in [0, 2] px and --max-angle in [0, 180] degrees")
    card = pix2pix.read_gan_card(args.gan)   # before reading the masks: they are resampled to its pixel size
    masks = []
    for path in expand_inputs(args.masks):
        masks += data.load_masks(path, args.membrane_labels, args.slice_stride, args.mask_pixel_size,
                                     card.pixel_size)
    reals = []
    for path in expand_inputs(args.real_images):
        vol = io.read(path)
        if vol.data.shape[0] != 1:
            raise io.InputError(path, "a volume where 2D real images are needed")
        reals.append((os.path.basename(path), data.scale_image(vol.data[0])))
    log.info("GAN input: %d source mask(s) from %d path(s), %d real image(s)", len(masks), len(args.masks),
             len(reals))
    generate.generate(args.gan, masks, args.output, args.count, args.seed, reals, args.max_angle,
                          (0.0, args.blur_sigma))
    print("%s\t%d pairs" % (args.output, args.count))
