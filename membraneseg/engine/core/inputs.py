"""Finding the inputs a command names: folders expanded to the volumes and images inside them, and 2D images
paired with their masks by file name. Used by the command line and by scripts alike."""
import glob
import logging
import os

from . import io

log = logging.getLogger(__name__)


def expand_inputs(paths):
    """Files as given; folders expand to the MRC volumes and images inside them (sorted)."""
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


def image_pairs(image_dirs, mask_dirs):
    """(image, mask, image folder) for every image with a mask of the same name; images without one (unlabelled
    slices) are left out, and said so."""
    if len(image_dirs) != len(mask_dirs):
        raise ValueError("give one masks folder per images folder")
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
