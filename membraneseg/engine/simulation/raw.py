"""Raw cryo-ET tomograms with exact labels: a scene (``scene``, ``simulate.render``, ``negatives``) imaged as a real
microscope records it (``optics``: CTF, dose, damage, shot and detector noise), misaligned, reconstructed by WBP or
a SIRT-like filter, and given the look and contrast polarity a user's data may have.

Every nuisance a data set varies in is drawn at random per tomogram (``draw_settings``), in the ranges of typical
acquisitions; any of them can be fixed. A volume holds ``depth`` voxels of a specimen ``thickness`` thick: the scene
fills the volume, and the ice beyond it only dims the images (inelastic loss growing with 1 / cos(tilt)).

Looks: raw (as reconstructed), lowpass (a Gaussian low-pass to 30-60 Å), eed (edge-enhancing diffusion, as
Tomo3D's), denoised (what cryoCARE or IsoNet leave: the same tilt series recorded with 10-30 times the dose, then a
slight blur; IsoNet's missing-wedge filling is not imitated). Polarity: dark (matter dark, as IMOD writes) or bright.
"""
import time
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from . import negatives, optics, tomography
from .scene import build_scene
from .simulate import render, truth_vesicles

LOOKS = ("raw", "lowpass", "eed", "denoised")
# with membranes; everything but membranes; microtubules (many) and particles; ice and noise alone
CONTENTS = ("cell", "negatives", "microtubules", "empty")
MICROTUBULES = 4.0       # microtubules per 256 nm x 256 nm in a "microtubules" volume (a cell has about 1)
SCHEMES = ("dose-symmetric", "bidirectional")
RECONSTRUCTIONS = ("wbp", "sirt")
POLARITIES = ("dark", "bright")


@dataclass
class RawSettings:
    """One acquisition and its processing. Units: Å, kV, mm, e/Å², degrees."""
    pixel_size: float = 10.0
    kv: float = 300.0
    cs: float = 2.7
    amplitude: float = 0.07
    defocus: float = 40000.0          # underfocus, Å (4 µm)
    phase_flip: bool = False
    dose: float = 100.0               # total over the tilt series, e/Å²
    scheme: str = "dose-symmetric"
    tilt_range: float = 60.0
    tilt_step: float = 3.0
    thickness: float = 2000.0         # specimen, Å
    misalignment: float = 1.0         # mean residual shift, pixels
    envelope_b: float = 100.0         # Å²
    detector_noise: float = 0.1       # times the shot noise
    reconstruction: str = "wbp"
    sirt_iterations: int = 20
    look: str = "raw"
    lowpass: float = 40.0             # Å, for the lowpass look
    denoise_gain: float = 20.0        # dose factor of the denoised look
    polarity: str = "dark"
    content: str = "cell"
    carbon: bool = False
    contamination: bool = False
    # fraction of the electrons 100 nm of crystalline ice removes by diffraction (amplitude contrast); 0: the
    # crystals are phase objects only, as in the volumes of the recipes up to tomogram model version 3
    ice_absorption: float = 0.0

    def check(self):
        for name, allowed in (("look", LOOKS), ("content", CONTENTS), ("scheme", SCHEMES),
                              ("reconstruction", RECONSTRUCTIONS), ("polarity", POLARITIES)):
            if getattr(self, name) not in allowed:
                raise ValueError("%s must be one of %s, not %r" % (name, ", ".join(allowed), getattr(self, name)))
        if min(self.pixel_size, self.kv, self.defocus, self.dose, self.tilt_step, self.thickness) <= 0:
            raise ValueError("pixel size, voltage, defocus, dose, tilt step and thickness must be positive")
        if not (0 <= self.amplitude < 1 and 0 <= self.tilt_range <= 90):
            raise ValueError("amplitude contrast must be in [0, 1) and the tilt range in [0, 90] degrees")
        if not 0 <= self.ice_absorption < 1:
            raise ValueError("ice absorption is a fraction of the electrons, in [0, 1)")
        return self


def draw_settings(rng, **fixed):
    """Random settings over the ranges real data sets span; ``fixed`` names the ones to keep (None: draw it)."""
    s = RawSettings(
        pixel_size=float(np.exp(rng.uniform(np.log(5.0), np.log(40.0)))),
        kv=float(rng.choice([300.0, 200.0], p=[0.75, 0.25])),
        amplitude=float(rng.uniform(0.07, 0.10)),
        defocus=float(rng.uniform(15000, 60000)),
        phase_flip=bool(rng.random() < 0.5),
        dose=float(rng.uniform(60, 180)),
        scheme=str(rng.choice(SCHEMES)),
        tilt_range=float(rng.choice([40.0, 50.0, 60.0, 60.0, 70.0])),
        tilt_step=float(rng.choice([1.0, 2.0, 3.0, 3.0])),
        thickness=float(rng.uniform(1000, 3000)),
        misalignment=float(rng.uniform(0.2, 2.0)),
        envelope_b=float(rng.uniform(50, 400)),
        detector_noise=float(rng.uniform(0.0, 0.3)),
        reconstruction=str(rng.choice(RECONSTRUCTIONS, p=[0.7, 0.3])),
        sirt_iterations=int(rng.integers(10, 31)),
        look=str(rng.choice(LOOKS, p=[0.4, 0.2, 0.2, 0.2])),
        lowpass=float(rng.uniform(30, 60)),
        denoise_gain=float(rng.uniform(10, 30)),
        polarity=str(rng.choice(POLARITIES)),
        carbon=bool(rng.random() < 0.25),
        contamination=bool(rng.random() < 0.25))
    names = {f.name for f in fields(RawSettings)}
    unknown = set(fixed) - names
    if unknown:
        raise ValueError("unknown raw-tomogram settings: %s" % ", ".join(sorted(unknown)))
    for key, value in fixed.items():
        if value is not None:
            setattr(s, key, type(getattr(s, key))(value))
    return s.check()


class RawPhantom(NamedTuple):
    tomogram: np.ndarray    # float32 (Z, Y, X), mean 0, standard deviation 1, in the settings' polarity
    labels: np.ndarray      # uint8 (Z, Y, X): simulate.LABELS and negatives.LABELS
    settings: RawSettings
    snr: float              # of the tilt series: variance of the noiseless images over that of the noise
    timings: dict           # seconds per stage
    vesicles: tuple = ()    # the scene's vesicles (simulate.truth_vesicles)


def tilt_series(density, settings, rng, angles, gain=1.0, absorption=None):
    """(noisy, noiseless) tilt series of ``density`` as I / I0 - 1, both misaligned alike; ``gain`` multiplies
    the dose; ``absorption`` (attenuation per Å, or None) dims the images where it is."""
    s = settings
    px = s.pixel_size
    phase = optics.interaction_constant(s.kv) * optics.CONTRAST_VOLTS * px * tomography.project(density, angles)
    transmitted = None if absorption is None else np.exp(-px * tomography.project(absorption, angles))
    per_tilt = s.dose / len(angles)
    position = optics.dose_order(angles, s.scheme)
    mfp = optics.mean_free_path(s.kv)
    noisy, clean = np.empty_like(phase), np.empty_like(phase)
    for i, theta in enumerate(angles):
        defocus = s.defocus + rng.normal(0, 500.0)        # focus differs a little from tilt to tilt
        t = optics.transfer(phase[i].shape, px, defocus, s.cs, s.kv, s.amplitude, s.envelope_b,
                            position[i] * per_tilt, per_tilt)
        clean[i] = optics.image_contrast(phase[i], t)
        if transmitted is not None:
            clean[i] = (1.0 + clean[i]) * transmitted[i] - 1.0
        electrons = gain * per_tilt * px * px * np.exp(-s.thickness / np.cos(np.deg2rad(theta)) / mfp)
        noisy[i] = optics.expose(clean[i], electrons, rng, s.detector_noise)
        if s.phase_flip:
            noisy[i] = optics.phase_flip(noisy[i], px, defocus, s.cs, s.kv, s.amplitude)
            clean[i] = optics.phase_flip(clean[i], px, defocus, s.cs, s.kv, s.amplitude)
    shifts = tomography.misalignment(angles, rng, s.misalignment, 1.5 * s.misalignment)
    return tomography.shift_projections(noisy, shifts), tomography.shift_projections(clean, shifts)


def reconstruct(series, angles, depth, settings):
    return tomography.wbp(series, angles, depth,
                          sirt_iterations=settings.sirt_iterations if settings.reconstruction == "sirt" else 0)


def apply_look(volume, settings, denoised=None):
    """The settings' look on a reconstruction (``denoised``: the high-dose reconstruction the denoised look uses)."""
    s = settings
    if s.look == "lowpass":
        # a Gaussian whose transfer is one half at 1 / lowpass
        sigma = np.sqrt(2 * np.log(2)) / (2 * np.pi) * s.lowpass / s.pixel_size
        return ndimage.gaussian_filter(volume, sigma)
    if s.look == "eed":
        from ..preprocessing import eed
        work = np.ascontiguousarray((volume - volume.mean()) / max(float(volume.std()), 1e-6), np.float32)
        out, _ = eed.diffuse(work, np.empty_like(work))
        return out
    if s.look == "denoised":
        return ndimage.gaussian_filter(denoised, 0.7)
    return volume


def generate_raw(shape, settings, seed=0):
    """A raw tomogram of ``shape`` (Z, Y, X) voxels of ``settings.pixel_size`` Å, with its labels."""
    s = settings.check()
    rng = np.random.default_rng(seed)
    timings, clock = {}, [time.perf_counter()]

    def lap(stage):
        now = time.perf_counter()
        timings[stage] = round(now - clock[0], 3)
        clock[0] = now

    vesicles, absorption = (), None
    if s.content == "empty":
        density, labels = np.zeros(shape, np.float32), np.zeros(shape, np.uint8)
    else:
        scene = build_scene(shape, s.pixel_size, rng, membranes=s.content == "cell",
                            crowding=3.0 if s.content == "negatives" else 1.0,
                            microtubules=MICROTUBULES if s.content == "microtubules" else None)
        density, labels = render(scene, texture=True, wedge=s.tilt_range)
        vesicles = truth_vesicles(scene)
        if s.carbon:
            negatives.add_carbon_edge(density, labels, s.pixel_size, rng)
        if s.contamination:
            absorption = np.zeros(shape, np.float32) if s.ice_absorption > 0 else None
            negatives.add_contamination(density, labels, s.pixel_size, rng, absorption=absorption,
                                        removed=s.ice_absorption)
    lap("scene")
    angles = tomography.tilt_angles(s.tilt_range, s.tilt_step)
    noisy, clean = tilt_series(density, s, rng, angles, absorption=absorption)
    snr = float(clean.var(dtype=np.float64) / max(float((noisy - clean).var(dtype=np.float64)), 1e-30))
    lap("tilt series")
    rec = reconstruct(noisy, angles, shape[0], s)
    denoised = None
    if s.look == "denoised":
        denoised = reconstruct(tilt_series(density, s, rng, angles, s.denoise_gain, absorption)[0], angles,
                               shape[0], s)
    lap("reconstruction")
    rec = apply_look(rec, s, denoised)
    lap("look")
    rec = (rec - rec.mean()) / max(float(rec.std()), 1e-12)
    if s.polarity == "bright":
        rec = -rec
    return RawPhantom(rec.astype(np.float32), labels, s, snr, timings, vesicles)


def settings_record(settings):
    """The settings as a JSON-able dict, with the units named."""
    out = asdict(settings)
    out["units"] = "Å, kV, mm (cs), Å underfocus (defocus), e/Å² (dose), degrees, pixels (misalignment), Å² (B)"
    return out
