"""Every name, version and suffix the plugin and the engine share, in one place.

This module must stay importable without Scipion: the engine reads it too.
"""
VERSION = "0.1.0"

# The isolated environment the engine runs in (conda by default, venv where conda is absent).
ENV_NAME = "membraneseg-%s" % VERSION
TENSORFLOW_REQUIREMENT = "tensorflow-cpu==2.21.0"
TENSORFLOW_GPU_REQUIREMENT = "tensorflow[and-cuda]==2.21.0"
ENGINE_REQUIREMENTS = ["numpy==1.26.1", "scipy==1.10.0", "mrcfile==1.4.3", "tifffile==2023.9.26",
                       "opencv-python-headless==4.11.0.86", "numba==0.68.1"]

# Scipion configuration variables.
ENV_ACTIVATION_VAR = "MEMBRANESEG_ENV_ACTIVATION"
MODEL_VAR = "MEMBRANESEG_MODEL"

# Model files: a model is a folder holding these two files.
MODEL_JSON = "membraneseg_model.json"
MODEL_WEIGHTS = "model.weights.h5"
MODEL_FORMAT = 1
DEFAULT_MODEL_DIR = "default"  # under membraneseg/weights/: the slice model, for 2D images
TOMOGRAM_MODEL_DIR = "tomograms"  # under membraneseg/weights/: the tomogram model, for volumes

# GAN model folders and the synthetic pairs generated with them (membraneseg gan train / gan generate).
GAN_JSON = "gan_model.json"
GAN_SAMPLES_DIR = "samples"            # one grid per epoch: samples/epoch_NNN.png
PAIRS_JSON = "pairs.json"
PAIRS_GRID = "grid.png"

# Segmentation: 224² patches' worth of pixels per forward pass. Measured on 2 cores with the default model's
# preset (bench/bench_segment.py): 32 runs the network at 53 % of the matrix-product rate against 49 % for 8,
# and a 512x512x200 tomogram 10 % faster, for 0.5 GB more memory (peak 1.7 GB on a 2048x2048x500 one).
SEGMENT_BATCH = 32

# Output naming.
MASK_SUFFIX = "_mask"
PROB_SUFFIX = "_prob"
RECIPE_SUFFIX = "_recipe.json"

# Output attribute names of the protocols.
OUT_MASKS = "tomoMasks"
OUT_PROBS = "tomoProbMaps"
OUT_FAILED = "failedTomograms"
OUT_TOMOS = "tomograms"
OUT_MODEL = "model"
OUT_LABELS = "labels"
OUT_VESICLE_COORDS = "vesicles"            # find vesicles: one coordinate per vesicle
OUT_VESICLE_LABELS = "vesicleLabels"       # find vesicles: one label per vesicle
