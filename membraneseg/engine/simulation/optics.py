"""How a transmission electron microscope records a projected specimen: phase contrast through the contrast transfer
function (CTF), radiation damage growing with the dose, inelastic loss in thick ice, shot noise of the electrons
and detector noise. Used by ``raw`` to turn the noiseless projections of a scene into a raw tilt series.

Units: lengths in Å, spatial frequencies in 1/Å, voltages in kV, Cs in mm, defocus in Å with underfocus positive
(the usual ``defocus -4 µm`` of a user is 40000 here), doses in electrons per Å².

Image formation is the weak-phase approximation: the specimen shifts the phase of the beam by
phi = sigma * V * t (interaction constant sigma, the projected potential V * t), and the recorded intensity is
I = 1 + 2 * F^-1[CTF(k) * F(phi)], with CTF(k) = -(sqrt(1 - A^2) * sin chi(k) + A * cos chi(k)) and the wave
aberration chi(k) = pi * lambda * defocus * k^2 - pi / 2 * Cs * lambda^3 * k^4 (amplitude contrast A). Matter is
dark in such images at underfocus, as in every raw tomogram reconstructed from them.
"""
import math

import numpy as np

# Physical constants (CODATA): electron rest energy in keV, and h*c in keV*Å.
ELECTRON_REST_KEV = 510.99895
HC_KEV_ANGSTROM = 12.398419843
# The potential of protein against vitreous ice, in volts, for density 1.0 of the scenes: mean inner potentials are
# about 5.5-7 V for protein and 3.5-4.5 V for vitreous ice (the range of published measurements).
CONTRAST_VOLTS = 2.0
# Grant & Grigorieff (2015, eLife 4:e06980), at 300 kV: the dose (e/Å²) after which the signal at frequency k (1/Å)
# has fallen to 1/e is a * k^b + c; at 200 kV the same damage takes 0.8 times the dose.
CRITICAL_DOSE = (0.245, -1.665, 2.81)
# Inelastic mean free path in vitreous ice, in Å (about 3200 Å at 300 kV and 2700 Å at 200 kV with an energy filter;
# Rice et al. 2018, Ultramicroscopy 190; scaled between the two with the voltage).
MEAN_FREE_PATH = {300.0: 3200.0, 200.0: 2700.0}


def wavelength(kv):
    """Relativistic electron wavelength in Å at an acceleration voltage of ``kv`` kilovolts (0.0197 Å at 300 kV)."""
    return HC_KEV_ANGSTROM / math.sqrt(kv * (2 * ELECTRON_REST_KEV + kv))


def interaction_constant(kv):
    """sigma in rad / (V * Å): the phase shift per volt of potential per Å of path (6.5e-4 at 300 kV)."""
    lam = wavelength(kv)
    return 2 * math.pi / (lam * kv * 1e3) * (ELECTRON_REST_KEV + kv) / (2 * ELECTRON_REST_KEV + kv)


def chi(k, defocus, cs_mm, kv):
    """The wave aberration (radians) at spatial frequency ``k`` (1/Å)."""
    lam = wavelength(kv)
    return math.pi * lam * defocus * k ** 2 - 0.5 * math.pi * cs_mm * 1e7 * lam ** 3 * k ** 4


def ctf(k, defocus, cs_mm=2.7, kv=300.0, amplitude=0.07):
    """The contrast transfer function at frequencies ``k`` (1/Å): -1 at the first peak of a phase object at
    underfocus, -``amplitude`` at k = 0."""
    c = chi(np.asarray(k, np.float64), defocus, cs_mm, kv)
    return -(math.sqrt(1 - amplitude ** 2) * np.sin(c) + amplitude * np.cos(c))


def ctf_zeros(defocus, cs_mm=2.7, kv=300.0, amplitude=0.07, count=5):
    """The first ``count`` frequencies (1/Å) where the CTF is zero: chi(k) = n * pi - atan(A / sqrt(1 - A^2)),
    solved as a quadratic in k^2 (its smaller positive root, the one reached first from k = 0)."""
    lam, shift = wavelength(kv), math.atan2(amplitude, math.sqrt(1 - amplitude ** 2))
    a, b = -0.5 * math.pi * cs_mm * 1e7 * lam ** 3, math.pi * lam * defocus   # chi = a * k^4 + b * k^2
    out = []
    for n in range(1, count + 1):
        target = n * math.pi - shift
        k2 = target / b if a == 0 else (-b + math.sqrt(b * b + 4 * a * target)) / (2 * a)
        out.append(math.sqrt(k2))
    return np.array(out)


def critical_dose(k, kv=300.0):
    """Dose (e/Å²) at which radiation damage has reduced the signal at frequency ``k`` (1/Å) to 1/e."""
    a, b, c = CRITICAL_DOSE
    dose = a * np.maximum(np.asarray(k, np.float64), 1e-3) ** b + c
    return dose * (1.0 if kv >= 300 else 0.8)


def damage(k, dose_before, dose_here, kv=300.0):
    """Signal left at frequency ``k`` in an image taken after ``dose_before`` e/Å², averaged over its own
    exposure of ``dose_here`` e/Å² (the exponential decay of Grant & Grigorieff, integrated over the exposure)."""
    ne = critical_dose(k, kv)
    if dose_here <= 0:
        return np.exp(-dose_before / (2 * ne))
    rate = dose_here / (2 * ne)
    return np.exp(-dose_before / (2 * ne)) * (1 - np.exp(-rate)) / rate


def mean_free_path(kv):
    """Inelastic mean free path in vitreous ice (Å), linear in the voltage between 200 and 300 kV."""
    lo, hi = MEAN_FREE_PATH[200.0], MEAN_FREE_PATH[300.0]
    return lo + (hi - lo) * (min(max(kv, 200.0), 300.0) - 200.0) / 100.0


def frequencies(shape, pixel_size):
    """|k| in 1/Å of the real FFT (numpy.fft.rfft2) of an image of ``shape`` pixels of ``pixel_size`` Å."""
    ky = np.fft.fftfreq(shape[0], pixel_size)[:, None]
    kx = np.fft.rfftfreq(shape[1], pixel_size)[None, :]
    return np.sqrt(ky ** 2 + kx ** 2)


def transfer(shape, pixel_size, defocus, cs_mm=2.7, kv=300.0, amplitude=0.07, envelope_b=0.0, dose_before=0.0,
             dose_here=0.0):
    """The transfer of an image of ``shape`` pixels (rfft2 layout): the CTF, a B-factor envelope (``envelope_b``
    Å², for partial coherence and drift) and the damage of the dose received before and during the exposure."""
    k = frequencies(shape, pixel_size)
    out = ctf(k, defocus, cs_mm, kv, amplitude) * np.exp(-envelope_b * k ** 2 / 4)
    if dose_before or dose_here:
        out = out * damage(k, dose_before, dose_here, kv)
    return out


def image_contrast(phase, transfer_function):
    """The noiseless image of a weak phase object, as I / I0 - 1 = 2 * F^-1[T * F(phase)]."""
    return (2.0 * np.fft.irfft2(np.fft.rfft2(phase) * transfer_function, phase.shape)).astype(np.float32)


def expose(contrast, electrons, rng, detector_noise=0.0):
    """The recorded image, as I / I0 - 1 like ``contrast``: Poisson shot noise of ``electrons`` per pixel on
    average (so the noise variance is 1 / electrons), plus Gaussian detector noise of ``detector_noise`` times
    the shot noise."""
    counts = rng.poisson(np.clip(electrons * (1.0 + contrast), 0, None)).astype(np.float32)
    if detector_noise > 0:
        counts += rng.normal(0.0, detector_noise * math.sqrt(electrons), counts.shape).astype(np.float32)
    return counts / np.float32(electrons) - 1.0


def phase_flip(image, pixel_size, defocus, cs_mm=2.7, kv=300.0, amplitude=0.07):
    """CTF correction by phase flipping: every frequency gets the sign of the CTF's first lobe, so matter stays
    dark; the zeros and the falling amplitude stay."""
    sign = np.sign(ctf(frequencies(image.shape, pixel_size), defocus, cs_mm, kv, amplitude))
    mean = float(image.mean())
    return (np.fft.irfft2(np.fft.rfft2(image - mean) * -sign, image.shape) + mean).astype(np.float32)


def dose_order(angles, scheme="dose-symmetric"):
    """The position of each tilt in the order of acquisition. dose-symmetric (Hagen et al. 2017): 0°, then groups of
    two tilts on alternating sides (+1 +2 -1 -2 +3 +4 ...); bidirectional: from the tilt nearest 0° to one end, then
    from the next one on the other side to the other end."""
    angles = np.asarray(angles, float)
    start = int(np.argmin(np.abs(angles)))
    if scheme == "bidirectional":
        order = list(range(start, len(angles))) + list(range(start - 1, -1, -1))
    elif scheme == "dose-symmetric":
        plus, minus = list(range(start + 1, len(angles))), list(range(start - 1, -1, -1))
        order, side = [start], 0
        while plus or minus:
            take = plus if (side == 0 and plus) or not minus else minus
            order += take[:2]
            del take[:2]
            side = 1 - side
    else:
        raise ValueError("dose scheme must be dose-symmetric or bidirectional, not %r" % scheme)
    position = np.empty(len(angles), int)
    position[order] = np.arange(len(angles))
    return position
