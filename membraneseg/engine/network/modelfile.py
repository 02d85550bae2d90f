"""Trained models on disk: a folder with the weights (HDF5, no code) and a JSON card of everything prediction needs.

A model folder holds ``membraneseg_model.json`` and ``model.weights.h5``. The JSON records the network spec
(preset, widths, context, classes), the patch size, the pixel size it was trained at, how input intensities are
prepared, the calibrated threshold, the SHA-256 of the weights, and the training provenance. Loading rebuilds the
network from the spec and loads only the weights, after checking their checksum: a model file cannot run code.
"""
import datetime
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Optional

from ...constants import DEFAULT_MODEL_DIR, MODEL_FORMAT, MODEL_JSON, MODEL_VAR, MODEL_WEIGHTS, TOMOGRAM_MODEL_DIR
from ..core import io

log = logging.getLogger(__name__)


class ModelError(ValueError):
    """A model folder that cannot be used, with the reason and the path."""

    def __init__(self, path, problem):
        super().__init__("model %s: %s" % (path, problem))


@dataclass
class ModelCard:
    network: dict                              # NetworkSpec.to_dict()
    pixel_size: float                          # Å per pixel the network was trained at
    patch: int = 224
    threshold: float = 0.5                     # calibrated on validation data when trained here
    class_names: list = field(default_factory=lambda: ["background", "membrane"])
    preprocessing: dict = field(default_factory=lambda: {"normalize": "robust"})
    provenance: dict = field(default_factory=dict)
    weights_sha256: str = ""
    name: str = ""
    format: int = MODEL_FORMAT
    # the largest factor by which training upsampled coarse tomograms to pixel_size; prediction upsampling no more
    # than that (None: never; the models trained before this field were trained without upsampled tomograms)
    max_upsampling: Optional[float] = None
    # the factors by which prediction also makes a volume coarser before averaging the probability maps
    # (segmentation/scales.py); None: the volume as given only. Training never sets it, not even when fine-tuning
    # a model that has it: the threshold is calibrated on single passes, and models calibrated high (0.75) lost
    # tolerant Dice with the scales (0.792 -> 0.742) where the tomogram model (0.40) gained; set it by hand after
    # measuring (bench/bench_volumes.py PATH@1 PATH@1,2,4)
    test_scales: Optional[list] = None

    def to_dict(self):
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d):
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def sha256_of(path, block=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_folder(path):
    """Accept the folder or its JSON file."""
    path = os.path.abspath(str(path))
    return os.path.dirname(path) if path.endswith(".json") else path


# membraneseg/weights, beside the engine: this file is membraneseg/engine/network/modelfile.py
WEIGHTS_DIR = os.path.join(os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")), "weights")
# The shipped model's weights checksum, kept apart from its card: a card rewritten together with its weights
# cannot pass for the shipped model.
SHIPPED_SUMS = os.path.join(WEIGHTS_DIR, "SHA256SUMS")


def default_model_path(volumes=False):
    """The model used when none is given: $MEMBRANESEG_MODEL if set, else one shipped in the package: for volumes
    the tomogram model (trained on simulated raw tomograms of every look and polarity beside the real slices), for
    2D images the slice model (trained on the real annotated slices). Each is the better of the two on its kind of
    data (README, "The shipped models")."""
    override = os.environ.get(MODEL_VAR)
    if override:
        return model_folder(override)
    return os.path.join(WEIGHTS_DIR, TOMOGRAM_MODEL_DIR if volumes else DEFAULT_MODEL_DIR)


def _pinned():
    """{weights path under WEIGHTS_DIR: pinned checksum}, from SHIPPED_SUMS (empty without one)."""
    if not os.path.isfile(SHIPPED_SUMS):
        return {}
    with open(SHIPPED_SUMS) as f:
        return dict(reversed(line.split()) for line in f if line.strip())


def _pinned_key(folder):
    return os.path.relpath(os.path.join(folder, MODEL_WEIGHTS), WEIGHTS_DIR)


def shipped_sha256(folder):
    """The pinned checksum of a model folder shipped in the package (None for any other folder)."""
    return _pinned().get(_pinned_key(folder))


def pin_shipped(folder, sha):
    """Record ``sha`` as the pinned checksum of the shipped model ``folder`` (for the recipes that rebuild one),
    keeping the other models' lines."""
    pinned = dict(_pinned(), **{_pinned_key(folder): sha})
    with open(SHIPPED_SUMS, "w") as f:
        f.writelines("%s  %s\n" % (v, k) for k, v in sorted(pinned.items()))


def read_card(path) -> ModelCard:
    return read_json_card(model_folder(path), MODEL_JSON, ModelCard, MODEL_FORMAT, "model card",
                          "is this a membraneseg model folder?")


def read_json_card(folder, name, card_class, newest_format, what, hint):
    """The card ``name`` of a model folder as ``card_class`` (a dataclass with from_dict and a format), or a
    ModelError that says what is wrong: no folder, no card (``hint`` says what was expected), not valid JSON for a
    ``what``, or a format newer than ``newest_format``."""
    card_path = os.path.join(folder, name)
    if not os.path.isdir(folder):
        raise ModelError(folder, "folder not found")
    if not os.path.isfile(card_path):
        raise ModelError(folder, "no %s in it; %s" % (name, hint))
    try:
        with open(card_path) as f:
            card = card_class.from_dict(json.load(f))
    except (ValueError, TypeError) as exc:
        raise ModelError(folder, "%s is not a valid %s (%s)" % (name, what, exc))
    if card.format > newest_format:
        raise ModelError(folder, "made by a newer membraneseg (format %d); update the plugin" % card.format)
    return card


def verify_weights(folder, card):
    weights = os.path.join(folder, MODEL_WEIGHTS)
    if not os.path.isfile(weights):
        raise ModelError(folder, "weights file %s is missing" % MODEL_WEIGHTS)
    actual = sha256_of(weights)
    pinned = shipped_sha256(os.path.abspath(folder))
    if pinned and actual != pinned:
        raise ModelError(folder, "the shipped weights do not match their pinned checksum in %s (expected %s, "
                                 "found %s): reinstall the plugin" % (SHIPPED_SUMS, pinned, actual))
    if card.weights_sha256 and actual != card.weights_sha256:
        raise ModelError(folder, "weights checksum mismatch (expected %s, found %s): the file is corrupt or was "
                                 "replaced; reinstall or retrain the model" % (card.weights_sha256, actual))
    return weights


def load(path, patch=None):
    """Return (keras model, card). The network is rebuilt from the card and only the weights are read."""
    from . import model as net
    folder = model_folder(path)
    card = read_card(folder)
    weights = verify_weights(folder, card)
    try:
        spec = net.NetworkSpec.from_dict(card.network)
        keras_model = net.build(spec, patch=patch or card.patch)
        keras_model.load_weights(weights)
    except Exception as exc:
        raise ModelError(folder, "weights do not fit the network described in the card (%s)" % exc)
    log.info("model: %s (%s, preset %s, context %d%s, %.2f Å/px, threshold %.3f)", folder, card.name or "unnamed",
             spec.preset, spec.context, " slices %d apart" % spec.context_step if spec.context_step > 1 else "",
             card.pixel_size, card.threshold)
    return keras_model, card


def save_weights(keras_model, path):
    """Save the weights to ``path`` under a hidden temporary name first (which keeps the .weights.h5 ending Keras
    requires), then rename: a killed run never leaves half a weights file."""
    tmp = os.path.join(os.path.dirname(path), ".partial." + os.path.basename(path))
    keras_model.save_weights(tmp)
    os.replace(tmp, path)


def save(keras_model, card: ModelCard, folder):
    """Write weights and card; the card is written last, so a folder with a card is always complete."""
    os.makedirs(folder, exist_ok=True)
    from . import model as net
    weights = os.path.join(folder, MODEL_WEIGHTS)
    # a compiled model would also save its optimizer state (three times the size); ship the weights alone
    bare = net.build(net.NetworkSpec.from_dict(card.network), patch=card.patch)
    net.copy_weights(keras_model, bare)
    save_weights(bare, weights)
    card.weights_sha256 = sha256_of(weights)
    card.provenance.setdefault("saved", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    io.write_json(os.path.join(folder, MODEL_JSON), card.to_dict(), sort_keys=True)
    return folder
