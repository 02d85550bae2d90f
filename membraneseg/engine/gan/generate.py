"""New training pairs from a trained Pix2Pix GAN (``pix2pix``): source masks are cut to the GAN's size, changed at
random (``data.transform_mask``) and turned into images by the generator.

The output folder holds images/syn_NNNNN.png (uint8, [-1, 1] -> 0..255) and masks/syn_NNNNN.png (0/255), which
``membraneseg train --images OUT/images --masks OUT/masks`` reads; pairs.csv (per pair: its files, the source mask
and, given real images, the nearest real tile and its RMS distance on 64 x 64 thumbnails, in [-1, 1] units: a
distance near 0 means the GAN copied a training image); grid.png (up to 8 rows mask | generated | nearest real);
and pairs.json (count, seed, GAN model and its checksum, pixel size). The folder is built as OUT.partial and
renamed when complete, so a killed run leaves nothing that looks finished.
"""
import csv
import json
import logging
import os
import shutil

import numpy as np

from ...constants import PAIRS_GRID, PAIRS_JSON
from . import data, pix2pix
from ..core import io
from ..network.device import describe_device

log = logging.getLogger(__name__)

GRID_ROWS = 8
BATCH = 8


def _named(items, prefix):
    """[(name, array)] from arrays or (name, array) tuples."""
    return [item if isinstance(item, tuple) else ("%s_%03d" % (prefix, i), item) for i, item in enumerate(items)]


def _source_masks(sources, count, size, rng, max_angle, blur_sigma):
    """(source name, size x size mask) for each of ``count`` pairs: the sources in a new random order per round."""
    # cut a region 1.42x the size and crop its centre after turning it, so that turns bring no reflected corners in
    side = int(np.ceil(size * np.sqrt(2))) if max_angle else size
    order = []
    for i in range(count):
        if i % len(sources) == 0:
            order = rng.permutation(len(sources))
        name, mask = sources[order[i % len(sources)]]
        region = data.source_region(mask, side, rng)
        yield name, data.centre(data.transform_mask(region, rng, max_angle, blur_sigma), size)


def generate(gan_dir, masks, out_dir, count, seed=0, real_images=None, max_angle=180.0, blur_sigma=(0.0, 1.0)):
    """Write ``count`` synthetic pairs to ``out_dir`` from ``masks`` (2D 0/1 arrays or (name, array) tuples, at the
    GAN's pixel size); ``real_images`` ([-1, 1] arrays or (name, array)) are the references for the nearest-real
    check. The same seed gives byte-identical files. Returns the path of pairs.json."""
    sources = _named(masks, "mask")
    if not sources or count < 1:
        raise ValueError("generate needs source masks and a count of at least 1")
    generator, card = pix2pix.load_generator(gan_dir)
    out_dir = os.path.abspath(str(out_dir))
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not os.path.isfile(os.path.join(out_dir, PAIRS_JSON)):
        raise io.InputError(out_dir, "exists and does not hold generated pairs; choose a new or empty folder")
    names, tiles, thumbs = data.real_tiles(_named(real_images or [], "real"), card.size)
    log.info("generating %d pair(s) of %d px on %s from %d source mask(s)%s", count, card.size, describe_device(),
             len(sources), ", compared with %d real tile(s)" % len(tiles) if tiles else "")
    tmp = out_dir + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    for sub in ("images", "masks"):
        os.makedirs(os.path.join(tmp, sub))
    rng = np.random.default_rng(seed)
    made, rows, grid = _source_masks(sources, count, card.size, rng, max_angle, blur_sigma), [], []
    for start in range(0, count, BATCH):
        batch = [next(made) for _ in range(min(BATCH, count - start))]
        fake = generator(np.stack([m for _, m in batch])[..., None].astype(np.float32), training=False).numpy()
        for i, ((source, mask), image) in enumerate(zip(batch, fake[..., 0]), start):
            stem = "syn_%05d.png" % i
            io.write(os.path.join(tmp, "images", stem), data.to_uint8(image))
            io.write(os.path.join(tmp, "masks", stem), mask * np.uint8(255))
            row = dict(image="images/" + stem, mask="masks/" + stem, source_mask=source, nearest_real="",
                       nearest_distance="")
            if tiles:
                k, d = data.nearest(image, thumbs)
                row.update(nearest_real=names[k], nearest_distance="%.4f" % d)
            rows.append(row)
            if len(grid) < GRID_ROWS:
                grid.append([mask * 2.0 - 1.0, image] + ([tiles[k]] if tiles else []))
    with open(os.path.join(tmp, "pairs.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    io.write(os.path.join(tmp, PAIRS_GRID), data.grid(grid))
    with open(os.path.join(tmp, PAIRS_JSON), "w") as f:
        json.dump(dict(count=count, seed=seed, gan_model=os.path.abspath(str(gan_dir)),
                       gan_sha256=card.generator_sha256, pixel_size=card.pixel_size, size=card.size,
                       max_angle=max_angle, blur_sigma=list(blur_sigma), source_masks=len(sources),
                       real_tiles=len(tiles)), f, indent=1, sort_keys=True)
    if os.path.isdir(out_dir):   # an earlier generate run (checked above) or an empty folder
        shutil.rmtree(out_dir)
    os.rename(tmp, out_dir)
    log.info("wrote %d pair(s) to %s", count, out_dir)
    return os.path.join(out_dir, PAIRS_JSON)
