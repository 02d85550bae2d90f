"""What is done to a tomogram before the network sees it: robust normalisation and resampling (``preprocess``),
binning (``binning``), edge-enhancing diffusion (``eed``), CLAHE (``clahe``), and the recipes that chain and record
them so that prediction repeats what training saw (``recipes``). Imports only ``core``."""
