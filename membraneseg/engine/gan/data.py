"""Data for the Pix2Pix GAN (``pix2pix``): (mask, image) pairs from 2D image/mask files and from tomograms with label
maps, random training crops, the random changes that turn one mask into a new one, and picture grids.

Images are scaled like the generator's tanh output: robust normalisation (``preprocess.normalize``), clipped at
+-3 standard deviations and divided by 3, into [-1, 1]. Masks are 0/1 uint8. A pair keeps its own pixel size
until ``resample`` brings it to the GAN's.
"""
import math
import os
from dataclasses import dataclass, replace

import numpy as np

from ..core import io, tiling
from ..preprocessing import preprocess

CLIP_SD = 3.0
SCALING = {"normalize": "robust", "clip_sd": CLIP_SD, "range": [-1, 1], "png": "uint8 = round((x + 1) * 127.5)"}
# Re-threshold level of a blurred mask. A blur of sigma 1 px leaves 0.40 at the centre of a 1-px line, about 0.5 on
# a diagonal 2-px line (1.4 px across) and 0.30 just outside a straight edge, so 0.5 breaks thin membranes into
# dashes while 0.35 keeps them. Measured on a 2-px ring of radius 31 px turned at random, 200 trials each: with
# sigma 0-1 px, 0.35 kept it in one piece every time, 7% thicker on average (30% at sigma 1; 0.5 broke it in 16
# of 200 trials at sigma 1); at sigma 1.5 in 198 of 200 trials (0.4: 174, 0.45: 20), 32% thicker.
BLUR_LEVEL = 0.35
THUMB = 64     # side of the thumbnails that find a generated image's nearest real one


def generator_depth(size):
    """Down-sampling levels of the generator: floor(log2(size)) - 2, which leaves a 4 to 7 px bottleneck. ``size``
    must be a multiple of 2**depth (e.g. 64, 96, 128, 224, 256); other sizes raise a ValueError."""
    if size < 32:
        raise ValueError("GAN size %d px is too small: it must be at least 32 px" % size)
    depth = int(math.floor(math.log2(size))) - 2
    if size % 2 ** depth:
        raise ValueError("GAN size %d px is not usable: the generator halves the image floor(log2(size)) - 2 = %d "
                         "times, so the size must be a multiple of %d (e.g. %d)"
                         % (size, depth, 2 ** depth, size // 2 ** depth * 2 ** depth))
    return depth


@dataclass
class GanPair:
    image: np.ndarray          # (Y, X) float32 in [-1, 1]
    mask: np.ndarray           # (Y, X) uint8, 1 = membrane
    source: str                # the image file (or tomogram) it came from
    group: str = ""
    pixel_size: float = 0.0    # Å per pixel; 0 = unknown (taken to be the GAN's)


def scale_image(image, stats=None):
    """float32 in [-1, 1]: robust normalisation (``stats`` of the whole volume, else of ``image``), +-3 s.d."""
    image = np.asarray(image, dtype=np.float32)
    stats = stats or preprocess.robust_stats(image[None] if image.ndim == 2 else image)
    out = np.clip(preprocess.normalize(image, stats), -CLIP_SD, CLIP_SD)
    return out / np.float32(CLIP_SD)


def to_uint8(image):
    return np.clip(np.rint((np.asarray(image, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def binary_masks(vol, membrane_labels=(1, 2)):
    """0/1 (Z, Y, X) from what ``io.read`` returned: MRC files are label maps (``membrane_labels`` are membrane;
    in a 0/1 map, 1); images are masks, 0/1, 0/255 or soft 0..255 with foreground above 127, as ``train`` reads
    them."""
    data = np.asarray(vol.data)
    if io.suffix_of(vol.path) in io.MRC_SUFFIXES:
        top = float(data.max()) if data.size else 0.0
        return np.isin(data, list(membrane_labels) + ([1] if top <= 1 else [])).astype(np.uint8)
    return io.mask_foreground(data)


def membrane_slices(masks, stride=1):
    """Indices of the z-slices of 0/1 ``masks`` that hold membrane, every ``stride``-th of them."""
    return [z for z in range(masks.shape[0]) if masks[z].any()][::max(1, int(stride))]


def load_image_pair(image_path, mask_path, pixel_size=0.0, group=""):
    """A 2D image and its mask (the same shape), as a GanPair at ``pixel_size`` Å (0 = unknown)."""
    img, msk = io.read_pair(image_path, mask_path, "mask")
    if img.data.shape[0] != 1:
        raise io.InputError(image_path, "a stack of %d images where one 2D image is needed" % img.data.shape[0])
    return GanPair(scale_image(img.data[0]), binary_masks(msk)[0], str(image_path), group, pixel_size or 0.0)


def load_volume_pairs(tomo_path, label_path, membrane_labels=(1, 2), pixel_size=None, stride=1):
    """One pair per z-slice with membrane (every ``stride``-th of them) of a tomogram and its label map; the
    slices share the tomogram's normalisation. ``pixel_size`` overrides the header (Å per voxel)."""
    vol, lab = io.read_pair(tomo_path, label_path)
    masks = binary_masks(lab, membrane_labels)
    zs = membrane_slices(masks, stride)
    if not zs:
        raise io.InputError(label_path, "no slice has a membrane label (%s)" % " ".join(map(str, membrane_labels)))
    px = io.resolve_pixel_size(vol.voxel_size, pixel_size, tomo_path)
    stats = preprocess.robust_stats(vol.data)
    return [GanPair(scale_image(vol.data[z], stats), masks[z], str(tomo_path), str(tomo_path), px) for z in zs]


def load_masks(path, membrane_labels=(1, 2), stride=1, pixel_size=None, to_pixel_size=0.0):
    """[(name, 0/1 mask)] from a mask image (one) or a label map / stack (its z-slices with membrane, every
    ``stride``-th), resampled to ``to_pixel_size`` Å when the file's pixel size is known (``pixel_size`` or an
    MRC header)."""
    vol = io.read(path)
    masks = binary_masks(vol, membrane_labels)
    px = io.resolve_pixel_size(vol.voxel_size, pixel_size, path)
    zs = membrane_slices(masks, stride)
    if not zs:
        raise io.InputError(path, "holds no membrane (labels %s)" % " ".join(map(str, membrane_labels)))
    name = os.path.basename(str(path))
    return [(name if masks.shape[0] == 1 else "%s:z%d" % (name, z), _resize_mask(masks[z], px, to_pixel_size))
            for z in zs]


def _resize_mask(mask, from_px, to_px):
    return preprocess.resize_nearest(mask, preprocess.scaled_shape(mask.shape, from_px, to_px))


def resample(pair, to_px):
    """The pair at ``to_px`` Å per pixel (unchanged when either pixel size is unknown)."""
    shape = preprocess.scaled_shape(pair.image.shape, pair.pixel_size, to_px)
    if shape == pair.image.shape:
        return pair
    return replace(pair, image=preprocess.resize_slice(pair.image, shape),
                   mask=preprocess.resize_nearest(pair.mask, shape), pixel_size=float(to_px))


# ----------------------------------------------------------------------------- crops
def _start(n, size, rng):
    """A random start along an axis of ``n`` pixels; a shorter axis is centred."""
    return int(rng.integers(0, n - size + 1)) if n >= size else -((size - n) // 2)


def random_window(mask, size, rng, tries=5):
    """(r0, c0) of a random size x size window, one with membrane if a few tries find one."""
    for _ in range(tries):
        r0, c0 = _start(mask.shape[0], size, rng), _start(mask.shape[1], size, rng)
        if tiling.crop(mask, r0, c0, size, 0).any():
            break
    return r0, c0


class CropSampler:
    """Random size x size (mask, image) crops of the pairs, with random flips and turns by 90°."""

    def __init__(self, pairs, size, seed):
        self.pairs, self.size = pairs, size
        self.rng = np.random.default_rng(seed)
        self.weights = np.array([p.image.size for p in pairs], float)
        self.weights /= self.weights.sum()

    def one(self, augment=True):
        rng, p = self.rng, self.pairs[self.rng.choice(len(self.pairs), p=self.weights)]
        r0, c0 = random_window(p.mask, self.size, rng)
        m, x = tiling.crop(p.mask, r0, c0, self.size), tiling.crop(p.image, r0, c0, self.size)
        if augment:
            k, flip = int(rng.integers(4)), rng.random() < 0.5
            m, x = (np.rot90(a, k) for a in (m, x))
            if flip:
                m, x = m[:, ::-1], x[:, ::-1]
        return m.astype(np.float32)[..., None], x.astype(np.float32)[..., None]

    def batch(self, n, augment=True):
        masks, images = zip(*(self.one(augment) for _ in range(n)))
        return np.stack(masks), np.stack(images)


def fixed_crops(pairs, size, n=4, seed=1234):
    """``n`` un-augmented crops, the same on every call: the rows of the sample grids."""
    return CropSampler(pairs, size, seed).batch(n, augment=False)


# ----------------------------------------------------------------------------- new masks
def transform_mask(mask, rng, max_angle=180.0, blur_sigma=(0.0, 1.0)):
    """A new 0/1 mask of the same shape: rotated by a random angle in [-max_angle, max_angle] degrees (nearest,
    reflected border), flipped left-right and up-down with probability 1/2 each, then blurred with a random
    sigma in ``blur_sigma`` (px) and re-thresholded at BLUR_LEVEL, which smooths the contour without losing thin
    lines (see BLUR_LEVEL)."""
    import cv2
    m = (np.asarray(mask) > 0).astype(np.float32)
    rows, cols = m.shape
    angle, flip_lr, flip_ud = rng.uniform(-max_angle, max_angle), rng.random() < 0.5, rng.random() < 0.5
    sigma = rng.uniform(*blur_sigma)
    turn = cv2.getRotationMatrix2D(((cols - 1) / 2.0, (rows - 1) / 2.0), angle, 1.0)
    m = cv2.warpAffine(m, turn, (cols, rows), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
    m = m[::-1 if flip_ud else 1, ::-1 if flip_lr else 1]
    if sigma > 0.05:
        smooth = cv2.GaussianBlur(np.ascontiguousarray(m), (0, 0), sigma) > BLUR_LEVEL
        m = smooth if smooth.any() or not m.any() else m
    return (m > 0).astype(np.uint8)


def source_region(mask, side, rng):
    """A side x side region of a source mask: a random one (with membrane if possible) of a larger mask, a
    smaller mask centred in background."""
    r0, c0 = random_window(mask, side, rng)
    return tiling.crop(np.asarray(mask, np.uint8), r0, c0, side, fill=0)


def centre(a, size):
    r0, c0 = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
    return a[r0:r0 + size, c0:c0 + size]


# ----------------------------------------------------------------------------- real images and pictures
def thumbnail(image):
    return preprocess.resize_slice(image, (THUMB, THUMB)).ravel()


def real_tiles(images, size, per_image=64):
    """(names, tiles, thumbnails) of size x size tiles of real [-1, 1] images [(name, image)], at most
    ``per_image`` per image; the references that show whether a generated image copies one it was trained on."""
    names, tiles = [], []
    for name, image in images:
        rows, cols = image.shape
        starts = [(r, c) for r in range(0, max(1, rows - size + 1), size) for c in range(0, max(1, cols - size + 1),
                                                                                           size)]
        for r, c in starts[:per_image]:
            names.append("%s@%d,%d" % (name, r, c))
            tiles.append(tiling.crop(image, r, c, size))
    return names, tiles, np.array([thumbnail(t) for t in tiles]).reshape(len(tiles), THUMB * THUMB)


def nearest(image, thumbs):
    """(index, RMS distance) of the thumbnail nearest to ``image``'s ([-1, 1] units)."""
    d = np.sqrt(np.mean((thumbs - thumbnail(image)[None]) ** 2, axis=1))
    i = int(np.argmin(d))
    return i, float(d[i])


def grid(rows, gap=2):
    """uint8 picture of rows of equally sized [-1, 1] images, side by side, with white gaps."""
    width = sum(a.shape[1] for a in rows[0]) + gap * (len(rows[0]) - 1)
    height = sum(r[0].shape[0] for r in rows) + gap * (len(rows) - 1)
    out = np.full((height, width), 255, np.uint8)
    y = 0
    for row in rows:
        x = 0
        for a in row:
            out[y:y + a.shape[0], x:x + a.shape[1]] = to_uint8(a)
            x += a.shape[1] + gap
        y += row[0].shape[0] + gap
    return out
