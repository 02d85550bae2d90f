"""What the commands share: the compute options every command takes, and the checks that read every input
before slow work starts and report the refused ones together at the end."""
import logging

from ..core import io
from ..preprocessing import preprocess

log = logging.getLogger("membraneseg")


def compute_options(p):
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="CPU threads for TensorFlow, numba and OpenCV (default: all cores)")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                   help="auto uses a GPU when TensorFlow sees one; cpu hides all GPUs (default: auto)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--error-file", metavar="FILE", help="on bad input, also write the one-line reason to FILE "
                                                        "(used by the Scipion protocols)")


def read_input(path, volumes_only=False):
    """The input (memory-mapped), refused with the reason when it is unreadable, or 2D and ``volumes_only``."""
    vol = io.read(path)
    if volumes_only and vol.is_2d:
        raise io.InputError(path, "a 2D image (%d x %d pixels) where a volume is needed" % vol.data.shape[:0:-1])
    return vol


def check_inputs(paths, volumes_only=False):
    """Read every input's header and a sample of its voxels before any slow work (loading a model) starts.
    Returns the usable paths and the InputErrors of the others."""
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
    if not refused:
        return
    if total == 1:
        raise refused[0]
    for exc in refused:
        log.error("%s", exc)
    raise io.InputError("%d of %d inputs" % (len(refused), total), "; ".join(str(e) for e in refused))


def refuse_collisions(inputs, outputs, what):
    """Refuse inputs whose results would land on the same file (two inputs of the same name from different
    folders), naming both, before anything is written."""
    for out in set(outputs):
        if outputs.count(out) > 1:
            same = [i for i, o in zip(inputs, outputs) if o == out]
            raise io.InputError(same[1], "would overwrite the %s of %s (%s); put them into separate output folders"
                                % (what, same[0], out))


def probability(text):
    """argparse type: a probability in [0, 1]."""
    value = float(text)
    if not 0 <= value <= 1:
        raise ValueError("not a probability in [0, 1]")
    return value


def check_folder_pairs(image_dirs, mask_dirs, image_flag, mask_flag):
    """Image and mask folders come in pairs: one MASK_FLAG folder per IMAGE_FLAG folder."""
    if len(image_dirs) != len(mask_dirs):
        raise SystemExit("give one %s folder per %s folder" % (mask_flag, image_flag))
