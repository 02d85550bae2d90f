"""Reading and writing MRC volumes and 2D images (TIFF/PNG), keeping the voxel size.

Volumes are returned as arrays shaped (Z, Y, X) and MRC data stay memory-mapped, so a tomogram larger than RAM
can be read slab by slab. 2D images come back as (1, Y, X) with ``is_2d`` set. Every file is written under a
hidden temporary name and renamed when complete, so a killed run never leaves a file that looks finished.
"""
import contextlib
import json
import logging
import mmap
import os
import warnings
from typing import NamedTuple

import numpy as np

log = logging.getLogger(__name__)

MRC_SUFFIXES = (".mrc", ".mrcs", ".rec", ".st", ".map", ".ali")
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
# Header voxel sizes that other programs write when they do not know it (MemBrain-seg/TARDIS users report both).
SUSPICIOUS_VOXEL_SIZES = (0.0, 1.0)


class InputError(ValueError):
    """A problem with an input file, stated with the file's name so that the user can act on it."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__("%s: %s" % (path, problem))


class Volume(NamedTuple):
    data: np.ndarray          # (Z, Y, X); memory-mapped for MRC input
    voxel_size: float         # Å per voxel from the header, 0.0 when the file does not say
    is_2d: bool               # True for a single image (then Z == 1)
    path: str


def suffix_of(path):
    return os.path.splitext(str(path))[1].lower()


def is_supported(path):
    return suffix_of(path) in MRC_SUFFIXES + IMAGE_SUFFIXES


def read(path, mmap=True) -> Volume:
    """Read an MRC volume or a 2D image. Raises InputError with the reason when the file cannot be used."""
    path = str(path)
    if not os.path.isfile(path):
        raise InputError(path, "file not found")
    suffix = suffix_of(path)
    if suffix in MRC_SUFFIXES:
        return _read_mrc(path, mmap)
    if suffix in IMAGE_SUFFIXES:
        return _read_image(path)
    raise InputError(path, "unsupported file type %r; expected MRC (%s) or an image (%s)"
                     % (suffix, ", ".join(MRC_SUFFIXES), ", ".join(IMAGE_SUFFIXES)))


def read_pair(image_path, labels_path, what="labels"):
    """An image or tomogram and its ``what`` ("labels": a label map, or "mask": a 2D mask), read and checked to
    have the same shape; the error names the second file and gives both shapes (a 2D mask's as rows x columns)."""
    img, lab = read(image_path), read(labels_path)
    if img.data.shape != lab.data.shape:
        shapes = (lab.data.shape, img.data.shape) if what == "labels" else (lab.data.shape[1:], img.data.shape[1:])
        verb = "have" if what == "labels" else "has"
        raise InputError(labels_path, "%s %s shape %s but %s has %s" % (what, verb, shapes[0], image_path, shapes[1]))
    return img, lab


def mask_foreground(data):
    """0/1 uint8 of a mask given as 0/1, 0/255 or soft 0..255: foreground above 127, or above 0 in a 0/1 mask."""
    data = np.asarray(data)
    top = float(data.max()) if data.size else 0.0
    return (data > (127 if top > 1 else 0)).astype(np.uint8)


def _read_mrc(path, mmap):
    import mrcfile
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opener = mrcfile.mmap if mmap else mrcfile.open
            mrc = opener(path, mode="r", permissive=False)
    except Exception as exc:  # mrcfile raises ValueError/IOError with a technical text; say what it means
        raise InputError(path, "not a readable MRC file (%s). Is it truncated or of another format?" % exc)
    data = mrc.data
    if data is None:
        raise InputError(path, "the MRC file holds no data")
    voxel_size = float(mrc.voxel_size.x)
    is_2d = data.ndim == 2
    if data.ndim == 2:
        data = data[np.newaxis]
    elif data.ndim != 3:
        raise InputError(path, "expected a 2D image or a 3D volume, found %d dimensions" % data.ndim)
    if data.dtype.kind == "c":
        raise InputError(path, "complex data (MRC mode %d) cannot be segmented" % int(mrc.header.mode))
    # Keep the mrcfile object alive as long as the array: the memory map is closed with it.
    return Volume(_Keep(data, mrc), voxel_size, is_2d, path)


class _Keep(np.ndarray):
    """A view of a memory-mapped array that keeps its MRC file object open."""

    def __new__(cls, array, owner):
        obj = np.asarray(array).view(cls)
        obj._owner = owner
        return obj

    def __array_finalize__(self, obj):
        self._owner = getattr(obj, "_owner", None)


def _read_image(path):
    try:
        if suffix_of(path) in (".tif", ".tiff"):
            import tifffile
            data = tifffile.imread(path)
        else:
            import cv2
            data = cv2.imread(path, cv2.IMREAD_UNCHANGED)
            if data is None:
                raise ValueError("OpenCV could not decode it")
            if data.ndim == 3:  # OpenCV gives BGR(A)
                data = data[..., 2::-1] if data.shape[2] >= 3 else data[..., 0]
    except InputError:
        raise
    except Exception as exc:
        raise InputError(path, "not a readable image (%s)" % exc)
    data = np.asarray(data)
    if data.ndim == 3 and data.shape[-1] in (3, 4) and data.shape[0] > 4:
        data = to_gray(data[..., :3])
    if data.ndim == 2:
        return Volume(data[np.newaxis], 0.0, True, path)
    if data.ndim == 3:
        return Volume(data, 0.0, False, path)  # a multi-page TIFF stack is a volume
    raise InputError(path, "expected a 2D image or a 3D stack, found shape %s" % (data.shape,))


def to_gray(rgb):
    """RGB to luma with the BT.601 weights OpenCV uses, so images read here match cv2.imread(..., 0)."""
    rgb = np.asarray(rgb, dtype=np.float32)
    gray = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)


def resolve_pixel_size(header_voxel_size, given=None, path="input"):
    """The pixel size (Å) to use: the one given (by Scipion or --pixel-size) wins; a header of 0 or 1 Å is not
    trusted. Returns 0.0 when nothing is known, which callers treat as 'use the model's pixel size'."""
    if given:
        if header_voxel_size and abs(header_voxel_size - given) > 1e-3 * given \
                and header_voxel_size not in SUSPICIOUS_VOXEL_SIZES:
            log.info("%s: header says %.3f Å per voxel; using the %.3f Å given", path, header_voxel_size, given)
        return float(given)
    if header_voxel_size in SUSPICIOUS_VOXEL_SIZES or header_voxel_size is None:
        if header_voxel_size:
            log.warning("%s: header voxel size is %.1f Å, which programs write when they do not know it; "
                        "ignoring it. Give --pixel-size to set the real one.", path, header_voxel_size)
        return 0.0
    return float(header_voxel_size)


# ----------------------------------------------------------------------------- writing
def partial_name(path):
    """Where a file is written before it is complete: hidden, and named so nobody takes it for a result."""
    head, tail = os.path.split(str(path))
    return os.path.join(head, ".%s.partial" % tail)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path to write; rename it to ``path`` only if the block finished without error."""
    tmp = partial_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path, data, sort_keys=False):
    """Write ``data`` as JSON (indent 1) through ``atomic_path``, so a killed run never leaves half a file."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=sort_keys)


def _mrc_dtype(dtype):
    """The MRC-representable dtype closest to ``dtype``: uint8 masks are stored as int8 (mode 0)."""
    dtype = np.dtype(dtype)
    if dtype in (np.uint8, np.int8, np.bool_):
        return np.int8
    if dtype in (np.int16, np.uint16, np.float16, np.float32):
        return dtype
    return np.float32


@contextlib.contextmanager
def create_mrc(path, shape, dtype, voxel_size):
    """Create an MRC file of ``shape`` and yield its writable memory-mapped data (Z, Y, X); the file appears
    under its name only when the block completes, with the voxel size and statistics in the header."""
    import mrcfile
    with atomic_path(path) as tmp:
        mrc = mrcfile.new_mmap(tmp, shape=tuple(shape), mrc_mode=_mode_of(_mrc_dtype(dtype)), overwrite=True)
        try:
            yield mrc.data
            mrc.voxel_size = voxel_size or 0.0
            _update_stats(mrc)
            mrc.flush()
        finally:
            mrc.close()


def _mode_of(dtype):
    return {np.dtype(np.int8): 0, np.dtype(np.int16): 1, np.dtype(np.float32): 2,
            np.dtype(np.uint16): 6, np.dtype(np.float16): 12}[np.dtype(dtype)]


def release(array):
    """Drop the pages of a memory-mapped array from this process's resident set. They stay in the page cache (and
    written pages are written back), so streaming through a file larger than RAM does not grow the process: the
    kernel would reclaim such pages anyway, but schedulers and users count them."""
    base = array
    while base is not None and not isinstance(base, np.memmap):
        base = getattr(base, "base", None)
    mm = getattr(base, "_mmap", None)
    if mm is None:
        return
    if base.flags.writeable:
        mm.flush()
    mm.madvise(mmap.MADV_DONTNEED)


def _update_stats(mrc, chunk_bytes=64 << 20):
    """Header min/max/mean/rms, computed slab by slab so a large file is never loaded whole. Slabs hold about
    ``chunk_bytes`` of float64 (a fixed number of slices would be 1 GB of 2048² slices)."""
    data = mrc.data
    chunk = max(1, chunk_bytes // max(1, 8 * int(np.prod(data.shape[1:]))))
    lo, hi, total, total2, n = np.inf, -np.inf, 0.0, 0.0, 0
    for z in range(0, data.shape[0], chunk):
        block = np.asarray(data[z:z + chunk], dtype=np.float64)
        lo, hi = min(lo, block.min()), max(hi, block.max())
        total += block.sum()
        total2 += np.square(block).sum()
        n += block.size
        release(data)
    mean = total / max(n, 1)
    mrc.header.dmin, mrc.header.dmax, mrc.header.dmean = lo, hi, mean
    mrc.header.rms = np.sqrt(max(total2 / max(n, 1) - mean * mean, 0.0))


def write(path, data, voxel_size=0.0):
    """Write a volume (Z, Y, X) or a 2D image; the format follows the suffix. Images with Z == 1 are written 2D."""
    path = str(path)
    data = np.asarray(data)
    suffix = suffix_of(path)
    if suffix in MRC_SUFFIXES:
        with create_mrc(path, data.shape, data.dtype, voxel_size) as out:
            out[...] = data
        return path
    image = data[0] if data.ndim == 3 and data.shape[0] == 1 else data
    with atomic_path(path) as tmp:
        if suffix in (".tif", ".tiff"):
            import tifffile
            kwargs = {}
            if voxel_size:  # pixels per centimetre in the TIFF resolution tags
                kwargs = dict(resolution=(1e8 / voxel_size, 1e8 / voxel_size), resolutionunit="CENTIMETER")
            tifffile.imwrite(tmp, image, **kwargs)
        elif suffix == ".png":
            import cv2
            if not cv2.imwrite(tmp + ".png", image):
                raise OSError("could not write %s" % path)
            os.replace(tmp + ".png", tmp)
        else:
            raise ValueError("%s: cannot write files of type %r" % (path, suffix))
    return path
