"""Metrics against hand-computed values, the empty-mask conventions, and ``membraneseg evaluate`` on files."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage

from membraneseg.engine import cli
from membraneseg.engine.measurement import evaluate, metrics
from membraneseg.engine.core import io

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def square(shape=(1, 10, 10), rows=slice(2, 5), cols=slice(2, 5)):
    m = np.zeros(shape, bool)
    m[0, rows, cols] = True
    return m


# ----------------------------------------------------------------------------- voxel metrics
def test_hand_computed_confusion_and_scores():
    ref = square()                                       # 9 voxels
    pred = square(rows=slice(3, 6))                      # shifted one row: 6 shared, 3 extra, 3 missed
    assert metrics.confusion(pred, ref) == (6, 3, 3, 88)
    s = metrics.scores(6, 3, 3, 88)
    assert s["accuracy"] == pytest.approx(94 / 100)
    assert s["precision"] == pytest.approx(6 / 9) and s["recall"] == pytest.approx(6 / 9)
    assert s["dice"] == pytest.approx(12 / 18) and s["iou"] == pytest.approx(6 / 12)
    assert s["f1"] == pytest.approx(s["dice"])           # at voxel level F1 and Dice are the same number


def test_one_extra_pixel_changes_iou_and_dice_as_expected():
    ref = square()
    pred = ref.copy()
    pred[0, 8, 8] = True                                 # 9 right, 1 false positive
    assert metrics.iou(pred, ref) == pytest.approx(9 / 10)
    assert metrics.dice(pred, ref) == pytest.approx(18 / 19)
    s = metrics.scores(*metrics.confusion(pred, ref))
    assert s["precision"] == pytest.approx(9 / 10) and s["recall"] == 1.0


def test_f1_is_twice_pr_over_p_plus_r_as_in_table_3():
    # the paper's text omits the 2; its Table 3 value is the correct harmonic mean
    assert metrics.f1_from(0.7145, 0.6925) == pytest.approx(0.7033, abs=1e-4)
    assert metrics.f1_from(0.0, 0.0) == 0.0


@pytest.mark.parametrize("pred_empty,ref_empty,expected", [(True, True, 1.0), (True, False, 0.0),
                                                          (False, True, 0.0)])
def test_empty_mask_conventions(pred_empty, ref_empty, expected):
    empty, full = np.zeros((2, 6, 6), bool), np.zeros((2, 6, 6), bool)
    full[1, 2:4, 2:4] = True
    pred, ref = (empty if pred_empty else full), (empty if ref_empty else full)
    s = metrics.scores(*metrics.confusion(pred, ref))
    for key in ("precision", "recall", "f1", "dice", "iou"):
        assert s[key] == expected, key
    assert s["accuracy"] == (1.0 if pred_empty and ref_empty else 68 / 72)
    assert metrics.tolerant_scores(*metrics.tolerant_counts(pred, ref, 2))["tolerant_dice"] == expected
    assert metrics.mcov(pred, ref) == (expected, expected)


# ----------------------------------------------------------------------------- boundary tolerance
def line(shape, row, z=0):
    m = np.zeros(shape, bool)
    m[z, row, 2:12] = True
    return m


def test_tolerance_accepts_a_one_voxel_shift_and_not_more():
    ref = line((1, 16, 16), 5)
    one_off, two_off = line((1, 16, 16), 6), line((1, 16, 16), 7)
    assert metrics.dice(one_off, ref) == 0.0
    tol = metrics.tolerant_scores(*metrics.tolerant_counts(one_off, ref, 1))
    assert tol == dict(tolerant_precision=1.0, tolerant_recall=1.0, tolerant_dice=1.0)
    assert metrics.tolerant_scores(*metrics.tolerant_counts(two_off, ref, 1))["tolerant_dice"] == 0.0
    assert metrics.tolerant_scores(*metrics.tolerant_counts(two_off, ref, 2))["tolerant_dice"] == 1.0


def test_tolerance_zero_is_plain_dice_and_partial_counts_are_exact():
    ref = line((1, 16, 16), 5)
    pred = line((1, 16, 16), 5) | line((1, 16, 16), 9)   # 10 right + 10 three rows away
    assert metrics.tolerant_counts(pred, ref, 2) == (10, 20, 10, 10)
    s = metrics.tolerant_scores(10, 20, 10, 10)
    assert s["tolerant_precision"] == 0.5 and s["tolerant_recall"] == 1.0
    assert s["tolerant_dice"] == pytest.approx(2 * 0.5 / 1.5)
    assert metrics.tolerant_scores(*metrics.tolerant_counts(pred, ref, 0))["tolerant_dice"] == \
        pytest.approx(metrics.dice(pred, ref))


@pytest.mark.parametrize("tolerance", [0, 1, 1.5, 2, 2.5])
def test_tolerant_counts_equal_scipy_distance_transforms(tolerance):
    rng = np.random.default_rng(int(tolerance * 10))
    pred, ref = rng.random((9, 30, 34)) < 0.02, rng.random((9, 30, 34)) < 0.02
    ref[4] = False                                        # an empty slice in the middle
    expected_3d = np.count_nonzero(pred & (ndimage.distance_transform_edt(~ref) <= tolerance))
    assert metrics.tolerant_counts(pred, ref, tolerance)[0] == expected_3d
    expected_2d = sum(np.count_nonzero(pred[z] & (ndimage.distance_transform_edt(~ref[z]) <= tolerance))
                      for z in range(9) if ref[z].any())
    assert metrics.tolerant_counts(pred, ref, tolerance, per_slice=True)[0] == expected_2d
    core = slice(3, 6)                                    # a slab with context slices around it
    assert metrics.tolerant_counts(pred, ref, tolerance, core=core)[0] == \
        np.count_nonzero((pred & (ndimage.distance_transform_edt(~ref) <= tolerance))[core])


def test_z_shift_counts_in_3d_but_not_per_slice():
    ref, pred = line((3, 16, 16), 5, z=1), line((3, 16, 16), 5, z=2)
    assert metrics.tolerant_scores(*metrics.tolerant_counts(pred, ref, 1))["tolerant_dice"] == 1.0
    assert metrics.tolerant_scores(*metrics.tolerant_counts(pred, ref, 1, per_slice=True))["tolerant_dice"] == 0.0


# ----------------------------------------------------------------------------- mCov
def test_mcov_mean_and_size_weighted_by_hand():
    ref = np.zeros((1, 20, 40), bool)
    ref[0, 2, 0:30] = True                               # instance A: 30 voxels
    ref[0, 10, 0:10] = True                              # instance B: 10 voxels
    pred = ref.copy()
    pred[0, 10, 5:10] = False                            # B half found: IoU 5/10
    mcov, mwcov = metrics.mcov(pred, ref)
    assert mcov == pytest.approx((1.0 + 0.5) / 2)        # each instance counts once
    assert mwcov == pytest.approx((30 * 1.0 + 10 * 0.5) / 40)


def test_mcov_penalises_merging_two_instances():
    ref = np.zeros((1, 10, 10), bool)
    ref[0, 2, 1:5] = True                                # A: 4 voxels
    ref[0, 2, 6:10] = True                               # B: 4 voxels
    pred = ref.copy()
    pred[0, 2, 5] = True                                 # one voxel bridges them: one predicted instance of 9
    assert metrics.iou(pred, ref) == pytest.approx(8 / 9)
    assert metrics.mcov(pred, ref)[0] == pytest.approx(4 / 9)


def test_instances_touching_diagonally_are_one_piece():
    m = np.zeros((2, 4, 4), bool)
    m[0, 0, 0] = m[1, 1, 1] = True
    assert metrics.label_instances(m)[1] == 1
    assert metrics.label_instances(m, per_slice=True)[1] == 2


# ----------------------------------------------------------------------------- probability maps
def test_threshold_curve_matches_direct_counts_and_calibration():
    rng = np.random.default_rng(0)
    probs = rng.random((3, 40, 40)).astype(np.float32)
    probs[0, 0, :5] = [0.7, 0.3, 0.61, 0.05, 0.95]       # values exactly at thresholds count as membrane
    ref = rng.random((3, 40, 40)) < probs                # a calibrated map: P(membrane) = probability
    curve = metrics.ThresholdCurve()
    for z in range(3):                                   # added slab by slab
        curve.add(probs[z], ref[z])
    for t in (0.05, 0.3, 0.61, 0.7, 0.95):
        tp, fp, fn = (int(v[0]) for v in curve.counts([t]))
        assert (tp, fp, fn) == metrics.confusion(probs >= t, ref)[:3], t
    c = curve.curve()
    assert len(c["thresholds"]) == 99 and c["recall"][0] >= c["recall"][-1]
    best_t, best_f1 = curve.best()
    assert best_f1 == pytest.approx(max(metrics.dice(probs >= t, ref) for t in c["thresholds"]))
    assert metrics.dice(probs >= best_t, ref) == pytest.approx(best_f1)
    t, d = metrics.calibrate_threshold(probs, ref)
    assert 0.05 <= t <= 0.95 and d == pytest.approx(metrics.dice(probs >= t, ref))


# ----------------------------------------------------------------------------- files and pairing
def write_pair(folder, name, pred, ref, voxel=10.0):
    os.makedirs(folder, exist_ok=True)
    p, r = os.path.join(folder, name + "_prob.mrc"), os.path.join(folder, name + "_labels.mrc")
    io.write(p, pred, voxel)
    io.write(r, ref, voxel)
    return p, r


def shell_volume(shape=(40, 48, 48), radius=14.0):
    z, y, x = np.indices(shape)
    d = np.sqrt((z - shape[0] / 2) ** 2 + (y - shape[1] / 2) ** 2 + (x - shape[2] / 2) ** 2)
    return np.abs(d - radius) < 1.0


def test_evaluate_pair_in_slabs_equals_whole_volume_metrics(tmp_path):
    ref = shell_volume()                                 # 40 slices: several 16-slice slabs
    pred = np.roll(ref, 1, axis=0)                       # shifted 1 voxel in z, across slab borders
    probs = np.where(pred, 0.8, 0.1).astype(np.float32)
    p, r = write_pair(tmp_path, "t1", probs, ref.astype(np.uint8))
    result, curve = evaluate.evaluate_pair(evaluate.Pair("t1", p, r), tolerance=1.5)
    assert result["kind"] == "probability" and result["threshold"] == 0.5
    assert result["dice"] == pytest.approx(metrics.dice(pred, ref))
    whole = metrics.tolerant_scores(*metrics.tolerant_counts(pred, ref, 1.5))
    assert result["tolerant_dice"] == pytest.approx(whole["tolerant_dice"])
    assert result["tolerant_dice"] > 0.99 > result["dice"]
    assert result["mcov"] == pytest.approx(metrics.mcov(pred, ref)[0])
    assert result["best_f1"] == pytest.approx(result["dice"]) and 0.1 < result["best_threshold"] <= 0.8


def test_pairing_by_name_and_clear_errors(tmp_path):
    vol = shell_volume((8, 32, 32), 8).astype(np.uint8)
    for name in ("a", "b"):
        io.write(tmp_path / ("%s_mask.mrc" % name), vol, 10.0)
    io.write(tmp_path / "a.mrc", vol, 10.0)
    io.write(tmp_path / "c.mrc", vol, 10.0)
    preds, refs = [str(tmp_path / "a_mask.mrc"), str(tmp_path / "b_mask.mrc")], [str(tmp_path / "a.mrc"),
                                                                                 str(tmp_path / "c.mrc")]
    with pytest.raises(io.InputError, match=r"no reference for tomogram\(s\) b.*no prediction for tomogram\(s\) c"):
        evaluate.pair_by_name(preds, refs)
    pairs = evaluate.pair_by_name(preds, refs, allow_unmatched=True)
    assert [(x.ts_id, x.pred, x.ref) for x in pairs] == [("a", preds[0], refs[0])]
    io.write(tmp_path / "small.mrc", vol[:4], 10.0)
    with pytest.raises(io.InputError, match="32x32x8 voxels.*32x32x4"):
        evaluate.evaluate_pair(evaluate.Pair("a", preds[0], str(tmp_path / "small.mrc")))
    frac = tmp_path / "frac.mrc"
    io.write(frac, vol * np.float32(0.5), 10.0)
    with pytest.raises(io.InputError, match="fractional values"):
        evaluate.evaluate_pair(evaluate.Pair("a", preds[0], str(frac)))


def test_reference_labels_select_membrane_classes(tmp_path):
    ref = np.zeros((2, 10, 10), np.uint8)
    ref[0, 2, :] = 1                                     # membrane
    ref[1, 5, :] = 3                                     # a filament: not membrane
    pred = (ref == 1).astype(np.uint8)
    p, r = write_pair(tmp_path, "x", pred, ref)
    assert evaluate.evaluate_pair(evaluate.Pair("x", p, r))[0]["recall"] == 0.5
    result = evaluate.evaluate_pair(evaluate.Pair("x", p, r), ref_labels=[1, 2])[0]
    assert result["kind"] == "binary" and result["dice"] == 1.0 and result["threshold"] is None


def test_cli_evaluate_writes_json_with_pooled_metrics_and_curve(tmp_path):
    ref = shell_volume((16, 40, 40), 12)
    p1, r1 = write_pair(tmp_path / "d", "t1", np.where(ref, 0.9, 0.2).astype(np.float32), ref.astype(np.uint8))
    empty = np.zeros_like(ref)
    write_pair(tmp_path / "d", "t2", np.full(ref.shape, 0.1, np.float32), empty.astype(np.uint8))
    pairs = [dict(tsId="t1", pred=p1, ref=r1, threshold=0.95),      # recorded threshold: finds nothing
             dict(tsId="t2", pred=str(tmp_path / "d" / "t2_prob.mrc"), ref=str(tmp_path / "d" / "t2_labels.mrc"))]
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    out = tmp_path / "report.json"
    res = subprocess.run([sys.executable, "-m", "membraneseg.engine", "evaluate", "--pairs", tmp_path / "pairs.json",
                          "--json", out], env=ENV, capture_output=True, text=True, check=True)
    assert "pooled" in res.stdout and "best threshold" in res.stdout
    report = json.loads(out.read_text())
    t1, t2 = report["tomograms"]
    assert t1["threshold"] == 0.95 and t1["dice"] == 0.0
    assert t2["dice"] == 1.0 and t2["mcov"] == 1.0       # nothing to find, nothing found
    assert report["pooled"]["dice"] == 0.0 and report["pooled"]["mean_of_tomograms"]["dice"] == 0.5
    assert report["pr_curve"]["best_f1"] == 1.0 and 0.2 < report["pr_curve"]["best_threshold"] <= 0.9
    # the same files, paired by name, at a threshold given on the command line (in-process: quicker)
    assert cli.main(["evaluate", "--pred", p1, "--ref", r1, "--threshold", "0.5", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["pooled"]["dice"] == 1.0
    # one prediction and one reference are compared whatever their names; pairing by name is for several
    assert cli.main(["evaluate", "--pred", p1, "--ref", str(tmp_path / "d" / "t2_labels.mrc"), "--json",
                     str(out)]) == 0
    assert [t["tsId"] for t in json.loads(out.read_text())["tomograms"]] == ["t1"]
    err = tmp_path / "err.txt"
    assert cli.main(["evaluate", "--pred", p1, str(tmp_path / "d" / "t2_prob.mrc"), "--ref", r1, str(tmp_path / "x"),
                     "--error-file", str(err)]) == cli.EXIT_BAD_INPUT
    assert "no prediction for tomogram(s) x" in err.read_text()


def test_one_prediction_and_one_reference_are_compared_whatever_their_names(tmp_path):
    from membraneseg.engine.measurement import evaluate
    pairs = evaluate.pair_by_name([str(tmp_path / "results" / "tomo_prob.mrc")], [str(tmp_path / "labels.mrc")])
    assert [(p.pred, p.ref) for p in pairs] == [(str(tmp_path / "results" / "tomo_prob.mrc"),
                                                 str(tmp_path / "labels.mrc"))]
    with pytest.raises(io.InputError, match="no tomogram has both"):
        evaluate.pair_by_name([str(tmp_path / "a_prob.mrc"), str(tmp_path / "b_prob.mrc")],
                              [str(tmp_path / "c.mrc"), str(tmp_path / "d.mrc")])


def test_train_help_lists_every_preset(capsys):
    from membraneseg.engine import cli
    from membraneseg.engine.network.model import PRESETS
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in PRESETS) and "cpu-fine is the shipped models'" in text
