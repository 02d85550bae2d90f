"""Synthetic tomograms with exact labels: simple vesicle phantoms and the bilayer profile (``phantoms``), random
cell-like scenes (``scene``), things that look like membranes and are not (``negatives``), imaging a density as a
tilt series and reconstructing it (``tomography``), the realistic cell phantom (``simulate``), the microscope's
optics, dose and noise (``optics``), and raw tomograms with every nuisance of real data (``raw``). Imports ``core``
and ``preprocessing`` (the EED look of raw tomograms)."""
