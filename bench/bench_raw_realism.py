"""Are the simulated raw tomograms realistic? Figures of one reference acquisition per pixel size: the radially
averaged power spectrum of the tilt images nearest 0°, with the CTF's zeros where the formula puts them (the
Thon rings of a real micrograph), and the spectral SNR of the reconstructed tomogram (power of the noiseless
reconstruction over that of the noise, per frequency), whose crossing of 1 is where the tomogram stops carrying
more signal than noise.

    .venv/bin/python bench/bench_raw_realism.py [--png docs/figures/raw-realism.png]

Published figures to hold them against: the resolution of a raw tomogram "barely exceeds 50 Å" by Fourier shell
correlation (PyTom's tutorial, github.com/SBC-Utrecht/PyTom/wiki/PyTomGUI-Tutorial); membranes (4 nm bilayers) and
ribosomes are visible in raw tomograms by eye, single proteins of a few nm are not. Printed per pixel size: the
tilt-series SNR (variance of the noiseless images over that of the noise), the tomogram's voxel SNR, and the
frequency where its spectral SNR falls below 1.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from membraneseg.engine.simulation import optics, raw, tomography  # noqa: E402
from membraneseg.engine.simulation.scene import build_scene  # noqa: E402
from membraneseg.engine.simulation.simulate import render  # noqa: E402

REFERENCE = dict(dose=100.0, defocus=40000.0, kv=300.0, amplitude=0.07, phase_flip=False, tilt_range=60.0,
                 tilt_step=3.0, thickness=2000.0, misalignment=1.0, envelope_b=100.0, detector_noise=0.1,
                 reconstruction="wbp", look="raw", polarity="dark", content="cell")
PIXEL_SIZES = (5.0, 10.0, 20.0)
SEED = 950


def shells(volume, pixel_size):
    """(frequency in 1/Å per shell, shell index of every rfftn coefficient) of a 3D volume."""
    axes = [np.fft.fftfreq(n, pixel_size) for n in volume.shape[:-1]] + [np.fft.rfftfreq(volume.shape[-1],
                                                                                            pixel_size)]
    k = np.sqrt(sum(np.meshgrid(*[a ** 2 for a in axes], indexing="ij")))
    step = 1.0 / (max(volume.shape) * pixel_size)
    index = np.round(k / step).astype(int)
    return np.arange(index.max() + 1) * step, index


def spectral_snr(clean, noisy, pixel_size):
    freq, index = shells(clean, pixel_size)
    signal = np.bincount(index.ravel(), (np.abs(np.fft.rfftn(clean)) ** 2).ravel())
    noise = np.bincount(index.ravel(), (np.abs(np.fft.rfftn(noisy - clean)) ** 2).ravel())
    return freq, signal / np.maximum(noise, 1e-30)


def one(pixel_size):
    """Figures and curves of the reference acquisition at one pixel size."""
    s = raw.RawSettings(pixel_size=pixel_size, **REFERENCE).check()
    depth = int(min(round(s.thickness / pixel_size), 96))
    side = int(np.clip(round(5120 / pixel_size), 96, 256))
    rng = np.random.default_rng(SEED)
    density, _ = render(build_scene((depth, side, side), pixel_size, rng), texture=True)
    angles = tomography.tilt_angles(s.tilt_range, s.tilt_step)
    noisy, clean = raw.tilt_series(density, s, rng, angles)
    # the power spectrum averaged over the seven tilts nearest 0°, as CTF fitting programs average tiles
    central = np.argsort(np.abs(angles))[:7]
    k = optics.frequencies(noisy.shape[1:], pixel_size)
    step = 1.0 / (noisy.shape[1] * pixel_size)
    bins = np.round(k / step).astype(int)
    power = sum(np.bincount(bins.ravel(), (np.abs(np.fft.rfft2(noisy[i] - noisy[i].mean())) ** 2).ravel())
                for i in central)
    power /= np.maximum(np.bincount(bins.ravel()), 1)
    power = power[:int(0.5 / pixel_size / step) + 1]                # up to Nyquist
    rec_noisy = raw.reconstruct(noisy, angles, depth, s)
    rec_clean = raw.reconstruct(clean, angles, depth, s)
    freq, ssnr = spectral_snr(rec_clean, rec_noisy, pixel_size)
    below = np.nonzero((ssnr < 1) & (freq > 0))[0]
    resolution = 1 / freq[below[0]] if len(below) else 2 * pixel_size
    figures = dict(tilt_snr=float(clean.var() / (noisy - clean).var()),
                   voxel_snr=float(rec_clean.var() / (rec_noisy - rec_clean).var()), resolution=resolution,
                   zeros=optics.ctf_zeros(s.defocus, s.cs, s.kv, s.amplitude, 6))
    return figures, (np.arange(len(power)) * step, power), (freq, ssnr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--png", default="docs/figures/raw-realism.png", help="figure to write")
    args = parser.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, len(PIXEL_SIZES), figsize=(5 * len(PIXEL_SIZES), 7.5))
    print("reference: 300 kV, 4 µm underfocus, 100 e/Å² over ±60° every 3°, 200 nm of ice, WBP")
    print("%-8s %-16s %-16s %-26s" % ("Å/px", "tilt-series SNR", "tomogram SNR", "spectral SNR < 1 beyond"))
    for col, px in enumerate(PIXEL_SIZES):
        figures, (kf, power), (freq, ssnr) = one(px)
        print("%-8g %-16.4f %-16.4f %.0f Å" % (px, figures["tilt_snr"], figures["voxel_snr"],
                                                figures["resolution"]))
        ax = axes[0, col]
        ax.semilogy(kf[1:], power[1:], lw=0.8)
        for z in figures["zeros"]:
            if z < kf[-1]:
                ax.axvline(z, color="r", lw=0.6, ls="--")
        ax.set_title("%g Å/px: power of the central tilts (CTF zeros dashed)" % px, fontsize=9)
        ax.set_xlabel("spatial frequency (1/Å)")
        ax = axes[1, col]
        ax.semilogy(freq[1:], ssnr[1:], lw=0.8)
        ax.axhline(1.0, color="k", lw=0.6)
        ax.axvline(1 / 50.0, color="g", lw=0.6, ls=":", label="50 Å")
        ax.set_title("tomogram spectral SNR; < 1 beyond %.0f Å" % figures["resolution"], fontsize=9)
        ax.set_xlabel("spatial frequency (1/Å)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.png)), exist_ok=True)
    fig.savefig(args.png, dpi=60)
    print("figure: %s" % args.png)


if __name__ == "__main__":
    main()
