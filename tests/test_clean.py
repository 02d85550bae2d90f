"""``membraneseg clean``: re-threshold, closing, removal of small pieces (voxels and nm³) and instance labels."""
import json
import os

import numpy as np
import pytest

from membraneseg.engine.measurement import clean
from membraneseg.engine import cli
from membraneseg.engine.core import io

VOXEL = 10.0   # Å: one voxel is 1 nm³


def prob_map():
    """Two membranes (a 10x10x4 plate and a 3x3x1 speck) at 0.6, and a faint 0.3 patch, in a 12x40x40 map."""
    p = np.full((12, 40, 40), 0.05, np.float32)
    p[2:6, 5:15, 5:15] = 0.6          # 400 voxels
    p[8, 30:33, 30:33] = 0.6          # 9 voxels
    p[8, 5:10, 25:30] = 0.3           # 25 voxels, below the default threshold
    return p


@pytest.fixture
def prob_file(tmp_path):
    path = str(tmp_path / "tomo_prob.mrc")
    io.write(path, prob_map(), VOXEL)
    return path


def test_threshold_and_remove_small_pieces_in_voxels(prob_file, tmp_path):
    out = clean.output_path(prob_file, str(tmp_path / "out"))
    assert out.endswith("tomo_clean.mrc")
    os.makedirs(tmp_path / "out")
    record = clean.clean_file(prob_file, out, threshold=0.5, min_size=10, unit="voxels")
    vol = io.read(out)
    assert vol.voxel_size == pytest.approx(VOXEL)
    m = np.asarray(vol.data)
    assert m.sum() == 400 and m[2:6, 5:15, 5:15].all()           # the speck (9 < 10 voxels) is gone
    assert record["pieces_kept"] == 1 and record["pieces_removed"] == 1 and record["threshold"] == 0.5
    assert json.load(open(clean.record_path(out)))["output_kind"] == "binary"
    # a lower threshold brings the faint patch back, without any network
    record = clean.clean_file(prob_file, out, threshold=0.25)
    assert np.asarray(io.read(out).data).sum() == 400 + 9 + 25 and record["pieces_kept"] is None


def test_min_volume_in_nm3_uses_the_voxel_size(prob_file, tmp_path):
    out = str(tmp_path / "c.mrc")
    assert clean.min_voxels(9, "nm3", VOXEL) == 9.0
    assert clean.min_voxels(9, "nm3", 5.0) == 72.0                # 8 voxels of 5 Å per nm³
    record = clean.clean_file(prob_file, out, min_size=9, unit="nm3")
    assert record["pieces_kept"] == 2                             # 9 nm³ speck kept at >= 9 nm³
    record = clean.clean_file(prob_file, out, min_size=9, unit="nm3", pixel_size=5.0)
    assert record["pieces_kept"] == 1 and record["min_size_voxels"] == 72.0
    unknown = str(tmp_path / "nosize.mrc")
    io.write(unknown, prob_map(), 0.0)
    with pytest.raises(io.InputError, match="voxel size is unknown"):
        clean.clean_file(unknown, out, min_size=9, unit="nm3")


def test_closing_fills_gaps_per_slice_without_eating_the_border():
    m = np.zeros((2, 20, 20), bool)
    m[0, 10, 0:8] = m[0, 10, 10:20] = True                        # a line with a 2-pixel gap, touching both edges
    m[1, 3, 3] = True
    closed = clean.close_slices(m.copy(), 5)
    assert closed[0, 10, :].all()                                 # gap closed, ends at the edges kept
    assert closed[0].sum() == 20 and closed[1].sum() == 1         # nothing added around; slices independent


def test_instance_labels_one_per_connected_membrane(prob_file, tmp_path):
    out = str(tmp_path / "labels.mrc")
    record = clean.clean_file(prob_file, out, threshold=0.25, instance_labels=True)
    labels = np.asarray(io.read(out).data)
    assert record["output_kind"] == "labels" and record["pieces_kept"] == 3
    assert sorted(np.unique(labels).tolist()) == [0, 1, 2, 3]
    assert len(np.unique(labels[2:6, 5:15, 5:15])) == 1 and labels[3, 8, 8] > 0


def test_masks_are_cleaned_and_the_threshold_is_not_used(tmp_path):
    mask = (prob_map() >= 0.5).astype(np.uint8)
    path = str(tmp_path / "m_mask.mrc")
    io.write(path, mask, VOXEL)
    record = clean.clean_file(path, str(tmp_path / "m_clean.mrc"), threshold=0.9, min_size=10)
    assert record["input_kind"] == "binary" and record["threshold"] is None and record["pieces_kept"] == 1


def test_cli_clean_and_bad_input(prob_file, tmp_path):
    out = tmp_path / "out"
    assert cli.main(["clean", prob_file, "-o", str(out), "--threshold", "0.5", "--min-volume", "10", "--closing", "5",
                     "--labels"]) == 0
    labels = np.asarray(io.read(str(out / "tomo_clean.mrc")).data)
    assert labels.max() == 1 and labels.dtype == np.uint16
    bad = tmp_path / "bad.mrc"
    bad.write_bytes(b"junk" * 50)
    err = tmp_path / "err.txt"
    assert cli.main(["clean", str(bad), "-o", str(out), "--error-file", str(err)]) == cli.EXIT_BAD_INPUT
    assert "bad.mrc: not a readable MRC file" in err.read_text()
    assert not os.path.exists(out / "bad_clean.mrc")
