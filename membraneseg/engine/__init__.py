"""The membraneseg engine: the science, usable from a shell on any machine.

Nothing in this package imports Scipion (pyworkflow, pwem, tomo); it reads files, writes files, and is driven by
the command line in ``cli.py``. Modules: io (MRC/TIFF/PNG), preprocess (normalisation, resampling), model (the
hybrid network), modelfile (model folders), tiling, predict, phantoms, train, metrics.
"""
