"""Vesicles as objects: from a membrane mask to a list of vesicles (centre, radius, semi-axes, how complete the
membrane is, a confidence), a label map with one label per vesicle, a CSV table and a picture.

- ``rings``: closed membrane rings in each z-slice and the chains they form across z.
- ``fit``: spheres and ellipsoids fitted to a chain's points; points on a fitted surface.
- ``find``: the whole search on a volume, and its files (CSV, JSON, label map).
- ``figure``: the picture (vesicles drawn over slices, a histogram of diameters), with OpenCV only.
"""
