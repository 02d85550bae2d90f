"""Preprocessing: binning, robust normalisation, EED, CLAHE, recipes, and the IMOD/Tomo3D commands."""
import argparse
import json
import os
import stat

import cv2
import numba
import numpy as np
import pytest
from scipy import ndimage

from membraneseg.engine.preprocessing import binning, clahe, eed, preprocess, recipes
from membraneseg.engine.core import io
from membraneseg.engine.simulation import phantoms
from membraneseg.engine.cli.preprocess import add as add_preprocess, output_path

OFF = {"normalize": None, "eed": None, "clahe": None}


def parse(*argv):
    """The preprocess command's options, without building the whole CLI (which imports TensorFlow)."""
    parser = argparse.ArgumentParser()
    add_preprocess(parser.add_subparsers())
    return parser.parse_args(["preprocess", "in.mrc", "-o", "out.mrc"] + list(argv))


def write(tmp_path, name, data, voxel=10.0):
    path = str(tmp_path / name)
    io.write(path, np.asarray(data, np.float32), voxel)
    return path


def blocks(shape, n, seed=0):
    """A volume of constant n x n x n blocks, and the block values."""
    values = np.random.default_rng(seed).normal(size=tuple(s // n for s in shape)).astype(np.float32)
    return np.kron(values, np.ones((n, n, n), np.float32)), values


# ----------------------------------------------------------------------------- binning
def test_block_averaging_is_exact_and_voxel_size_doubles(tmp_path):
    volume, values = blocks((8, 10, 12), 2)
    src, out = write(tmp_path, "v.mrc", volume), str(tmp_path / "b.mrc")
    recipe = recipes.recipe_from_args(parse("--bin", "2", "--no-antialias", "--no-normalize", "--no-eed",
                                            "--no-clahe"))
    record = recipes.apply_recipe(src, out, recipe)
    result = io.read(out)
    np.testing.assert_array_equal(np.asarray(result.data), values)
    assert result.voxel_size == pytest.approx(20.0)
    assert record["applied"]["output_pixel_size"] == pytest.approx(20.0)
    assert record["applied"]["bin"] == {"factor": 2, "program": "built-in"}


def test_odd_sizes_drop_the_remainder_evenly():
    volume = np.random.default_rng(1).normal(size=(11, 14, 13)).astype(np.float32)
    result = np.asarray(binning.binned(volume, 3, antialias=False)[0:3])
    # 11 -> 3 (2 left over: 1 each end), 14 -> 4 (1 at each end), 13 -> 4 (1 left over: dropped at the end)
    expected = volume[1:10, 1:13, 0:12].reshape(3, 3, 4, 3, 4, 3).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)


def test_antialiasing_keeps_flat_regions_and_suppresses_aliasing():
    z, y, x = np.meshgrid(np.arange(6), np.arange(24), np.arange(24), indexing="ij")
    flat = np.full((6, 24, 24), 3.5, np.float32)
    np.testing.assert_allclose(np.asarray(binning.binned(flat, 2)[0:3]), 3.5, rtol=1e-6)
    # a pattern of period 3 voxels is above the binned volume's Nyquist frequency: it must not survive binning
    stripes = np.cos(2 * np.pi * x / 3).astype(np.float32)
    box = np.asarray(binning.binned(stripes, 2, antialias=False)[0:3])[:, 3:-3, 3:-3]
    lanczos = np.asarray(binning.binned(stripes, 2, antialias=True)[0:3])[:, 3:-3, 3:-3]
    assert np.abs(lanczos).max() < 0.5 * np.abs(box).max()


def test_binning_slab_by_slab_equals_at_once():
    volume = np.random.default_rng(7).normal(size=(23, 20, 18)).astype(np.float32)
    for factor, antialias in ((2, True), (3, False), (2.5, True)):
        whole = np.asarray(binning.binned(volume, factor, antialias)[:])
        streamed = binning.binned(volume, factor, antialias)
        planes = [np.asarray(streamed[z]) for z in range(streamed.shape[0])]     # one plane at a time, in order
        np.testing.assert_allclose(np.stack(planes), whole, rtol=1e-5, atol=1e-6)


def test_bin_to_pixel_size(tmp_path):
    src = write(tmp_path, "v.mrc", np.random.default_rng(2).normal(size=(10, 30, 40)))
    out = str(tmp_path / "p.mrc")
    recipes.apply_recipe(src, out, dict(OFF, bin={"pixel_size": 25.0}))
    result = io.read(out)
    assert result.data.shape == (4, 12, 16) and result.voxel_size == pytest.approx(25.0)
    # a finer target than the input is not applied
    record = recipes.apply_recipe(src, out, dict(OFF, bin={"pixel_size": 5.0}))
    assert io.read(out).data.shape == (10, 30, 40) and record["applied"]["bin"]["factor"] == 1
    # without a known pixel size the target cannot be reached
    bare = write(tmp_path, "bare.mrc", np.random.default_rng(3).normal(size=(4, 8, 8)), voxel=0.0)
    with pytest.raises(io.InputError, match="pixel size"):
        recipes.apply_recipe(bare, out, dict(OFF, bin={"pixel_size": 20.0}))


def test_2d_image_is_binned_in_xy_only(tmp_path):
    image = str(tmp_path / "slice.png")
    io.write(image, (np.arange(40 * 60) % 200).reshape(40, 60).astype(np.uint8))
    out = str(tmp_path / "slice_pp.tif")
    recipes.apply_recipe(image, out, dict(OFF, bin={"factor": 2}), pixel_size=7.0)
    result = io.read(out)
    assert result.is_2d and result.data.shape == (1, 20, 30)


# ----------------------------------------------------------------------------- normalisation
def test_normalisation_is_robust_to_gold_beads(tmp_path):
    rng = np.random.default_rng(3)
    volume = rng.normal(5.0, 3.0, size=(16, 64, 64)).astype(np.float32)
    beads = rng.random(volume.shape) < 0.002
    volume[beads] = -400.0                    # gold: very dark, 0.2% of voxels
    src, out = write(tmp_path, "v.mrc", volume), str(tmp_path / "n.mrc")
    recipes.apply_recipe(src, out, {"normalize": "robust"})
    result = np.asarray(io.read(out).data)
    assert abs(result[~beads].mean()) < 0.05
    assert abs(result[~beads].std() - 1.0) < 0.05
    assert result.min() > -4.0                # beads clipped to the robust range, not setting the scale
    assert np.std(volume) > 4 * 3.0           # whereas plain statistics would be dominated by them


# ----------------------------------------------------------------------------- EED
@pytest.fixture(scope="module")
def phantom():
    """A noisy phantom normalised, the same phantom without noise on the same scale, and its labels."""
    noisy, labels = phantoms.simple_phantom((32, 80, 80), 10.0, seed=3, snr=1.5)
    clean, _ = phantoms.simple_phantom((32, 80, 80), 10.0, seed=3, snr=1e9)
    stats = preprocess.robust_stats(noisy)
    return preprocess.normalize(noisy, stats), preprocess.normalize(clean, stats), labels


def run_eed(volume, **kwargs):
    result, ks = eed.diffuse(volume.copy(), np.empty_like(volume), **kwargs)
    return result, ks


def test_eed_removes_noise_and_keeps_membrane_contrast(phantom):
    noisy, clean, labels = phantom
    flat = ndimage.distance_transform_edt(labels == 0) > 6      # far from every membrane

    def contrast(v):                                            # membranes are dark
        return float(v[flat].mean() - v[labels > 0].mean())

    result, ks = run_eed(noisy)                                 # tomo3d defaults
    assert len(ks) == 10 and all(k > 0 for k in ks)
    assert result[flat].std() <= 0.5 * noisy[flat].std()
    assert contrast(result) >= 0.8 * contrast(clean)


@pytest.mark.parametrize("k", [None, 1e-3, 100.0])
def test_eed_is_stable_at_the_largest_step(phantom, k):
    noisy = phantom[0]
    result, _ = run_eed(noisy, step=eed.MAX_STABLE_STEP, iterations=30, k=k)
    assert np.isfinite(result).all()
    spread = noisy.max() - noisy.min()
    assert noisy.min() - 0.05 * spread <= result.min() and result.max() <= noisy.max() + 0.05 * spread
    assert result.std() < noisy.std()
    with pytest.raises(ValueError, match="stable"):
        run_eed(noisy, step=0.16)


def test_eed_is_the_same_by_slabs_and_threads(phantom):
    noisy = phantom[0][:20]
    whole, ks = run_eed(noisy, iterations=3, planes=noisy.shape[0])
    slabs, ks_slabs = run_eed(noisy, iterations=3, planes=3)
    np.testing.assert_array_equal(whole, slabs)
    assert ks == ks_slabs
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        single, _ = run_eed(noisy, iterations=3, planes=7)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_array_equal(whole, single)


def test_eed_smoothing_is_scipys_gaussian_and_leaves_the_input_alone():
    volume = np.random.default_rng(8).normal(size=(9, 17, 23)).astype(np.float32)
    before = volume.copy()
    for sigma in (0.5, 1.0, 2.0):
        expected = ndimage.gaussian_filter(volume.astype(np.float64), sigma, mode="reflect")
        np.testing.assert_allclose(eed._smoothed(volume, 0, 9, sigma), expected, atol=1e-6)
        # a slab read with its halo is the same as that part of the whole volume
        np.testing.assert_allclose(eed._smoothed(volume, 3, 6, sigma), expected[3:6], atol=1e-6)
    np.testing.assert_array_equal(volume, before)


def test_eed_leaves_a_constant_volume_alone():
    flat = np.full((4, 9, 9), 2.0, np.float32)
    result, ks = run_eed(flat, iterations=3)
    np.testing.assert_array_equal(result, flat)
    assert ks == []


# ----------------------------------------------------------------------------- CLAHE
def test_clahe_matches_opencv_on_the_same_slice(tmp_path):
    rng = np.random.default_rng(4)
    volume = ndimage.gaussian_filter(rng.normal(size=(6, 100, 130)), 2).astype(np.float32)
    src, out = write(tmp_path, "v.mrc", volume), str(tmp_path / "c.mrc")
    record = recipes.apply_recipe(src, out, {"clahe": True})
    low, high = np.percentile(volume.astype(np.float64), (0.5, 99.5))   # the volume's robust range
    assert (record["applied"]["clahe"]["low"], record["applied"]["clahe"]["high"]) == (low, high)
    eight_bit = clahe.to_uint8(volume[2], low, high)
    exact = np.clip((volume[2].astype(np.float64) - low) * 255 / (high - low), 0, 255)
    assert np.abs(eight_bit - exact).max() <= 0.5 + 1e-3
    expected = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(130 // 32, 100 // 32)).apply(eight_bit)
    result = np.asarray(io.read(out).data[2])
    np.testing.assert_array_equal(np.rint(result * 255).astype(np.uint8), expected)


# ----------------------------------------------------------------------------- recipes and reproducibility
def test_command_line_defaults_are_the_paper_chain():
    recipe = recipes.recipe_from_args(parse())
    assert recipe == recipes.check_recipe(recipes.DEFAULT_RECIPE)
    assert recipe["eed"] == {"sigma": 0.5, "iterations": 10, "step": 0.1, "k": None}
    assert recipe["clahe"] == {"block": 32, "clip": 3.0}
    assert "bin" not in recipe
    assert recipes.recipe_from_args(parse("--to-pixel-size", "14", "--no-antialias"))["bin"] == \
        {"pixel_size": 14.0, "antialias": False}
    with pytest.raises(ValueError, match="stable"):
        recipes.recipe_from_args(parse("--eed-step", "0.2"))
    with pytest.raises(SystemExit):
        parse("--bin", "2", "--to-pixel-size", "20")
    with pytest.raises(ValueError, match="whole number"):
        recipes.recipe_from_args(parse("--bin", "0"))
    assert output_path("/a/b/t.rec", str(os.sep)) == os.path.join(os.sep, "t.mrc")


@pytest.mark.parametrize("bad, message", [
    ({"denoise": True}, "unknown preprocessing step"),
    ({"bin": {"factor": 1.5}}, "whole number"),
    ({"bin": {"antialias": True}}, "either a factor or a target"),
    ({"eed": {"sigma": 0.5, "iters": 3}}, "unknown eed option"),
    ({"eed": {"k": -1}}, "positive"),
    ({"normalize": "zscore"}, "robust"),
    ({"clahe": {"clip": 0}}, "clip"),
])
def test_bad_recipes_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        recipes.check_recipe(bad)


def test_recipe_is_written_and_reproduces_the_output(tmp_path, monkeypatch):
    noisy, labels = phantoms.simple_phantom((20, 64, 64), 10.0, seed=5)
    src = write(tmp_path, "t.mrc", noisy)
    first = str(tmp_path / "first.mrc")
    recipe = dict(recipes.DEFAULT_RECIPE, bin={"factor": 2}, eed={"iterations": 3})
    record = recipes.apply_recipe(src, first, recipe)
    on_disk = json.load(open(recipes.recipe_path(first)))
    assert on_disk == json.loads(json.dumps(record))
    assert {"bin", "normalize", "eed", "clahe", "applied"} <= set(on_disk)
    assert len(on_disk["applied"]["eed"]["k"]) == 3
    # the same recipe, read back from the file and forced through memory-mapped scratch volumes, gives the
    # same voxels
    monkeypatch.setattr(recipes, "RAM_BUFFER_BYTES", 0)
    again = str(tmp_path / "again.mrc")
    recipes.apply_recipe(src, again, recipes.read_recipe(recipes.recipe_path(first)))
    np.testing.assert_array_equal(np.asarray(io.read(first).data), np.asarray(io.read(again).data))
    assert recipes.already_applied(recipe, again)
    assert not recipes.already_applied({"normalize": "robust"}, again)
    assert not recipes.already_applied(recipe, src)
    # nothing temporary is left behind
    assert sorted(os.listdir(tmp_path)) == ["again.mrc", "again_recipe.json", "first.mrc", "first_recipe.json",
                                            "t.mrc"]


@pytest.mark.parametrize("shape", [(64, 80), (5, 64, 80)], ids=["2d", "stack"])
def test_recipe_in_memory_equals_the_file(tmp_path, shape):
    """Training items and in-memory prediction get exactly the voxels a preprocessed file holds."""
    data = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    src = write(tmp_path, "t.mrc", data)
    recipe = dict(recipes.DEFAULT_RECIPE, eed={"iterations": 2})
    recipes.apply_recipe(src, str(tmp_path / "f.mrc"), recipe)
    in_memory = recipes.apply_to_array(data, recipe, 10.0)
    assert in_memory.shape == (1,) * (3 - len(shape)) + shape and in_memory.dtype == np.float32
    np.testing.assert_array_equal(in_memory, np.asarray(io.read(str(tmp_path / "f.mrc")).data).reshape(in_memory.shape))
    assert recipes.filters(recipe) and not recipes.filters({"normalize": "robust", "bin": {"factor": 2}})
    assert sorted(os.listdir(tmp_path)) == ["f.mrc", "f_recipe.json", "t.mrc"]


def test_recipe_from_a_model_card(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    card = {"preprocessing": {"normalize": "robust", "clahe": {"clip": 2.0}}}
    (folder / "membraneseg_model.json").write_text(json.dumps(card))
    recipe = recipes.recipe_from_args(parse("--recipe", str(folder)))
    assert recipe == {"normalize": "robust", "clahe": {"block": 32, "clip": 2.0}}


def test_bad_files_are_reported(tmp_path):
    with pytest.raises(io.InputError, match="file not found"):
        recipes.apply_recipe(str(tmp_path / "missing.mrc"), str(tmp_path / "o.mrc"), {})
    src = write(tmp_path, "v.mrc", np.random.default_rng(4).normal(size=(2, 4, 4)))
    with pytest.raises(io.InputError, match="as MRC"):
        recipes.apply_recipe(src, str(tmp_path / "o.png"), {})
    with pytest.raises(io.InputError, match="cannot be binned"):
        recipes.apply_recipe(src, str(tmp_path / "o.mrc"), {"bin": {"factor": 3}})
    assert not os.path.exists(str(tmp_path / "o.mrc"))


# ----------------------------------------------------------------------------- IMOD binvol and Tomo3D tomoeed
def test_binvol_and_tomoeed_commands():
    imod = ". /opt/IMOD/IMOD-linux.sh && /opt/IMOD/bin/binvol"
    assert recipes.binvol_command(imod, "/d/my tomo.mrc", "/o/b.mrc", 2) == \
        imod + " -input '/d/my tomo.mrc' -output /o/b.mrc -binning 2 -antialias 6"
    assert recipes.binvol_command("binvol", "a.mrc", "b.mrc", 4, antialias=False) == \
        "binvol -input a.mrc -output b.mrc -binning 4 -antialias 0"
    assert recipes.tomoeed_command("/t3d/tomoeed", "in.mrc", "out.mrc", 0.5, 10, 0.1) == \
        "/t3d/tomoeed -g 0.5 -i 10 -s 0.1 in.mrc out.mrc"
    assert recipes.tomoeed_command("tomoeed", "in.mrc", "o;rm x.mrc", 1, 20, 0.15, k=0.3) == \
        "tomoeed -g 1 -i 20 -s 0.15 -k 0.3 in.mrc 'o;rm x.mrc'"


def test_external_programs_are_run_and_recorded(tmp_path):
    # a stand-in for tomoeed that copies its input (second-to-last argument) to its output (last)
    fake = tmp_path / "fake_tomoeed"
    fake.write_text('#!/bin/sh\nfor a; do in=$out; out=$a; done\necho "$@" > "%s"\ncp "$in" "$out"\n'
                    % (tmp_path / "args.txt"))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    src = write(tmp_path, "v.mrc", np.random.default_rng(6).normal(size=(4, 16, 16)))
    out = str(tmp_path / "o.mrc")
    record = recipes.apply_recipe(src, out, {"normalize": True, "eed": {"k": 0.7}},
                                  programs={"eed": str(fake)})
    assert record["applied"]["eed"]["program"] == "Tomo3D tomoeed"
    assert (tmp_path / "args.txt").read_text().startswith("-g 0.5 -i 10 -s 0.1 -k 0.7 ")
    normalised = preprocess.normalize(io.read(src).data, preprocess.robust_stats(io.read(src).data))
    np.testing.assert_array_equal(np.asarray(io.read(out).data), normalised)
    # a failing program is reported as a problem with the file, with the program's words
    with pytest.raises(io.InputError, match="IMOD binvol failed.*not installed"):
        recipes.apply_recipe(src, out, {"bin": {"factor": 2}},
                             programs={"bin": "echo binvol is not installed; false"})
    assert sorted(f for f in os.listdir(tmp_path) if f.startswith(".")) == []


# ----------------------------------------------------------------------------- the command
def test_preprocess_command(tmp_path, capsys):
    from membraneseg.engine import cli
    src = write(tmp_path, "t.mrc", np.random.default_rng(9).normal(size=(8, 32, 32)))
    assert cli.main(["preprocess", src, "-o", str(tmp_path / "out"), "--bin", "2", "--eed-iterations", "2"]) == 0
    out = str(tmp_path / "out" / "t.mrc")
    assert capsys.readouterr().out.split() == [src, out, recipes.recipe_path(out)]
    assert io.read(out).data.shape == (4, 16, 16)
    why = str(tmp_path / "why.txt")
    assert cli.main(["preprocess", str(tmp_path / "missing.mrc"), "-o", str(tmp_path / "o.mrc"),
                     "--error-file", why]) == cli.EXIT_BAD_INPUT
    assert "missing.mrc: file not found" in open(why).read()
