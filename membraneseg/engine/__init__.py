"""The membraneseg engine: the science, usable from a shell on any machine, without Scipion.

Nothing in this package imports Scipion (pyworkflow, pwem, tomo): it reads files, writes files, and is driven by
the ``membraneseg`` command line (``python -m membraneseg.engine`` is the same program). Its packages, each
importing only the ones listed before it (``tests/test_layout.py`` checks the rule):

- ``core``: file formats (MRC, TIFF, PNG), finding inputs, slab-by-slab streaming, patches and tiles.
- ``preprocessing``: normalisation, resampling, binning, EED, CLAHE, and the recipes that chain them.
- ``simulation``: synthetic tomograms with exact labels (phantoms, cell-like scenes, the microscope's optics, tilt
  series, WBP, raw tomograms with every nuisance of real data).
- ``network``: the hybrid network (Keras), its model folders, and the device it runs on.
- ``measurement``: metrics, evaluation against references, thresholding and cleaning of masks.
- ``segmentation``: segmenting tomograms and images with a trained model (uses preprocessing and network).
- ``training``: data, patches, augmentation, losses and the training loop.
- ``gan``: the Pix2Pix GAN of the paper's Appendix B and the synthetic pairs it makes.
- ``vesicles``: vesicles as objects in membrane masks: centres, sizes, completeness, a table and a label map.
- ``cli``: the command line, one thin module per command; it uses everything and nothing imports it.
"""
