"""Synthetic tomograms with exact labels: simple vesicle phantoms and the bilayer profile (``phantoms``), random
cell-like scenes (``scene``), imaging them as a tilt series and reconstructing (``tomography``), and the whole
realistic phantom (``simulate``). Imports only ``core``."""
