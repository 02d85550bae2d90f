"""Segmenting tomograms and 2D images with a trained model, slab by slab, each slice whole or in blended
overlapping windows (``predict``). Imports ``core``, ``preprocessing`` and ``network``."""
