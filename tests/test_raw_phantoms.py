"""Raw-tomogram simulation: the microscope's optics against their formulas, the dose-to-noise relation, both
polarities, the negatives, and the phantoms command."""
import json
import math

import numpy as np
import pytest

from membraneseg.engine import cli
from membraneseg.engine.core import io
from membraneseg.engine.simulation import negatives, optics, raw
from membraneseg.engine.simulation.simulate import LABELS, MEMBRANE_LABELS


def test_wavelength_and_interaction_constant_have_their_textbook_values():
    assert optics.wavelength(300) == pytest.approx(0.019687, rel=1e-4)
    assert optics.wavelength(200) == pytest.approx(0.025079, rel=1e-4)
    assert optics.interaction_constant(300) == pytest.approx(6.526e-4, rel=2e-3)
    assert optics.interaction_constant(200) == pytest.approx(7.288e-4, rel=2e-3)


@pytest.mark.parametrize("kv,defocus,amplitude", [(300, 15000, 0.07), (300, 40000, 0.1), (200, 60000, 0.08)])
def test_ctf_is_zero_where_the_formula_puts_its_zeros(kv, defocus, amplitude):
    zeros = optics.ctf_zeros(defocus, 2.7, kv, amplitude, count=5)
    assert np.all(np.diff(zeros) > 0)
    assert np.abs(optics.ctf(zeros, defocus, 2.7, kv, amplitude)).max() < 1e-6
    # without spherical aberration the first zero is sqrt((pi - atan(A / sqrt(1 - A^2))) / (pi * lambda * df))
    lam = optics.wavelength(kv)
    first = math.sqrt((math.pi - math.atan(amplitude / math.sqrt(1 - amplitude ** 2))) / (math.pi * lam * defocus))
    assert optics.ctf_zeros(defocus, 0.0, kv, amplitude, count=1)[0] == pytest.approx(first, rel=1e-9)
    # and between two zeros the CTF keeps one sign
    mid = 0.5 * (zeros[0] + zeros[1])
    assert np.sign(optics.ctf(zeros[0] * 0.99, defocus, 2.7, kv, amplitude)) != np.sign(
        optics.ctf(mid, defocus, 2.7, kv, amplitude))
    # matter is dark: amplitude contrast and the first lobe are negative
    assert optics.ctf(0.0, defocus, 2.7, kv, amplitude) == pytest.approx(-amplitude)
    assert optics.ctf(0.5 * zeros[0], defocus, 2.7, kv, amplitude) < 0


def radial_power(image, pixel_size):
    """(frequencies in 1/Å, radially averaged power) of an image."""
    power = np.abs(np.fft.rfft2(image)) ** 2
    k = optics.frequencies(image.shape, pixel_size)
    step = 1.0 / (image.shape[0] * pixel_size)
    bins = np.round(k / step).astype(int)
    sums = np.bincount(bins.ravel(), power.ravel())
    counts = np.bincount(bins.ravel())
    return np.arange(len(sums)) * step, sums / np.maximum(counts, 1)


def test_recorded_images_show_thon_rings_with_minima_at_the_ctf_zeros():
    rng = np.random.default_rng(0)
    px, defocus = 2.0, 30000.0
    phase = 0.02 * rng.standard_normal((512, 512)).astype(np.float32)   # white: every frequency carries signal
    t = optics.transfer(phase.shape, px, defocus)
    images = [optics.expose(optics.image_contrast(phase, t), 1e6, rng) for _ in range(2)]
    k, power = radial_power(np.mean(images, axis=0), px)
    step = k[1]
    for zero in optics.ctf_zeros(defocus, count=4):
        i = int(round(zero / step))
        window = power[i - 3:i + 4]
        # the lowest power near a predicted zero lies within one frequency bin of it, far below the lobes around
        assert abs(int(np.argmin(window)) - 3) <= 1
        assert window.min() < 0.2 * window.max()


def test_shot_noise_variance_is_one_over_the_electrons_per_pixel():
    rng = np.random.default_rng(1)
    flat = np.zeros((256, 256), np.float32)
    for electrons in (20.0, 200.0, 2000.0):
        assert optics.expose(flat, electrons, rng).var() == pytest.approx(1 / electrons, rel=0.04)
    # detector noise adds its share of the shot noise variance
    assert optics.expose(flat, 200.0, rng, detector_noise=0.5).var() == pytest.approx(1.25 / 200, rel=0.04)


def test_tilt_series_noise_falls_with_the_dose_as_one_over_the_dose():
    angles = np.arange(-30.0, 31.0, 10.0)
    density = np.zeros((16, 64, 64), np.float32)
    variances = []
    for dose in (60.0, 180.0):
        s = raw.RawSettings(pixel_size=10.0, dose=dose, thickness=1000.0, detector_noise=0.0, misalignment=0.0)
        noisy, clean = raw.tilt_series(density, s, np.random.default_rng(2), angles, gain=1.0)
        variances.append(float((noisy - clean)[len(angles) // 2].var()))
        # at 0°: dose per tilt x pixel area x the electrons that pass the ice without losing energy
        electrons = dose / len(angles) * 100 * math.exp(-1000.0 / optics.mean_free_path(300))
        assert variances[-1] == pytest.approx(1 / electrons, rel=0.1)
    assert variances[0] / variances[1] == pytest.approx(3.0, rel=0.1)


def test_damage_falls_with_dose_and_frequency():
    k = np.array([0.01, 0.05, 0.1])
    early, late = optics.damage(k, 0.0, 3.0), optics.damage(k, 100.0, 3.0)
    assert np.all(late < early) and np.all(np.diff(late) < 0)
    assert optics.damage(0.1, 0.0, 0.0) == 1.0


def test_phase_flip_turns_the_transfer_into_minus_its_absolute_value():
    rng = np.random.default_rng(3)
    phase = rng.standard_normal((128, 128)).astype(np.float32)
    phase -= phase.mean()
    px, defocus = 5.0, 30000.0
    flipped = optics.phase_flip(optics.image_contrast(phase, optics.transfer(phase.shape, px, defocus)), px, defocus)
    magnitude = -np.abs(optics.ctf(optics.frequencies(phase.shape, px), defocus))
    np.testing.assert_allclose(flipped, optics.image_contrast(phase, magnitude), atol=1e-4)


def test_dose_orders():
    angles = np.arange(-6.0, 7.0, 2.0)                  # -6 -4 -2 0 2 4 6
    symmetric = optics.dose_order(angles, "dose-symmetric")
    assert [angles[i] for i in np.argsort(symmetric)] == [0, 2, 4, -2, -4, 6, -6]
    bidirectional = optics.dose_order(angles, "bidirectional")
    assert [angles[i] for i in np.argsort(bidirectional)] == [0, 2, 4, 6, -2, -4, -6]
    with pytest.raises(ValueError, match="dose scheme"):
        optics.dose_order(angles, "random")


def test_drawn_settings_stay_in_range_and_fixed_ones_stay_fixed():
    rng = np.random.default_rng(4)
    for _ in range(50):
        s = raw.draw_settings(rng)
        assert 5 <= s.pixel_size <= 40 and s.kv in (200, 300) and 0.07 <= s.amplitude <= 0.1
        assert 15000 <= s.defocus <= 60000 and 60 <= s.dose <= 180 and 1000 <= s.thickness <= 3000
        assert 40 <= s.tilt_range <= 70 and 1 <= s.tilt_step <= 3
    s = raw.draw_settings(rng, pixel_size=20, look="eed", polarity="bright", phase_flip=True)
    assert (s.pixel_size, s.look, s.polarity, s.phase_flip) == (20.0, "eed", "bright", True)
    with pytest.raises(ValueError, match="unknown"):
        raw.draw_settings(rng, focus=3)
    with pytest.raises(ValueError, match="look must be"):
        raw.draw_settings(rng, look="painted")


SMALL = (24, 64, 64)


def small_settings(**kw):
    base = dict(pixel_size=15.0, tilt_range=60.0, tilt_step=6.0, dose=120.0, look="raw", polarity="dark",
                content="cell", carbon=False, contamination=False)
    base.update(kw)
    return raw.draw_settings(np.random.default_rng(5), **base)


def test_both_polarities_are_the_same_tomogram_negated_and_dark_means_matter_dark():
    dark = raw.generate_raw(SMALL, small_settings(look="lowpass"), seed=7)
    bright = raw.generate_raw(SMALL, small_settings(look="lowpass", polarity="bright"), seed=7)
    np.testing.assert_allclose(bright.tomogram, -dark.tomogram, atol=1e-6)
    np.testing.assert_array_equal(bright.labels, dark.labels)
    assert abs(dark.tomogram.mean()) < 1e-3 and dark.tomogram.std() == pytest.approx(1, rel=1e-3)
    matter = dark.labels > 0
    assert matter.any()
    assert dark.tomogram[matter].mean() < dark.tomogram[~matter].mean()


@pytest.mark.parametrize("look", raw.LOOKS)
def test_every_look_and_reconstruction_gives_a_normalised_volume(look):
    for reconstruction in raw.RECONSTRUCTIONS:
        p = raw.generate_raw(SMALL, small_settings(look=look, reconstruction=reconstruction), seed=8)
        assert p.tomogram.shape == SMALL and p.tomogram.dtype == np.float32
        assert np.isfinite(p.tomogram).all() and p.tomogram.std() == pytest.approx(1, rel=1e-3)
        assert 0 < p.snr < 100


def test_negatives_hold_no_membrane_and_empty_volumes_hold_nothing():
    p = raw.generate_raw((32, 96, 96), small_settings(content="negatives", carbon=True, contamination=True), seed=9)
    assert not np.isin(p.labels, MEMBRANE_LABELS).any()
    assert (p.labels == negatives.LABELS["carbon"]).any()
    empty = raw.generate_raw(SMALL, small_settings(content="empty"), seed=9)
    assert not empty.labels.any()


def test_absorbing_ice_is_darker_and_phase_only_ice_keeps_its_volumes():
    """Diffraction by crystalline ice removes electrons: with ice_absorption the crystals come out darker than as
    phase objects. Off (the default), the volume is the one made before the option existed: same draws."""
    plain = small_settings(content="negatives", contamination=True, pixel_size=20.0)
    phase_only = raw.generate_raw((32, 96, 96), plain, seed=11)
    again = raw.generate_raw((32, 96, 96), raw.RawSettings(**dict(vars(plain), ice_absorption=0.0)), seed=11)
    np.testing.assert_array_equal(again.tomogram, phase_only.tomogram)
    dark = raw.generate_raw((32, 96, 96), raw.RawSettings(**dict(vars(plain), ice_absorption=0.6)), seed=11)
    ice = [p.labels == negatives.LABELS["contamination"] for p in (phase_only, dark)]
    assert ice[0].any() and ice[1].any()
    contrast = [p.tomogram[i].mean() - p.tomogram[~i].mean() for p, i in zip((phase_only, dark), ice)]
    assert contrast[1] < contrast[0] - 0.5
    assert negatives.attenuation(0.6) * 1000 == pytest.approx(-np.log(0.4))
    with pytest.raises(ValueError, match="ice absorption"):
        raw.RawSettings(ice_absorption=1.0).check()


def test_microtubule_crops_hold_microtubules_and_no_membrane():
    p = raw.generate_raw((32, 128, 128), small_settings(content="microtubules"), seed=9)
    assert not np.isin(p.labels, MEMBRANE_LABELS).any()
    cell = raw.generate_raw((32, 128, 128), small_settings(content="cell"), seed=9)
    filament = LABELS["filament"]
    assert (p.labels == filament).mean() > 2 * (cell.labels == filament).mean()


def test_phantoms_command_writes_raw_tomograms_with_their_settings(tmp_path):
    assert cli.main(["phantoms", "-o", str(tmp_path), "--kind", "raw", "--count", "2", "--shape", "24", "48", "48",
                     "--voxel-size", "20", "--defocus", "-3", "--dose", "90", "--look", "raw",
                     "--polarity", "bright", "--tilt-step", "5", "--ice-absorption", "0.5"]) == 0
    for i in range(2):
        tomo = io.read(str(tmp_path / ("phantom_%03d.mrc" % i)))
        labels = io.read(str(tmp_path / ("phantom_%03d_labels.mrc" % i)))
        assert tomo.voxel_size == pytest.approx(20.0) and tomo.data.shape == labels.data.shape
        with open(tmp_path / ("phantom_%03d.json" % i)) as f:
            record = json.load(f)
        assert record["defocus"] == 30000.0 and record["dose"] == 90.0 and record["polarity"] == "bright"
        assert record["tilt_step"] == 5.0 and record["seed"] == i and record["ice_absorption"] == 0.5
    with pytest.raises(SystemExit, match="voxel-size"):
        cli.main(["phantoms", "-o", str(tmp_path / "bad"), "--kind", "raw", "--voxel-size", "-1"])


def test_membrane_the_missing_wedge_hides_is_labelled_apart():
    from membraneseg.engine.simulation.simulate import HIDDEN_LABEL, hidden_by_wedge
    normals = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.7071, 0, 0.7071], [0.866, 0, 0.5]])
    # face-on (normal along the beam) is hidden; edge-on at 0° (normal along x), or along the tilt axis, is not;
    # 45° from the beam is edge-on at a tilt of 45°; 30° from it is edge-on at 60°, in a ±60° range but 20° away
    # from edge-on at best in a ±40° one
    np.testing.assert_array_equal(hidden_by_wedge(normals, 60.0), [True, False, False, False, False])
    np.testing.assert_array_equal(hidden_by_wedge(normals, 40.0), [True, False, False, False, True])
    p = raw.generate_raw((48, 96, 96), small_settings(tilt_range=60.0), seed=11)
    hidden = p.labels == HIDDEN_LABEL
    visible = np.isin(p.labels, MEMBRANE_LABELS)
    assert hidden.any() and visible.any()
    assert hidden.sum() < visible.sum()      # vesicles are hidden at their poles only
