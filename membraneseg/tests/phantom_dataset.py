"""The ``membraneseg_phantoms`` test dataset: what it holds and how it is built.

Phantom tomograms, their label maps and a tiny model trained on other phantoms, generated instead of downloaded
so that the protocol tests run offline. ``datasets.py`` registers it as a pyworkflow DataSet; the tests build it
when its folder is missing, and ``scripts/make_phantom_dataset.py`` builds it by hand. Layout, as the DataSet
names its files:

    tomograms/phantom1.mrc, phantom2.mrc   40 x 128 x 128 voxels (Z, Y, X) at 10 Å/px, simple phantoms (SNR 2)
    labels/phantom1.mrc, phantom2.mrc      their label maps (1 = membrane), named as their tomograms so that
                                           ScipionTomo's "import tomomasks" pairs them by tsId
    model/                                 preset tiny, trained on three other phantoms (about a minute on 2 cores)
    dataset.json                           the recipe it was built from; a folder built from another is rebuilt
"""
import json
import os
import shutil
import tempfile

from ..engine.core import io
from ..engine.simulation import phantoms
from .common import SHAPE, VOXEL, engine

NAME = "membraneseg_phantoms"
VERSION = 1          # raise it to rebuild existing folders after a change the recipe below does not show
SEEDS = (1, 2)
TRAIN_SHAPE = (40, 160, 160)
TRAIN_SEEDS, VAL_SEEDS = (11, 12), (13,)
# small and short, yet enough for Dice > 0.5 on the dataset's tomograms (test_protocol_segment checks it)
TRAIN_OPTIONS = ["--preset", "tiny", "--patch", "96", "--epochs", "8", "--steps", "20", "--batch-size", "8",
                 "--seed", "3"]
FILES = {"tomograms": "tomograms", "labels": "labels", "model": "model", "manifest": "dataset.json"}


def write_phantoms(folder, seeds, shape):
    """Write tomograms/phantom<seed>.mrc and labels/phantom<seed>.mrc below ``folder``; returns [(tomo, labels)]."""
    pairs = []
    for seed in seeds:
        tomo, labels = phantoms.simple_phantom(shape, VOXEL, seed=seed, snr=2.0)
        pair = tuple(os.path.join(folder, sub, "phantom%d.mrc" % seed) for sub in ("tomograms", "labels"))
        for path, data in zip(pair, (tomo, labels)):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            io.write(path, data, VOXEL)
        pairs.append(pair)
    return pairs


def recipe():
    """What the dataset is made from, as stored in its dataset.json."""
    return json.loads(json.dumps({"name": NAME, "version": VERSION, "voxel_size": VOXEL, "shape": SHAPE,
                                  "seeds": SEEDS, "train_shape": TRAIN_SHAPE, "train_seeds": TRAIN_SEEDS,
                                  "val_seeds": VAL_SEEDS, "train_options": TRAIN_OPTIONS}))


def is_complete(folder):
    """True when ``folder`` holds a whole dataset built from the current recipe (dataset.json is written last)."""
    try:
        with open(os.path.join(folder, FILES["manifest"])) as f:
            return json.load(f) == recipe()
    except (OSError, ValueError):
        return False


def build(folder):
    """Build the dataset into ``folder``. It is made whole in a temporary sibling folder and then renamed into
    place, so that a test run in parallel never sees half a dataset; if another run finished first, its copy
    is kept. Returns ``folder``."""
    folder = os.path.abspath(folder)
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    work = tempfile.mkdtemp(prefix=".%s-building-" % os.path.basename(folder), dir=os.path.dirname(folder))
    try:
        write_phantoms(work, SEEDS, SHAPE)
        train = os.path.join(work, "train")
        volumes = []
        for option, seeds in (("--volume", TRAIN_SEEDS), ("--val-volume", VAL_SEEDS)):
            for tomo, labels in write_phantoms(train, seeds, TRAIN_SHAPE):
                volumes += [option, tomo, labels]
        engine("train", "-o", os.path.join(work, "model"), "--pixel-size", VOXEL, *TRAIN_OPTIONS, *volumes)
        shutil.rmtree(train)
        with open(os.path.join(work, FILES["manifest"]), "w") as f:
            json.dump(recipe(), f, indent=1)
        _move_into_place(work, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder


def _move_into_place(work, folder):
    if is_complete(folder):
        return                                 # built meanwhile by another run
    if os.path.exists(folder):                 # an older recipe's dataset, or a broken one: set it aside
        stale = tempfile.mkdtemp(prefix=".%s-stale-" % os.path.basename(folder), dir=os.path.dirname(folder))
        os.rename(folder, os.path.join(stale, "old"))
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.rename(work, folder)
    except OSError:
        if not is_complete(folder):            # lost a race to a run that finished first: theirs is as good
            raise
