"""Realistic phantoms (engine.scene, simulate, tomography): geometry, imaging, labels, determinism and the CLI.

Volumes are small so that the whole file runs in seconds on 2 busy cores.
"""
import numpy as np
import pytest

from membraneseg.engine.core import io
from membraneseg.engine.simulation import scene as sc, simulate as sim, surfaces as sf, tomography as tg

SMALL = (64, 128, 128)


@pytest.fixture(scope="module")
def phantom():
    return sim.generate(SMALL, 10.0, seed=2)


def _flat_sheet(shape, voxel_size, thickness, sigma, x0):
    """A plane membrane normal to X at x0 (the columns of the identity make z, y its axes and x its normal)."""
    sheet = sf.Sheet(np.array([shape[0] / 2, shape[1] / 2, x0]), np.eye(3), np.zeros((0, 4)), 10.0)
    return sc.Scene(shape, voxel_size, membranes=[sf.Membrane(sheet, "membrane", thickness, sigma, 1.0)])


# ----------------------------------------------------------------------------- geometry
def test_bilayer_profile_two_leaflets_at_the_thickness():
    # at 2 Å per voxel a 30 Å bilayer has its leaflet peaks 15 voxels apart
    density, labels = sim.render(_flat_sheet((4, 4, 64), 2.0, thickness=15.0, sigma=0.75, x0=31.3))
    profile = density[2, 2].astype(float)
    peaks = [i for i in range(1, 63) if profile[i] > profile[i - 1] and profile[i] >= profile[i + 1]
             and profile[i] > 0.5]
    assert len(peaks) == 2

    def vertex(i):      # sub-voxel peak position from a parabola through three samples
        a, b, c = profile[i - 1:i + 2]
        return i + 0.5 * (a - c) / (a - 2 * b + c)
    left, right = vertex(peaks[0]), vertex(peaks[1])
    assert abs((right - left) * 2.0 - 30.0) < 0.5                       # Å
    assert abs((left + right) / 2 - 31.3) < 0.1
    assert profile[int(round((left + right) / 2))] < 0.05 * profile[peaks[0]]   # a gap between the leaflets
    # labelled band: half the thickness plus one sigma on either side of the mid-surface
    band = np.flatnonzero(labels[2, 2])
    assert band.min() == int(np.ceil(31.3 - 8.25)) and band.max() == int(np.floor(31.3 + 8.25))


def test_membranes_at_10A_are_labelled_at_least_3_voxels_thick():
    for thickness_a in (25.0, 35.0):
        scene = _flat_sheet((4, 4, 32), 10.0, thickness=thickness_a / 10, sigma=0.5, x0=15.6)
        density, labels = sim.render(scene)
        band = np.flatnonzero(labels[2, 2])
        assert 3 <= len(band) <= 5
        assert np.all(np.diff(band) == 1)
        assert band.min() <= np.argmax(density[2, 2]) <= band.max()    # the dark bilayer is inside the label


def test_scene_bilayers_in_paper_ranges():
    for voxel_size in (1.0, 10.0):
        scene = sc.build_scene((64, 128, 128), voxel_size, np.random.default_rng(3))
        assert scene.membranes
        for m in scene.membranes:
            assert 25.0 <= m.thickness * voxel_size <= 35.0
            # leaflet sigma 3.5-5 Å, never rendered sharper than half a voxel
            assert m.sigma >= 0.5 and (m.sigma == 0.5 or 3.5 <= m.sigma * voxel_size <= 5.0)


def test_a_membrane_carries_the_same_density_per_area_at_every_voxel_size():
    """Widening a leaflet to half a voxel keeps its mass: the density summed across a flat membrane, in Å, does
    not grow with the voxel size (at a fixed peak it was 4-6 times larger at 40 Å than at 10 Å)."""
    mass = {}
    for voxel_size in (2.0, 5.0, 10.0, 20.0, 40.0):
        rng = np.random.default_rng(7)                  # the same draws at every voxel size
        side = int(round(400 / voxel_size))
        sheet = sf.Sheet(np.array([4.0, 4.0, side / 2]), np.eye(3), np.zeros((0, 4)), 8.0)   # normal along x
        scene = sc.Scene((8, 8, side), voxel_size)
        scene.membranes.append(sc._membrane(scene, rng, sheet, "membrane"))
        density, _ = sim.render(scene)
        mass[voxel_size] = density[4, 4].sum() * voxel_size
    assert max(mass.values()) / min(mass.values()) < 1.1, mass


@pytest.mark.parametrize("surface", [
    sf.Ellipsoid(np.array([30.0, 40, 50]), np.array([12.0, 20, 28]),
                 np.linalg.qr(np.arange(9.0).reshape(3, 3) + np.eye(3))[0]),
    sf.Torus(np.array([30.0, 40, 50]), 20.0, 8.0, np.eye(3)),
    sf.Sheet(np.array([30.0, 40, 50]), np.eye(3), np.array([[0.05, 0.02, 6.0, 0.3], [0.0, 0.08, 2.0, 1.0]]), 40),
], ids=["ellipsoid", "torus", "sheet"])
def test_surface_points_normals_and_distances(surface):
    points = surface.sample(np.random.default_rng(0), 200)
    assert np.abs(sf.distance_at(surface, points)).max() < 1e-6        # sampled points lie on the surface
    normals = sf.normals_at(surface, points)
    assert np.allclose(np.linalg.norm(normals, axis=1), 1)
    for step in (-2.0, 2.0):                                           # a signed distance, accurate near it
        moved = sf.distance_at(surface, points + step * normals)
        assert np.abs(moved - step).max() < 0.25


def test_scene_has_every_structure_and_no_vesicle_collisions():
    nested = touching = 0
    kinds = set()
    for seed in range(4):
        scene = sc.build_scene((128, 256, 256), 10.0, np.random.default_rng(seed))
        kinds |= {k for k, _ in scene.filaments}
        assert scene.particles and any(m.kind == "membrane" for m in scene.membranes)
        spheres = [m for m in scene.membranes if m.kind == "vesicle" and np.ptp(m.surface.axes) == 0]
        for i, a in enumerate(spheres):
            for b in spheres[i + 1:]:
                gap = np.linalg.norm(a.surface.centre - b.surface.centre)
                ra, rb = a.surface.axes[0], b.surface.axes[0]
                # bilayers never cross: one inside the other, or apart, with at least a bilayer between
                assert gap <= abs(ra - rb) - 2.5 or gap >= ra + rb + 2.5
                nested += gap <= abs(ra - rb) - 2.5
                touching += ra + rb + 2.5 <= gap <= ra + rb + 6
        radii = [m.surface.axes.max() for m in scene.membranes if m.kind == "vesicle"]
        assert len(radii) >= 2 and max(radii) <= 60 * 1.25
    assert nested and touching
    assert kinds == {"microtubule", "actin"}


# ----------------------------------------------------------------------------- labels
def test_labels_consistent_with_density(phantom):
    labels, density = phantom.labels, phantom.density
    assert labels.dtype == np.uint8 and set(np.unique(labels)) == set(sim.LABELS.values())
    background = density[labels == 0].mean()
    for name, value in sim.LABELS.items():
        if value:
            assert density[labels == value].mean() > 5 * background, name
    mask = sim.membrane_mask(labels)
    assert mask.dtype == np.uint8 and np.array_equal(mask, np.isin(labels, (1, 2)))


def test_membrane_density_lies_in_the_membrane_labels():
    scene = sc.build_scene(SMALL, 10.0, np.random.default_rng(4))
    only_membranes = sc.Scene(scene.shape, scene.voxel_size, membranes=scene.membranes)
    density, labels = sim.render(only_membranes)
    inside = density[sim.membrane_mask(labels) > 0].sum() / density.sum()
    assert inside > 0.8        # a Gaussian leaflet has 84% of its mass within one sigma outwards


# ----------------------------------------------------------------------------- imaging
def test_projector_puts_a_blob_where_geometry_says():
    nz, nx = 40, 80
    z, x = np.mgrid[:nz, :nx]
    blob = np.exp(-((z - 27.0) ** 2 + (x - 55.0) ** 2) / (2 * 2.0 ** 2)).astype(np.float32)[:, None, :]
    for theta in (-60.0, -20.0, 0.0, 45.0, 57.0):
        p = tg.project(blob, [theta])[0, 0]
        t = (27 - (nz - 1) / 2) * np.sin(np.deg2rad(theta)) + (55 - (nx - 1) / 2) * np.cos(np.deg2rad(theta))
        assert abs((p * np.arange(nx)).sum() / p.sum() - (t + (nx - 1) / 2)) < 0.02
        assert abs(p.sum() / blob.sum() - 1) < 1e-3                     # line integrals keep the mass


def test_wbp_recovers_density_from_a_full_series_not_from_a_wedge():
    rng = np.random.default_rng(0)
    volume = np.zeros((32, 2, 64), np.float32)
    for _ in range(12):
        cz, cx, s = rng.uniform(8, 24), rng.uniform(10, 54), rng.uniform(1.5, 3)
        z, x = np.mgrid[:32, :64]
        volume += np.exp(-((z - cz) ** 2 + (x - cx) ** 2) / (2 * s * s))[:, None, :].astype(np.float32)
    full = np.arange(-90, 90, 1.0)
    rec = tg.wbp(tg.project(volume, full), full, 32, cutoff=None)
    assert np.corrcoef(rec.ravel(), volume.ravel())[0, 1] > 0.99
    assert abs(rec.max() / volume.max() - 1) < 0.1
    wedge = tg.tilt_angles(60, 3)
    limited = tg.wbp(tg.project(volume, wedge), wedge, 32)
    assert np.corrcoef(limited.ravel(), volume.ravel())[0, 1] < 0.95


def _wedge_power_ratio(volume):
    """Mean power within 20° of the beam axis (kz) over mean power within 40° of kx, summed over ky, at
    0.04-0.3 cycles/voxel."""
    power = (np.abs(np.fft.fftn(volume - volume.mean())) ** 2).sum(axis=1)
    kz, kx = np.fft.fftfreq(volume.shape[0])[:, None], np.fft.fftfreq(volume.shape[2])[None, :]
    k, angle = np.hypot(kz, kx), np.degrees(np.arctan2(np.abs(kz), np.abs(kx)))
    band = (k > 0.04) & (k < 0.3)
    return power[band & (angle > 70)].mean() / power[band & (angle < 50)].mean()


def test_missing_wedge_in_fourier_transform(phantom):
    assert _wedge_power_ratio(phantom.tomogram) < 0.05                  # measured 0.014-0.026 on seeds 0-2
    assert _wedge_power_ratio(phantom.density) > 0.3                     # the specimen itself fills it
    assert len(phantom.angles) == 41 and phantom.angles.min() == -60 and phantom.angles.max() == 60


def test_tilt_series_snr_measured_in_range(phantom):
    clean = tg.project(phantom.density, phantom.angles)
    for snr in (1.0, 1.5, 2.0):
        noisy, sigma = tg.add_noise(clean, snr, np.random.default_rng(1))
        assert abs(np.var(clean) / np.var(noisy - clean) / snr - 1) < 0.01
        assert abs(tg.measure_snr(clean, noisy) / snr - 1) < 0.01
    for seed in range(3):                                                # default: drawn in [1, 2]
        p = sim.generate((32, 64, 64), 10.0, seed=seed)
        assert 1.0 <= p.snr <= 2.0
    assert abs(sim.generate((32, 64, 64), 10.0, seed=0, snr=1.25).snr / 1.25 - 1) < 0.02


def test_misalignment_mean_max_and_growth_with_tilt():
    angles = tg.tilt_angles(60, 3)
    shifts = tg.misalignment(angles, np.random.default_rng(0))
    size = np.linalg.norm(shifts, axis=1)
    assert abs(size.mean() - 1.0) < 1e-9 and size.max() <= 1.5 + 1e-9
    assert size[np.argmax(np.abs(angles))] == pytest.approx(1.5)
    assert size[np.abs(angles) >= 45].mean() > 1.3 > 0.6 > size[np.abs(angles) <= 10].mean()
    other = tg.misalignment(angles, np.random.default_rng(1))
    assert not np.allclose(shifts, other)                                # random directions


def test_tomogram_is_normalised_with_dark_membranes(phantom):
    tomo = phantom.tomogram
    assert tomo.dtype == np.float32 and tomo.shape == SMALL
    assert abs(tomo.mean()) < 1e-3 and abs(tomo.std() - 1) < 1e-3
    membrane, background = sim.membrane_mask(phantom.labels) > 0, phantom.labels == 0
    assert tomo[membrane].mean() < tomo[background].mean() - 0.2


# ----------------------------------------------------------------------------- determinism and the CLI
def test_same_seed_same_phantom_and_snr_does_not_change_the_scene():
    a = sim.cell_phantom((32, 64, 64), 10.0, seed=7)
    b = sim.cell_phantom((32, 64, 64), 10.0, seed=7)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    c = sim.cell_phantom((32, 64, 64), 10.0, seed=8)
    assert not np.array_equal(a[1], c[1])
    d = sim.cell_phantom((32, 64, 64), 10.0, seed=7, snr=1.9)
    assert np.array_equal(a[1], d[1]) and not np.array_equal(a[0], d[0])


def test_cli_writes_cell_and_simple_phantoms(tmp_path):
    from membraneseg.engine import cli
    out = str(tmp_path)
    assert cli.main(["phantoms", "-o", out, "--count", "2", "--shape", "32", "64", "64", "--voxel-size", "12",
                     "--seed", "5", "--tilt-step", "4", "--snr", "1.5"]) == 0
    for i in range(2):
        tomo = io.read(tmp_path / ("phantom_%03d.mrc" % i))
        labels = io.read(tmp_path / ("phantom_%03d_labels.mrc" % i))
        assert tomo.data.shape == labels.data.shape == (32, 64, 64)
        assert tomo.voxel_size == pytest.approx(12) and labels.voxel_size == pytest.approx(12)
        assert set(np.unique(labels.data)) <= set(sim.LABELS.values())
        expected = sim.cell_phantom((32, 64, 64), 12.0, seed=5 + i, tilt_step=4, snr=1.5)
        assert np.allclose(tomo.data, expected[0]) and np.array_equal(labels.data, expected[1])
    assert cli.main(["phantoms", "-o", out, "--kind", "simple", "--prefix", "s", "--shape", "32", "64", "64"]) == 0
    assert set(np.unique(io.read(tmp_path / "s_000_labels.mrc").data)) <= {0, 1}
    with pytest.raises(SystemExit):
        cli.main(["phantoms", "-o", out, "--tilt-step", "0"])
