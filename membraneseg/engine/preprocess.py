"""Preprocessing of tomograms before the network sees them: binning, normalisation, edge-enhancing diffusion and
CLAHE (section 3 of the paper), driven by a JSON-able *recipe* so that prediction can repeat exactly what training
saw.

Normalisation is robust: statistics come from the voxels between the 0.5th and 99.5th percentiles of a subsample,
so gold beads and carbon edges do not set the scale. The same statistics are used for every slab of a volume, so
slab-by-slab processing gives the same result as processing the whole volume at once. Every step works slab by
slab, so memory stays bounded whatever the size of the tomogram.

A recipe is a dict with any of these steps (a missing or null step is skipped), applied in this order:
    "bin":       {"factor": N} or {"pixel_size": Å}, and "antialias": true/false
    "normalize": "robust"
    "eed":       {"sigma": voxels, "iterations": N, "step": τ, "k": K or null for automatic}
    "clahe":     {"block": pixels, "clip": limit}
``apply_recipe`` writes the result and, beside it, ``<stem>_recipe.json``: the recipe plus what was applied.
"""
import json
import logging
import os
import shlex
import subprocess
from typing import NamedTuple

import numpy as np

from ..constants import RECIPE_SUFFIX, VERSION
from . import io

log = logging.getLogger(__name__)

SAMPLE_VOXELS = 2_000_000
CLIP_PERCENTILES = (0.5, 99.5)


class Stats(NamedTuple):
    mean: float
    std: float
    low: float   # values are clipped to [low, high] before normalising
    high: float


def sample(volume, n=SAMPLE_VOXELS, max_slices=64):
    """A deterministic, evenly spread subsample of a (possibly memory-mapped) volume (Z, Y, X), read slice by
    slice from at most ``max_slices`` slices, with non-finite values left out."""
    z, y, x = volume.shape
    zs = np.unique(np.linspace(0, z - 1, min(z, max_slices)).astype(int))
    step = max(1, int(np.sqrt(y * x * len(zs) / n)))
    values = np.concatenate([np.asarray(volume[i, ::step, ::step], dtype=np.float64).ravel() for i in zs])
    return values[np.isfinite(values)]


def robust_stats(volume) -> Stats:
    values = sample(volume)
    if values.size == 0:
        return Stats(0.0, 1.0, -np.inf, np.inf)
    low, high = np.percentile(values, CLIP_PERCENTILES)
    inside = values[(values >= low) & (values <= high)]
    if inside.size == 0:
        inside = values
    std = float(inside.std())
    return Stats(float(inside.mean()), std if std > 0 else 1.0, float(low), float(high))


def normalize(block, stats: Stats, out=None):
    """Clip to the robust range and scale to zero mean, unit standard deviation (float32)."""
    block = np.asarray(block, dtype=np.float32)
    out = np.clip(block, stats.low, stats.high, out=out)
    out -= stats.mean
    out /= stats.std
    return out


def resize_slice(image, shape):
    """Resample a 2D slice to ``shape`` (rows, cols): area averaging when shrinking (no aliasing), bilinear when
    enlarging."""
    import cv2
    rows, cols = int(shape[0]), int(shape[1])
    if image.shape == (rows, cols):
        return np.asarray(image, dtype=np.float32)
    shrink = rows < image.shape[0] or cols < image.shape[1]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(np.asarray(image, dtype=np.float32), (cols, rows), interpolation=interp)


def scaled_shape(shape, from_pixel, to_pixel):
    """The 2D shape of a slice of ``shape`` at ``from_pixel`` Å once resampled to ``to_pixel`` Å."""
    if not from_pixel or not to_pixel:
        return tuple(shape)
    f = from_pixel / to_pixel
    return tuple(max(1, int(round(s * f))) for s in shape)


def resize_nearest(labels, shape):
    """Resample a label image to ``shape`` without inventing labels."""
    import cv2
    if labels.shape == tuple(shape):
        return labels
    return cv2.resize(labels, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_NEAREST)


# ----------------------------------------------------------------------------- volumes computed on demand
class Lazy:
    """A (Z, Y, X) float32 volume whose planes are computed when indexed, so that a chain of steps streams
    slab by slab. Supports what the steps use: ``shape`` and indexing whose first index is an int or a slice.
    ``chunk_voxels`` is the slab size that suits the computation (see ``chunks``)."""
    ndim = 3

    def __init__(self, shape, planes, chunk_voxels=None):
        self.shape = tuple(int(s) for s in shape)
        self.size = int(np.prod(self.shape))
        self.chunk_voxels = chunk_voxels
        self._planes = planes          # planes(z0, z1) -> float32 array (z1 - z0, Y, X)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        z, rest = key[0], key[1:]
        if isinstance(z, (int, np.integer)):
            z = int(z) % self.shape[0]
            return self._planes(z, z + 1)[(0,) + rest]
        start, stop, step = z.indices(self.shape[0])
        if stop <= start:
            return np.empty((0,) + self.shape[1:], np.float32)[(slice(None),) + rest]
        return self._planes(start, stop)[::step][(slice(None),) + rest]


CHUNK_VOXELS = 8_000_000   # about 32 MB of float32 per slab when streaming


def chunks(volume):
    """(z0, z1) slabs covering a volume, of about the size its computation prefers."""
    voxels = getattr(volume, "chunk_voxels", None) or CHUNK_VOXELS
    planes = max(1, voxels // max(1, volume.shape[1] * volume.shape[2]))
    return [(z, min(volume.shape[0], z + planes)) for z in range(0, volume.shape[0], planes)]


def pointwise(volume, function):
    """The volume with ``function`` applied to every slab (float32)."""
    return Lazy(volume.shape, lambda a, b: function(np.asarray(volume[a:b], dtype=np.float32)))


# ----------------------------------------------------------------------------- binning
LANCZOS_LOBES = 3   # IMOD's default antialiasing filter (Lanczos, 3 lobes)


def _lanczos(x):
    return np.where(np.abs(x) < LANCZOS_LOBES, np.sinc(x) * np.sinc(x / LANCZOS_LOBES), 0.0)


def resampling_matrix(n, factor, antialias=True):
    """Sparse (n_out, n) float32 matrix that reduces an axis of ``n`` voxels by ``factor``.

    An integer factor N gives n // N output voxels; the n % N voxels left over are dropped, half (rounded down) at
    the start and the rest at the end, so each output voxel is exactly one block of N input voxels. A fractional
    factor gives floor(n / factor) voxels, centred on the input. Without antialiasing an output voxel is the
    average of the input it covers (block averaging); with it, a Lanczos-3 filter stretched by the factor, as
    IMOD's binvol and newstack do. Beyond the ends the input is mirrored."""
    from scipy import sparse
    integer = abs(factor - round(factor)) < 1e-6
    if integer:
        factor = int(round(factor))
        n_out = n // factor
        offset = (n - n_out * factor) // 2
    else:
        n_out = int(np.floor(n / factor))
        offset = (n - n_out * factor) / 2.0
    if n_out < 1:
        raise ValueError("an axis of %d voxels cannot be binned by %g" % (n, factor))
    centres = offset + (np.arange(n_out) + 0.5) * factor      # voxel k spans [k, k + 1)
    half = LANCZOS_LOBES * factor if antialias else factor / 2.0
    first = np.floor(centres - half).astype(int)
    k = first[:, None] + np.arange(int(np.ceil(2 * half)) + 2)[None, :]
    if antialias:
        weights = _lanczos((k + 0.5 - centres[:, None]) / factor)
    else:  # the length of voxel k inside the output voxel's interval
        weights = np.clip(np.minimum(k + 1, centres[:, None] + half) - np.maximum(k, centres[:, None] - half), 0, 1)
    weights /= weights.sum(axis=1, keepdims=True)
    folded = np.mod(k, 2 * n)
    folded = np.where(folded < n, folded, 2 * n - 1 - folded)  # mirror about the faces
    rows = np.broadcast_to(np.arange(n_out)[:, None], k.shape)
    matrix = sparse.coo_matrix((weights.ravel(), (rows.ravel(), folded.ravel())), shape=(n_out, n)).tocsr()
    matrix.eliminate_zeros()
    return matrix.astype(np.float32)


def binned(volume, factor, antialias=True, bin_z=True):
    """``volume`` reduced by ``factor`` along X, Y and (if ``bin_z``) Z, computed slab by slab. Read in order,
    every input plane is read and reduced in X and Y once, even where the Z filter needs it for two slabs."""
    nz, ny, nx = volume.shape
    mz = resampling_matrix(nz, factor, antialias) if bin_z else None
    my, mx = resampling_matrix(ny, factor, antialias), resampling_matrix(nx, factor, antialias)
    shape = (mz.shape[0] if bin_z else nz, my.shape[0], mx.shape[0])

    def reduce_xy(block):
        d = block.shape[0]
        block = np.ascontiguousarray((mx @ np.ascontiguousarray(block.reshape(-1, nx).T)).T)
        block = my @ np.ascontiguousarray(block.reshape(d, ny, -1).transpose(1, 0, 2)).reshape(ny, -1)
        return np.ascontiguousarray(block.reshape(shape[1], d, shape[2]).transpose(1, 0, 2))

    chunk = max(1, int(4 * CHUNK_VOXELS / factor ** 3))   # input slabs of about 4 x CHUNK_VOXELS
    if mz is None:
        return Lazy(shape, lambda a, b: reduce_xy(np.asarray(volume[a:b], np.float32)), chunk)
    cache = {"first": 0, "planes": np.empty((0,) + shape[1:], np.float32)}   # the last input planes reduced

    def planes(a, b):
        rows = mz[a:b]
        k0, k1 = int(rows.indices.min()), int(rows.indices.max()) + 1
        first, done = cache["first"], cache["planes"]
        reuse = done[k0 - first:k1 - first] if first <= k0 < first + len(done) else done[:0]
        start = k0 + len(reuse)
        if start < k1:
            reuse = np.concatenate([reuse, reduce_xy(np.asarray(volume[start:k1], np.float32))])
        cache.update(first=k0, planes=reuse)
        return (rows[:, k0:k1] @ reuse.reshape(k1 - k0, -1)).reshape(b - a, shape[1], shape[2])
    return Lazy(shape, planes, chunk)


def bin_factor(step, pixel_size, path="input"):
    """The factor a recipe's "bin" step asks for: the given integer, or target / input pixel size (snapped to
    an integer when within 0.1% of one). Binning never enlarges: a finer target gives 1."""
    if "factor" in step:
        return int(step["factor"])
    if not pixel_size:
        raise io.InputError(path, "binning to %g Å/px needs the input pixel size, which the header does not "
                                  "give; pass --pixel-size" % step["pixel_size"])
    factor = step["pixel_size"] / pixel_size
    if abs(factor - round(factor)) < 1e-3 * factor:
        factor = int(round(factor))
    if factor < 1:
        log.warning("%s is already at %.3f Å/px, finer than the %.3f Å/px asked for; it is not binned",
                    path, pixel_size, step["pixel_size"])
        return 1
    return factor


# ----------------------------------------------------------------------------- CLAHE
def to_uint8(image, low, high):
    """Map [low, high] to 0..255 (clipped, rounded): the fixed range CLAHE works on."""
    scale = 255.0 / (high - low) if high > low else 0.0
    return np.clip(np.rint((np.asarray(image, np.float32) - low) * scale), 0, 255).astype(np.uint8)


def clahe_tiles(shape, block):
    """OpenCV's tileGridSize (tiles across X, tiles across Y) for slices of ``shape`` (Y, X) and ``block`` px."""
    return max(1, shape[1] // block), max(1, shape[0] // block)


def clahe_planes(block, low, high, tile=32, clip=3.0):
    """CLAHE of each z-slice (OpenCV, after mapping [low, high] to 8 bits), returned as float32 in [0, 1]."""
    import cv2
    clahe = cv2.createCLAHE(clipLimit=float(clip), tileGridSize=clahe_tiles(block.shape[1:], tile))
    out = np.empty(block.shape, np.float32)
    for i, plane in enumerate(block):
        out[i] = clahe.apply(to_uint8(plane, low, high))
    out *= 1.0 / 255.0
    return out


# ----------------------------------------------------------------------------- recipes
RECIPE_FORMAT = 1
RECIPE_STEPS = ("bin", "normalize", "eed", "clahe")
EED_DEFAULTS = {"sigma": 0.5, "iterations": 10, "step": 0.1, "k": None}   # the tomo3d plugin's defaults
CLAHE_DEFAULTS = {"block": 32, "clip": 3.0}                                # the paper's
DEFAULT_RECIPE = {"normalize": "robust", "eed": dict(EED_DEFAULTS), "clahe": dict(CLAHE_DEFAULTS)}


def _options(value, defaults, step):
    """A step's options: True means the defaults; a dict overrides them; unknown options are refused."""
    options = dict(defaults)
    if value is not True:
        unknown = set(value) - set(defaults)
        if unknown:
            raise ValueError("unknown %s option(s): %s" % (step, ", ".join(sorted(unknown))))
        options.update(value)
    return options


def check_recipe(recipe):
    """A complete, validated copy of ``recipe`` (defaults filled in, skipped steps left out). Raises ValueError
    naming what is wrong."""
    recipe = dict(recipe or {})
    unknown = set(recipe) - set(RECIPE_STEPS) - {"format", "applied"}
    if unknown:
        raise ValueError("unknown preprocessing step(s): %s (known: %s)"
                         % (", ".join(sorted(unknown)), ", ".join(RECIPE_STEPS)))
    if recipe.get("format", RECIPE_FORMAT) > RECIPE_FORMAT:
        raise ValueError("recipe format %s is newer than this membraneseg understands" % recipe["format"])
    out = {}
    if recipe.get("bin"):
        step = _options(recipe["bin"], {"factor": None, "pixel_size": None, "antialias": True}, "bin")
        if (step["factor"] is None) == (step["pixel_size"] is None):
            raise ValueError("binning needs either a factor or a target pixel size")
        if step["factor"] is not None and (int(step["factor"]) != step["factor"] or step["factor"] < 1):
            raise ValueError("the binning factor must be a whole number >= 1, not %s" % step["factor"])
        if step["pixel_size"] is not None and step["pixel_size"] <= 0:
            raise ValueError("the target pixel size must be positive")
        out["bin"] = {k: v for k, v in step.items() if v is not None}
    if recipe.get("normalize"):
        if recipe["normalize"] not in (True, "robust"):
            raise ValueError("normalize must be \"robust\", not %r" % recipe["normalize"])
        out["normalize"] = "robust"
    if recipe.get("eed"):
        step = _options(recipe["eed"], EED_DEFAULTS, "eed")
        from .eed import MAX_STABLE_STEP
        if not 0 < step["step"] <= MAX_STABLE_STEP:
            raise ValueError("the EED time step must be in (0, %g], where it is stable; not %g"
                             % (MAX_STABLE_STEP, step["step"]))
        if step["sigma"] < 0 or step["iterations"] < 1 or int(step["iterations"]) != step["iterations"]:
            raise ValueError("EED needs sigma >= 0 and a whole number of iterations >= 1")
        if step["k"] is not None and step["k"] <= 0:
            raise ValueError("the EED contrast parameter K must be positive (or automatic)")
        out["eed"] = step
    if recipe.get("clahe"):
        step = _options(recipe["clahe"], CLAHE_DEFAULTS, "clahe")
        if step["block"] < 2 or step["clip"] <= 0:
            raise ValueError("CLAHE needs a block of at least 2 px and a positive clip limit")
        out["clahe"] = step
    return out


def recipe_from_args(args):
    """The recipe the ``preprocess`` command-line options ask for (see cli_preprocess)."""
    if getattr(args, "recipe", None):
        return check_recipe(read_recipe(args.recipe))
    recipe = {}
    if args.bin is not None or args.to_pixel_size is not None:
        recipe["bin"] = {"antialias": not args.no_antialias}
        recipe["bin"].update({"factor": args.bin} if args.bin is not None else {"pixel_size": args.to_pixel_size})
    if not args.no_normalize:
        recipe["normalize"] = "robust"
    if not args.no_eed:
        recipe["eed"] = {"sigma": args.eed_sigma, "iterations": args.eed_iterations, "step": args.eed_step,
                         "k": args.eed_k}
    if not args.no_clahe:
        recipe["clahe"] = {"block": args.clahe_block, "clip": args.clahe_clip}
    return check_recipe(recipe)


def recipe_path(volume_path):
    """Where the recipe of a preprocessed volume is written: ``<stem>_recipe.json`` beside it."""
    return os.path.splitext(str(volume_path))[0] + RECIPE_SUFFIX


def read_recipe(path):
    """The recipe in a ``_recipe.json`` file, a model card (its "preprocessing") or a model folder."""
    from ..constants import MODEL_JSON
    path = os.path.join(path, MODEL_JSON) if os.path.isdir(path) else str(path)
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise io.InputError(path, "not a readable recipe (%s)" % exc)
    data = data.get("preprocessing", data) if isinstance(data, dict) else data
    if not isinstance(data, dict):
        raise io.InputError(path, "a recipe must be a JSON object")
    return data


def comparable(recipe):
    """The part of a recipe that changes what the network sees at a given pixel size: everything but binning
    (prediction resamples to the model's pixel size itself)."""
    return {k: v for k, v in check_recipe(recipe).items() if k != "bin"}


def already_applied(recipe, volume_path):
    """True when ``volume_path`` has a recipe file beside it whose steps match ``recipe`` (binning aside)."""
    path = recipe_path(volume_path)
    if not os.path.isfile(path):
        return False
    try:
        return comparable(read_recipe(path)) == comparable(recipe)
    except (ValueError, io.InputError):
        return False


# ----------------------------------------------------------------------------- IMOD binvol and Tomo3D tomoeed
def binvol_command(program, in_path, out_path, factor, antialias=True):
    """The shell command that bins with IMOD's binvol. ``program`` is a shell prefix ending in the binary (for
    example ". $IMOD_DIR/IMOD-linux.sh && binvol"). Antialiasing is Lanczos-3 (filter 6), as built in; 0 gives
    plain block averaging."""
    args = ["-input", in_path, "-output", out_path, "-binning", str(int(factor)), "-antialias",
            "6" if antialias else "0"]
    return "%s %s" % (program, " ".join(shlex.quote(str(a)) for a in args))


def tomoeed_command(program, in_path, out_path, sigma, iterations, step, k=None):
    """The shell command that runs Tomo3D's tomoeed; without ``k`` it re-estimates K every iteration."""
    args = ["-g", "%g" % sigma, "-i", str(int(iterations)), "-s", "%g" % step]
    if k is not None:
        args += ["-k", "%g" % k]
    return "%s %s" % (program, " ".join(shlex.quote(str(a)) for a in args + [in_path, out_path]))


def run_external(command, out_path, path, label):
    """Run an external program's command; a failure is reported as a problem with ``path`` and the tail of the
    program's output."""
    log.info("running %s", command)
    result = subprocess.run(["bash", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0 or not os.path.isfile(out_path):
        tail = " | ".join(result.stdout.strip().splitlines()[-4:])
        raise io.InputError(path, "%s failed (exit status %d)%s" % (label, result.returncode,
                                                                    ": " + tail if tail else ""))


# ----------------------------------------------------------------------------- applying a recipe
RAM_BUFFER_BYTES = 2 << 30    # scratch volumes larger than this are memory-mapped files instead
TIFF = (".tif", ".tiff")


class Scratch:
    """Temporary volumes of one run: arrays in RAM when small, else memory-mapped files beside the output
    (hidden names); all files are removed at the end, whether the run succeeded or not."""

    def __init__(self, out_path):
        self.prefix = io.partial_name(out_path)
        self.paths = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for path in self.paths:
            if os.path.exists(path):
                os.remove(path)

    def path(self, tag, suffix=".mrc"):
        path = "%s.%s%s" % (self.prefix, tag, suffix)
        self.paths.append(path)
        return path

    def array(self, shape):
        if np.prod(shape) * 4 <= RAM_BUFFER_BYTES:
            return np.empty(shape, np.float32)
        return np.memmap(self.path("buffer%d" % len(self.paths), ".raw"), np.float32, "w+", shape=tuple(shape))

    def materialize(self, volume):
        out = self.array(volume.shape)
        for z0, z1 in chunks(volume):
            out[z0:z1] = volume[z0:z1]
        return out

    def write_mrc(self, volume, tag, voxel_size):
        path = self.path(tag)
        with io.create_mrc(path, volume.shape, np.float32, voxel_size) as out:
            for z0, z1 in chunks(volume):
                out[z0:z1] = volume[z0:z1]
        return path


def apply_recipe(in_path, out_path, recipe, pixel_size=None, programs=None):
    """Preprocess ``in_path`` into ``out_path`` (MRC, or TIFF for 2D images) following ``recipe``, and write
    ``<stem>_recipe.json`` beside it. ``pixel_size`` (Å) overrides the header. ``programs`` may map "bin" and
    "eed" to shell prefixes that run IMOD's binvol and Tomo3D's tomoeed; otherwise the built-in versions run.
    Returns the record written to the JSON file."""
    recipe = check_recipe(recipe)
    programs = programs or {}
    vol = io.read(in_path)
    if not (io.suffix_of(out_path) in io.MRC_SUFFIXES or (vol.is_2d and io.suffix_of(out_path) in TIFF)):
        raise io.InputError(out_path, "write preprocessed volumes as MRC (.mrc), or 2D images as TIFF (.tif)")
    px = io.resolve_pixel_size(vol.voxel_size, pixel_size, in_path)
    applied = {"engine": "membraneseg %s" % VERSION, "input": os.path.abspath(str(in_path)),
               "input_shape": list(vol.data.shape), "input_pixel_size": px}
    volume = vol.data
    with Scratch(out_path) as scratch:
        if "bin" in recipe:
            volume, px = _bin(volume, px, recipe["bin"], vol, programs.get("bin"), scratch, applied)
        if "normalize" in recipe:
            stats = robust_stats(volume)
            volume = pointwise(volume, lambda block: normalize(block, stats))
            applied["normalize"] = stats._asdict()
        if "eed" in recipe:
            volume = _eed(volume, px, recipe["eed"], vol.path, programs.get("eed"), scratch, applied)
        if "clahe" in recipe:
            step = recipe["clahe"]
            low, high = (float(v) for v in np.percentile(sample(volume), CLIP_PERCENTILES))
            source = volume
            volume = Lazy(source.shape, lambda a, b: clahe_planes(np.asarray(source[a:b], np.float32), low,
                                                                  high, step["block"], step["clip"]))
            applied["clahe"] = {"low": low, "high": high, "tiles": clahe_tiles(volume.shape[1:], step["block"])}
        applied.update(output_shape=list(volume.shape), output_pixel_size=px)
        record = dict(recipe, format=RECIPE_FORMAT, applied=applied)
        _write(volume, out_path, px, record)
    return record


def _bin(volume, px, step, vol, program, scratch, applied):
    factor = bin_factor(step, px, vol.path)
    info = applied["bin"] = {"factor": factor, "program": "built-in"}
    if factor == 1:
        return volume, px
    new_px = px * factor if px else 0.0
    if program and isinstance(factor, int) and not vol.is_2d:
        out = scratch.path("binned")
        info.update(program="IMOD binvol", command=binvol_command(program, vol.path, out, factor,
                                                                  step["antialias"]))
        run_external(info["command"], out, vol.path, "IMOD binvol")
        return io.read(out).data, new_px
    if program:
        log.info("binvol bins by whole factors of 3D volumes only; binning by %g with the built-in code", factor)
    try:
        reduced = binned(volume, factor, step["antialias"], bin_z=not vol.is_2d)
    except ValueError as exc:
        raise io.InputError(vol.path, str(exc))
    return scratch.materialize(reduced), new_px


def _eed(volume, px, step, path, program, scratch, applied):
    from . import eed
    if program:
        src, out = scratch.write_mrc(volume, "eed-input", px), scratch.path("eed")
        command = tomoeed_command(program, src, out, step["sigma"], step["iterations"], step["step"], step["k"])
        applied["eed"] = {"program": "Tomo3D tomoeed", "command": command}
        run_external(command, out, path, "Tomo3D tomoeed")
        return io.read(out).data
    result, ks = eed.diffuse(scratch.materialize(volume), scratch.array(volume.shape), step["sigma"],
                             step["iterations"], step["step"], step["k"])
    applied["eed"] = {"program": "built-in", "k": ks}
    return result


def _write(volume, out_path, px, record):
    """Write the volume, then its recipe; the volume appears under its name last, so a volume with that name
    always has its recipe beside it."""
    def write_recipe():
        with io.atomic_path(recipe_path(out_path)) as tmp, open(tmp, "w") as f:
            json.dump(record, f, indent=1, sort_keys=True)

    if io.suffix_of(out_path) in io.MRC_SUFFIXES:
        with io.create_mrc(out_path, volume.shape, np.float32, px) as out:
            for z0, z1 in chunks(volume):
                out[z0:z1] = volume[z0:z1]
            write_recipe()
    else:  # a 2D image: small
        data = np.asarray(volume[0:1])
        write_recipe()
        io.write(out_path, data, px)
