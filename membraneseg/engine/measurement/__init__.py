"""How good a segmentation is and what to keep of it: voxel and boundary-tolerant metrics and mCov (``metrics``),
evaluation of predictions against references, per tomogram and pooled (``evaluate``), and re-thresholding and
cleaning of probability maps and masks (``clean``). Imports only ``core``; never needs TensorFlow."""
