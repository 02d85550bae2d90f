"""The bad and the odd inputs of issue 9, written to disk, with what the engine must say about each.

The command-line tests (tests/test_bad_inputs_cli.py) and the protocol tests (test_bad_inputs.py) both run them.
Nothing here imports pyworkflow: the engine tests use it too.

``REFUSED`` inputs must end in one line naming the file and the problem, with no output left. ``USABLE`` ones
(other MRC modes, 0 or 1 Å headers, an extended header, NaN/Inf voxels, a volume smaller than one patch) must be
processed, with the input's shape and a trusted voxel size in the output header.
"""
import os
import struct

import mrcfile
import numpy as np

VOXEL = 10.0
SHAPE = (6, 64, 72)           # Z, Y, X
SMALL = (3, 20, 24)           # smaller than any patch in X and Y


def noise(shape=SHAPE, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def write_mrc(path, data, voxel=VOXEL, extended=None):
    """An MRC file as another program might write it: any mode mrcfile knows, any voxel size, optionally an FEI
    extended header."""
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel
        if extended is not None:
            mrc.set_extended_header(extended)
            mrc.header.exttyp = b"FEI1"
    return path


def _text(path):
    with open(path, "w") as f:
        f.write("this is not a tomogram\n" * 40)


def _empty(path):
    open(path, "wb").close()


def _truncated(path):
    write_mrc(path, noise())
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _broken_extended_header(path):
    """The header announces a megabyte of extended header that the file does not hold (word 24, NSYMBT)."""
    write_mrc(path, noise())
    with open(path, "r+b") as f:
        f.seek(92)
        f.write(struct.pack("<i", 1 << 20))


def _sprinkled(path):
    data = noise()
    data[1, 5, 7] = data[3, 40, 2] = np.nan
    data[2, 10, 10], data[4, 0, 0] = np.inf, -np.inf
    write_mrc(path, data)


def _non_finite(path):
    data = np.full(SHAPE, np.nan, np.float32)
    data[0, 0, :5] = np.inf
    write_mrc(path, data)


# name: (file name, writer, words the one-line reason must contain)
REFUSED = {
    "missing file": ("missing.mrc", lambda p: None, "file not found"),
    "not MRC or TIFF": ("notes.txt", _text, "unsupported file type '.txt'"),
    "text named .mrc": ("text.mrc", _text, "not a readable MRC file"),
    "text named .tif": ("text.tif", _text, "not a readable image"),
    "empty file": ("empty.mrc", _empty, "not a readable MRC file"),
    "truncated MRC": ("truncated.mrc", _truncated, "not a readable MRC file"),
    "broken extended header": ("badext.mrc", _broken_extended_header, "not a readable MRC file"),
    "complex (mode 4)": ("complex.mrc", lambda p: write_mrc(p, noise().astype(np.complex64)),
                         "complex data (MRC mode 4)"),
    "all NaN or Inf": ("nonfinite.mrc", _non_finite, "no finite voxel values"),
    "all-constant": ("constant.mrc", lambda p: write_mrc(p, np.full(SHAPE, 3.0, np.float32)),
                     "all voxels have the same value (3)"),
}
# refused only where a volume is needed (the protocols, or --volumes-only)
FLAT = ("flat.mrc", lambda p: write_mrc(p, noise()[0]), "a 2D image (72 x 64 pixels) where a volume is needed")

# name: (file name, writer, shape (Z, Y, X), header voxel size)
USABLE = {
    "mode 0 (int8)": ("int8.mrc", lambda p: write_mrc(p, (noise() * 30).astype(np.int8)), SHAPE, VOXEL),
    "mode 1 (int16)": ("int16.mrc", lambda p: write_mrc(p, (noise() * 300).astype(np.int16)), SHAPE, VOXEL),
    "mode 6 (uint16)": ("uint16.mrc", lambda p: write_mrc(p, (noise() * 300 + 2000).astype(np.uint16)), SHAPE,
                        VOXEL),
    "mode 12 (float16)": ("float16.mrc", lambda p: write_mrc(p, noise().astype(np.float16)), SHAPE, VOXEL),
    "mode 2 with NaN and Inf voxels": ("sprinkled.mrc", _sprinkled, SHAPE, VOXEL),
    "header 0 Å": ("zero.mrc", lambda p: write_mrc(p, noise(), voxel=0.0), SHAPE, 0.0),
    "header 1 Å": ("one.mrc", lambda p: write_mrc(p, noise(), voxel=1.0), SHAPE, 1.0),
    "extended header": ("exthdr.mrc", lambda p: write_mrc(p, noise(), extended=np.zeros(
        4, dtype=[("metadata", "<f4", (32,))])), SHAPE, VOXEL),
    "smaller than one patch": ("small.mrc", lambda p: write_mrc(p, noise(SMALL)), SMALL, VOXEL),
}


def flip_last_bytes(path, n=16):
    """Damage a file as a bad disk or a broken copy would: its last ``n`` bytes inverted."""
    with open(path, "r+b") as f:
        f.seek(-n, 2)
        tail = f.read()
        f.seek(-n, 2)
        f.write(bytes(255 - b for b in tail))


def make(folder, cases):
    """Write ``cases`` (REFUSED or USABLE) into ``folder``; returns {name: path}."""
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for name, (filename, writer, *_) in cases.items():
        paths[name] = os.path.join(folder, filename)
        writer(paths[name])
    return paths


def outputs(folder):
    """Files in ``folder`` that look finished: not hidden, so not a .partial file being written."""
    if not os.path.isdir(folder):
        return []
    return sorted(f for _, _, files in os.walk(folder) for f in files if not f.startswith("."))
