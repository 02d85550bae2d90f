"""The contrast polarity of a tomogram: is matter dark (as IMOD writes it) or bright (as some other pipelines do)?

Matter is denser than ice, and the dense things in a cell (membranes, proteins, gold, carbon) are thin or small
beside the ice around them, so the intensities have a long tail on the side of matter: skewed to negative values
when matter is dark, to positive ones when it is bright. The tail is measured in a band of sizes: each slice is
smoothed by a Gaussian of 20 Å (the noise of a raw tomogram is symmetric and would hide it) minus one of 60 Å (an
uneven background, or the contrast equalisation of a filtered slice, skews the raw histogram either way). Up to
16 slices spread through the volume are enough, so memory stays bounded whatever its size.

Measured (bench/bench_polarity.py): right on every simulated raw tomogram with matter, of every look and pixel
size, and on the shared real slices as given and inverted, with none wrong; the plain skewness of the 20 Å-smoothed
slices, without the band, was wrong on 62 % of those real slices. A skewness closer to 0 than ``UNDECIDED`` (pure
noise, empty ice) is not trusted.
"""
import numpy as np
from scipy import ndimage

POLARITIES = ("dark", "bright")
BAND_ANGSTROM = (20.0, 60.0)      # the Gaussians whose difference keeps the sizes of membranes and particles
UNDECIDED = 0.1                   # |skewness| below this says nothing
SLICES = 16


def skewness(values):
    values = np.asarray(values, np.float64)
    centred = values - values.mean()
    sd = centred.std()
    return float((centred ** 3).mean() / sd ** 3) if sd > 0 else 0.0


def measure(data, pixel_size):
    """The skewness of up to SLICES z-slices of ``data`` (Z, Y, X), band-passed to BAND_ANGSTROM."""
    px = pixel_size or 10.0
    fine, coarse = (max(a / px, 0.5) for a in BAND_ANGSTROM)
    depth = data.shape[0]
    values = []
    for z in np.unique(np.linspace(0, depth - 1, min(SLICES, depth)).round().astype(int)):
        plane = np.nan_to_num(np.asarray(data[z], np.float32))
        band = ndimage.gaussian_filter(plane, fine) - ndimage.gaussian_filter(plane, coarse)
        values.append(band[::2, ::2].ravel())
    return skewness(np.concatenate(values))


def detect(data, pixel_size):
    """("dark" | "bright" | None when undecided, skewness)."""
    skew = measure(data, pixel_size)
    if abs(skew) < UNDECIDED:
        return None, skew
    return ("bright" if skew > 0 else "dark"), skew
