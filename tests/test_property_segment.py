"""Property test: random small MRC volumes (shapes, dtypes, header voxel sizes, NaN/Inf sprinkles, 2D files) and
random options through ``membraneseg segment`` and ``preprocess`` (``main``, in-process).

Every run must either succeed with output of the input's shape (binned where asked) and the voxel size it should
trust in the header, or fail with exit status 2 and one line naming the input (``io.InputError``) for exactly the
inputs that deserve it - never anything else. The number of cases run is printed at the end of the session.
"""
import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from membraneseg.engine import cli
from membraneseg.engine.core import io
from membraneseg.engine.segmentation import predict
from membraneseg.tests.badinputs import write_mrc

MODEL_PIXEL = 10.0     # the tiny_model fixture's
RUNS = {"segment": {}, "preprocess": {}}
SETTINGS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
ONE_IN_THREE = st.sampled_from([False, False, True])


@st.composite
def volumes(draw):
    """(data as written, header voxel size): 2D or 3D, any MRC mode, sometimes constant, sprinkled or all NaN."""
    two_d = draw(st.booleans())
    shape = ((1,) if two_d else (draw(st.integers(1, 5)),)) + (draw(st.integers(1, 90)), draw(st.integers(1, 90)))
    dtype = draw(st.sampled_from([np.int8, np.int16, np.uint16, np.float16, np.float32]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    kind = draw(st.sampled_from(["noise", "noise", "noise", "constant", "sprinkled", "all NaN"]))
    data = rng.normal(size=shape) * draw(st.sampled_from([1.0, 50.0]))
    if kind == "constant":
        data[:] = draw(st.sampled_from([0.0, 7.0]))
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        data = np.clip(np.rint(data + (info.min + info.max) / 2), info.min, info.max)
    elif kind in ("sprinkled", "all NaN"):
        share = 1.0 if kind == "all NaN" else draw(st.floats(0.001, 0.5))
        data[rng.random(shape) < share] = np.nan
        data.flat[rng.integers(0, data.size)] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    voxel = draw(st.sampled_from([0.0, 1.0]) | st.floats(2.0, 40.0))
    return data.astype(dtype)[0] if two_d else data.astype(dtype), voxel


def expected_refusal(data, volumes_only):
    """The words the engine must refuse ``data`` with, or None when it must be processed."""
    values = np.asarray(data, np.float64)
    finite = values[np.isfinite(values)]
    if volumes_only and data.ndim == 2:
        return "where a volume is needed"
    if finite.size == 0:
        return "no finite voxel values"
    if finite.min() == finite.max():
        return "all voxels have the same value"
    return None


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("property"))


def run_case(workdir, command, data, voxel, options):
    """Write the volume, run the command; returns (status, one-line reason, input path, output folder)."""
    folder = tempfile.mkdtemp(dir=workdir)
    path = write_mrc(os.path.join(folder, "in.mrc"), data, voxel=voxel)
    out, error = os.path.join(folder, "out"), os.path.join(folder, "error.txt")
    target = out if command == "segment" else os.path.join(out, "pre.mrc")
    status = cli.main([command, path, "-o", target, "--error-file", error] + [str(o) for o in options])
    reason = ""
    if os.path.exists(error):
        with open(error) as f:
            reason = f.read()
    assert status in (0, cli.EXIT_BAD_INPUT)
    if status:
        assert reason.startswith(path + ": ") and reason.count("\n") == 1, reason
        assert not os.path.isdir(out) or os.listdir(out) == []      # nothing left behind
    return status, reason, path, out


def trusted(header, given):
    return given if given else (0.0 if header in io.SUSPICIOUS_VOXEL_SIZES else header)


def _count(command, status):
    RUNS[command][status] = RUNS[command].get(status, 0) + 1


@settings(max_examples=15, **SETTINGS)
@given(volume=volumes(), pixel_size=st.none() | st.floats(2.0, 40.0), threshold=st.none() | st.floats(0.0, 1.0),
       overlap=st.none() | st.floats(0.0, 0.9), batch=st.integers(1, 8), volumes_only=ONE_IN_THREE)
def test_segment(tiny_model, workdir, volume, pixel_size, threshold, overlap, batch, volumes_only):
    data, voxel = volume
    options = ["--model", tiny_model, "--batch-size", batch]
    for flag, value in (("--pixel-size", pixel_size), ("--threshold", threshold), ("--overlap", overlap)):
        options += [flag, value] if value is not None else []
    status, reason, path, out = run_case(workdir, "segment", data, voxel, options + (["--volumes-only"] * volumes_only))
    _count("segment", status)
    refusal = expected_refusal(data, volumes_only)
    if refusal:
        assert status and refusal in reason
        return
    assert status == 0, reason
    mask, prob = (io.read(p) for p in predict.output_paths(path, out, is_2d=data.ndim == 2))
    shape = (1,) + data.shape if data.ndim == 2 else data.shape
    assert mask.data.shape == prob.data.shape == shape
    if data.ndim == 3:   # MRC outputs carry the voxel size used: the one given, the header's, else the model's
        px = trusted(voxel, pixel_size) or MODEL_PIXEL
        assert prob.voxel_size == pytest.approx(px, rel=1e-4) and mask.voxel_size == pytest.approx(px, rel=1e-4)
    p = np.asarray(prob.data, np.float32)
    assert np.isfinite(p).all() and 0 <= p.min() <= p.max() <= 1
    np.testing.assert_array_equal(np.asarray(mask.data) > 0, p >= (0.5 if threshold is None else threshold))


@settings(max_examples=100, **SETTINGS)
@given(volume=volumes(), pixel_size=st.none() | st.floats(2.0, 40.0), factor=st.sampled_from([None, 2, 3]),
       normalize=st.booleans(), eed=st.booleans(), clahe=st.booleans(), volumes_only=ONE_IN_THREE)
def test_preprocess(workdir, volume, pixel_size, factor, normalize, eed, clahe, volumes_only):
    data, voxel = volume
    options = ["--eed-iterations", 2] + ["--no-normalize"] * (not normalize) + ["--no-eed"] * (not eed)
    options += ["--no-clahe"] * (not clahe) + ["--volumes-only"] * volumes_only
    options += ["--pixel-size", pixel_size] if pixel_size else []
    options += ["--bin", factor] if factor else []
    status, reason, path, out = run_case(workdir, "preprocess", data, voxel, options)
    _count("preprocess", status)
    shape = (1,) + data.shape if data.ndim == 2 else data.shape
    refusal = expected_refusal(data, volumes_only)
    if refusal is None and factor and min(shape[1:] if data.ndim == 2 else shape) < factor:
        refusal = "cannot be binned by %d" % factor
    if refusal:
        assert status and refusal in reason, reason
        return
    assert status == 0, reason
    vol = io.read(os.path.join(out, "pre.mrc"))
    f = factor or 1
    assert vol.data.shape == ((1,) if data.ndim == 2 else (shape[0] // f,)) + (shape[1] // f, shape[2] // f)
    assert vol.voxel_size == pytest.approx(trusted(voxel, pixel_size) * f, rel=1e-4)
    assert np.isfinite(np.asarray(vol.data)).all()
    assert sorted(os.listdir(out)) == ["pre.mrc", "pre_recipe.json"]


@pytest.fixture(scope="module", autouse=True)
def report(summary):
    """Say how many random cases ran (and how many were refused), for the notes."""
    yield
    for command, counts in RUNS.items():
        if counts:
            summary.append("property test, %s: %d random cases, %d processed, %d refused with exit status 2" % (
                command, sum(counts.values()), counts.get(0, 0), counts.get(cli.EXIT_BAD_INPUT, 0)))
