"""``membraneseg vesicles``: vesicles found as objects in membrane masks, checked against shells drawn where we know
them: count, radius, centre, semi-axes, nested and touching pairs kept apart, flat membranes and large compartments
left out, what the missing wedge erases tolerated; and the command's files."""
import csv
import json
import os

import numpy as np
import pytest

from membraneseg.engine import cli
from membraneseg.engine.core import io
from membraneseg.engine.vesicles import files, find
from membraneseg.tests.shapes import shell

VOXEL = 10.0                  # Å: 1 voxel is 1 nm
SHAPE = (72, 128, 128)


def closest(vesicles, centre, radius):
    return min(vesicles, key=lambda v: np.linalg.norm(v.centre - centre) + abs(v.radius - radius))


def test_spheres_nested_and_touching_pairs_are_found_with_their_sizes():
    truth = [((36, 40, 40), 20.0), ((36, 40, 40), 10.0),          # nested: 40 and 20 nm across
             ((36, 90, 70), 14.0), ((36, 90, 70 + 14 + 14 + 3), 14.0)]   # touching: bands merge
    mask = np.zeros(SHAPE, bool)
    for c, r in truth:
        mask |= shell(SHAPE, c, (r, r, r))
    found, info = find.find(mask, VOXEL)
    assert len(found) == 4, info
    for c, r in truth:
        v = closest(found, np.array(c, float), r)
        assert np.linalg.norm(v.centre - c) <= 1.0
        assert v.radius == pytest.approx(r, rel=0.05)
        assert v.completeness > 0.95 and 0.5 < v.confidence <= 1
        assert v.rings >= 1.5 * r          # rings through most of its height


def test_an_ellipsoid_gives_its_semi_axes():
    mask = shell(SHAPE, (36, 64, 64), (18, 24, 14))   # z, y, x semi-axes
    found, _ = find.find(mask, VOXEL)
    assert len(found) == 1
    v = found[0]
    assert v.ellipsoid
    assert np.allclose(v.surface.axes, [24, 18, 14], rtol=0.08)
    assert np.linalg.norm(v.centre - (36, 64, 64)) < 1.0


def test_what_the_missing_wedge_erases_lowers_completeness_not_the_fit():
    mask = shell(SHAPE, (36, 64, 64), (22, 22, 22), caps=40)
    found, _ = find.find(mask, VOXEL)
    assert len(found) == 1
    v = found[0]
    assert v.radius == pytest.approx(22, rel=0.05) and np.linalg.norm(v.centre - (36, 64, 64)) < 1.5
    assert 0.4 < v.completeness < 0.9


def test_flat_membranes_large_compartments_and_small_rings_are_not_vesicles():
    z, y, x = np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")
    mask = np.abs(y + 0.3 * z - 60) <= 1.5                              # a membrane across the volume
    mask |= shell(SHAPE, (36, 64, 64), (90, 90, 90))                    # 180 nm across: a compartment
    mask |= shell(SHAPE, (36, 20, 100), (6, 6, 6))                      # 12 nm across: under the minimum
    found, info = find.find(mask, VOXEL)
    assert found == [] and info["outside_size_range"] >= 1
    wider = find.find(mask, VOXEL, find.Search(min_diameter=5, max_diameter=200))[0]
    assert len(wider) == 1 and wider[0].radius == pytest.approx(6, abs=1.0)   # the compartment is cut by the box


def test_sizes_follow_the_voxel_size():
    mask = shell(SHAPE, (36, 64, 64), (15, 15, 15))
    assert find.find(mask, 10.0)[0][0].radius == pytest.approx(15, rel=0.05)
    assert find.find(mask, 40.0, find.Search(max_diameter=100))[0] == []    # 120 nm across at 40 Å: left out...
    at_40 = find.find(mask, 40.0)[0]                                         # ...unless the range allows it
    assert len(at_40) == 1 and 2 * at_40[0].radius * 4.0 == pytest.approx(120, rel=0.05)


def test_a_2d_image_gives_circles():
    mask = shell((1, 128, 128), (0, 50, 60), (30, 20, 20))
    mask |= shell((1, 128, 128), (0, 100, 30), (30, 12, 12))
    found, _ = find.find(mask, VOXEL)
    assert sorted(round(v.radius) for v in found) == [12, 20]


def test_label_map_numbers_each_vesicle_on_its_membrane():
    mask = shell(SHAPE, (36, 40, 40), (15, 15, 15)) | shell(SHAPE, (36, 90, 90), (12, 12, 12))
    found, _ = find.find(mask, VOXEL)
    labels = find.label_map(mask, found)
    assert set(np.unique(labels)) == {0, 1, 2}
    assert np.all(mask[labels > 0])
    for number, v in enumerate(found, 1):
        assert labels[tuple(np.rint(v.centre + (0, v.radius, 0)).astype(int))] == number


@pytest.fixture
def mask_file(tmp_path):
    mask = shell(SHAPE, (36, 40, 40), (15, 15, 15)) | shell(SHAPE, (36, 90, 90), (20, 20, 20))
    path = str(tmp_path / "tomo_mask.mrc")
    io.write(path, mask.astype(np.int8), VOXEL)
    tomo = str(tmp_path / "tomo.mrc")
    io.write(tomo, np.random.default_rng(0).normal(size=SHAPE).astype(np.float32) - 2 * mask, VOXEL)
    return path, tomo


def test_command_writes_table_labels_record_and_picture(mask_file, tmp_path):
    path, tomo = mask_file
    before = open(path, "rb").read()
    out = str(tmp_path / "out")
    assert cli.main(["vesicles", path, "-o", out, "--tomograms", tomo, "--png"]) in (0, None)
    paths = files.output_paths(path, out)
    assert os.path.basename(paths["csv"]) == "tomo_vesicles.csv"
    table = files.read_csv(paths["csv"])
    assert [r["id"] for r in table] == [1, 2]
    assert sorted(round(r["diameter_nm"]) for r in table) == [30, 40]
    assert {"x", "y", "z", "completeness", "confidence", "semi_axis_3_nm"} <= set(table[0])
    labels = io.read(paths["labels"])
    assert labels.voxel_size == pytest.approx(VOXEL) and set(np.unique(labels.data)) == {0, 1, 2}
    record = json.load(open(paths["json"]))
    assert record["found"]["vesicles"] == 2 and record["search"]["max_diameter"] == 150
    import cv2
    picture = cv2.imread(paths["png"])
    assert picture is not None and picture.shape[0] >= 300
    assert open(path, "rb").read() == before                          # the input is never touched


def test_probability_maps_are_thresholded(tmp_path):
    prob = 0.9 * shell(SHAPE, (36, 64, 64), (20, 20, 20)).astype(np.float32) + 0.05
    path = str(tmp_path / "t_prob.mrc")
    io.write(path, prob, VOXEL)
    out = str(tmp_path / "out")
    cli.main(["vesicles", path, "-o", out, "--threshold", "0.5"])
    record = json.load(open(files.output_paths(path, out)["json"]))
    assert record["input_kind"] == "probability" and record["threshold"] == 0.5
    assert len(record["vesicles"]) == 1 and record["vesicles"][0]["diameter_nm"] == pytest.approx(40, rel=0.05)


def test_unknown_voxel_size_is_refused_naming_the_file(tmp_path, caplog):
    path = str(tmp_path / "nosize.mrc")
    io.write(path, shell(SHAPE, (36, 64, 64), (15, 15, 15)).astype(np.int8), 0.0)
    out = str(tmp_path / "out")
    assert cli.main(["vesicles", path, "-o", out]) == cli.EXIT_BAD_INPUT
    assert "nosize.mrc" in caplog.text and "--pixel-size" in caplog.text
    assert not os.path.exists(files.output_paths(path, out)["csv"])
    assert cli.main(["vesicles", path, "-o", out, "--pixel-size", "10"]) in (0, None)


def test_phantoms_write_their_vesicles_and_the_finder_finds_them(tmp_path):
    out = str(tmp_path / "ph")
    cli.main(["phantoms", "-o", out, "--shape", "64", "160", "160", "--seed", "5"])
    truth_path = os.path.join(out, "phantom_000_vesicles_truth.csv")
    with open(truth_path) as f:
        truth = list(csv.DictReader(f))
    assert truth and set(files.TRUTH_COLUMNS) == set(truth[0])
    found_dir = str(tmp_path / "found")
    cli.main(["vesicles", os.path.join(out, "phantom_000_labels.mrc"), "--membrane-labels", "1", "2",
              "-o", found_dir])
    found = files.read_csv(os.path.join(found_dir, "phantom_000_vesicles.csv"))
    whole = [t for t in truth if all(float(t[a]) - float(t["semi_axis_1_nm"]) >= 0 and
                                     float(t[a]) + float(t["semi_axis_1_nm"]) <= 159 for a in ("x", "y"))
             and 0 <= float(t["z"]) <= 63]
    for t in whole:
        c = np.array([float(t[a]) for a in "xyz"])
        near = min(found, key=lambda r: np.linalg.norm(np.array([r[a] for a in "xyz"]) - c))
        assert np.linalg.norm(np.array([near[a] for a in "xyz"]) - c) <= 2.0
        assert near["radius_nm"] == pytest.approx(float(t["radius_nm"]), rel=0.1)
