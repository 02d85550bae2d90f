"""The settings of a training run, with the paper's recipe as defaults.

Kept apart from the rest of training so that the command line and the Scipion forms can show these defaults
without importing TensorFlow.
"""
from dataclasses import dataclass, field
from typing import List, Optional

from ..measurement.evaluate import DEFAULT_TOLERANCE


# The network presets (network/model.py PRESETS, which needs TensorFlow), smallest first, named here for the
# command line's help and the Scipion forms; a test keeps both lists equal.
PRESET_NAMES = ("tiny", "cpu-small", "cpu-fine", "cpu", "cpu-large", "paper")
BORDERS = ("reflect", "replicate")     # what patches may show beyond an image's edge; the first is the default
# training losses; "tolerant" is the boundary-tolerant Dice (in-plane, at the evaluation's tolerance), which
# forgives a membrane drawn a pixel or two off but not one missed or invented
LOSSES = ("bce", "dice", "focal", "bce+dice", "bce+dice+tolerant")
LOSS_TOLERANCE_PX = int(DEFAULT_TOLERANCE)


@dataclass
class TrainConfig:
    preset: str = "cpu"
    context: int = 1
    context_step: int = 1              # 2.5D: working voxels between the context slices (NetworkSpec)
    classes: int = 1
    patch: int = 224
    pixel_size: float = 10.0           # Å per pixel the model works at
    max_upsampling: Optional[float] = None   # a coarser tomogram is upsampled by at most this factor and worked
                                             # at its pixel size / factor, as `segment` then does (the card says
                                             # so); None: always up to pixel_size
    epochs: int = 20
    steps_per_epoch: int = 50
    batch_size: int = 8
    learning_rate: float = 1e-3
    loss: str = "bce"                  # one of LOSSES (bce means cce for classes > 1)
    augment: bool = True
    rot90: bool = False                # also turn patches by a random multiple of 90° (the paper does not)
    intensity: float = 0.0             # strength of contrast/brightness/blur/noise augmentation; 0 = off (paper)
    border: str = BORDERS[0]           # what patches show beyond an image's edge: reflect | replicate (smears
                                       # the edge row; held-out Dice 0.340 against reflect's 0.358 on G0-G3)
    style: float = 0.0                 # strength of style augmentation (uneven background, tone curve,
                                       # sharpening); 0 = off
    invert: float = 0.0                # probability that a patch has its contrast inverted (bright matter), so
                                       # that the model works on tomograms of either polarity; 0 = off
    context_dropout: float = 0.5
    foreground_bias: float = 0.7       # fraction of patches centred on a labelled voxel
    hard_negative_labels: List[int] = field(default_factory=list)  # label values of negatives (film, ice) whose
                                                                   # rims look like membrane
    hard_negative_bias: float = 0.0    # fraction of patches centred on the rim of such a negative, in items that
                                       # have one (random patches seldom fall on a rim); 0 = off
    synthetic_fraction: float = 0.0    # fraction of training patches cut from synthetic (GAN) pairs, if given
    patience: int = 6
    seed: int = 0
    membrane_labels: List[int] = field(default_factory=lambda: [1, 2])  # label values that count as membrane
    ignore_labels: List[int] = field(default_factory=list)   # label values that mean "not annotated": such voxels
                                                             # never reach the loss or the validation figures
    annotated_slices: Optional[str] = None   # tomograms annotated on some z-slices only: "auto" (those with any
                                             # label but background) or z indices "40 80 120"; None: every slice
    start_model: Optional[str] = None
    name: str = ""


# Fine-tuning a model on a few annotated slices of one's own data (--quick): 800 batches, under 10 minutes on 2
# CPU cores with the shipped models' preset, with the boundary-tolerant loss. No intensity or style augmentation:
# the slices come from the very tomogram to be segmented, so there is no change of look to prepare for, and on a
# held-out field of view of the shared slices (bench/bench_few_slices.py, group G0, 3 slices) dropping them and
# raising the learning rate from 3e-4 to 1e-3 lifted tolerant Dice by 0.130 instead of 0.089 (1e-3 alone: 0.103);
# 20 epochs instead of 12 raised the median lift over the 7 groups from 0.142 to 0.161, in 314 s alone on 2 cores.
QUICK = dict(epochs=20, steps_per_epoch=40, learning_rate=1e-3, loss="bce+dice+tolerant", patience=20, rot90=True,
             intensity=0.0, style=0.0)


def resolved(given, quick=False):
    """``given`` (TrainConfig field: value, None where the user set nothing) completed from QUICK when ``quick``,
    else from the TrainConfig defaults."""
    base = TrainConfig()
    return {k: v if v is not None else (QUICK[k] if quick and k in QUICK else getattr(base, k))
            for k, v in given.items()}
