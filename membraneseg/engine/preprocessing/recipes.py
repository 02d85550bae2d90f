"""Preprocessing recipes: the JSON-able description of binning, normalisation, edge-enhancing diffusion and CLAHE
(section 3 of the paper) that lets prediction repeat exactly what training saw, and applying one to a tomogram.

A recipe is a dict with any of these steps (a missing or null step is skipped), applied in this order:
    "bin":       {"factor": N} or {"pixel_size": Å}, and "antialias": true/false
    "normalize": "robust"
    "eed":       {"sigma": voxels, "iterations": N, "step": τ, "k": K or null for automatic}
    "clahe":     {"block": pixels, "clip": limit}
``apply_recipe`` writes the result and, beside it, ``<stem>_recipe.json``: the recipe plus what was applied. Every
step works slab by slab, so memory stays bounded whatever the size of the tomogram. Binning and EED can instead be
run by IMOD's binvol and Tomo3D's tomoeed.
"""
import json
import logging
import os
import shlex
import subprocess
import tempfile

import numpy as np

from ...constants import RECIPE_SUFFIX, VERSION
from ..core import io
from .binning import bin_factor, binned
from .clahe import clahe_planes, clahe_tiles
from .preprocess import CLIP_PERCENTILES, check_volume, finite, normalize, robust_stats, sample
from ..core.streaming import Lazy, chunks, pointwise

log = logging.getLogger(__name__)

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
    """The recipe the ``preprocess`` command-line options ask for (see ``cli.preprocess``)."""
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
    from ...constants import MODEL_JSON
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


def filters(recipe):
    """True when ``recipe`` changes what the network sees beyond the normalisation prediction always does."""
    return bool(set(comparable(recipe)) - {"normalize"})


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
    check_volume(vol)
    if not (io.suffix_of(out_path) in io.MRC_SUFFIXES or (vol.is_2d and io.suffix_of(out_path) in TIFF)):
        raise io.InputError(out_path, "write preprocessed volumes as MRC (.mrc), or 2D images as TIFF (.tif)")
    px = io.resolve_pixel_size(vol.voxel_size, pixel_size, in_path)
    applied = {"engine": "membraneseg %s" % VERSION, "input": os.path.abspath(str(in_path)),
               "input_shape": list(vol.data.shape), "input_pixel_size": px}
    with Scratch(out_path) as scratch:
        volume, px = _steps(vol.data, px, recipe, vol, programs, scratch, applied)
        applied.update(output_shape=list(volume.shape), output_pixel_size=px)
        record = dict(recipe, format=RECIPE_FORMAT, applied=applied)
        _write(volume, out_path, px, record)
    return record


def apply_to_array(data, recipe, pixel_size=0.0, source="<array>"):
    """``recipe`` applied in memory to a small stack (Z, Y, X) or 2D image: what the network sees from it, as
    float32 (Z, Y, X). For training items and in-memory prediction, which must match what ``apply_recipe`` gives
    a file."""
    recipe = check_recipe(recipe)
    data = np.asarray(data)
    data = data[np.newaxis] if data.ndim == 2 else data
    vol = io.Volume(data, pixel_size, data.shape[0] == 1, source)
    with Scratch(os.path.join(tempfile.gettempdir(), "membraneseg-array")) as scratch:
        volume, _ = _steps(data, pixel_size, recipe, vol, {}, scratch, {})
        return np.asarray(volume[0:volume.shape[0]], np.float32)


def _steps(volume, px, recipe, vol, programs, scratch, applied):
    """The recipe's steps on ``volume`` (lazily, slab by slab where a step allows); returns it and its pixel size,
    and records in ``applied`` what was done."""
    if "normalize" not in recipe:   # normalising neutralises NaN and Inf voxels; without it, do that here
        raw = robust_stats(volume)
        volume = pointwise(volume, lambda block: finite(block, raw))
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
    return volume, px


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
