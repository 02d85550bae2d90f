"""Test-time scales (segmentation/scales.py): the coarser copies sit on the volume's grid (centre-aligned), their
probability maps come back to it and are averaged, copies coarser than the limit are skipped, and a model's card
or the command line sets the factors."""
import subprocess
import sys

import numpy as np
import pytest

from membraneseg.engine.segmentation import scales


def ramp(shape):
    z, y, x = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    return 0.5 * z + 0.25 * y - 0.125 * x


def test_factors_start_at_one_and_refuse_factors_not_over_zero():
    assert scales.check_factors([4, 2, 2]) == [1.0, 2.0, 4.0]
    assert scales.check_factors([1]) == [1.0]
    assert scales.check_factors([2, 0.5]) == [1.0, 0.5, 2.0]
    with pytest.raises(ValueError, match="--scales.*0 "):
        scales.check_factors([1, 0, 2])


def test_finer_passes_only_for_volumes_coarser_than_the_models_upsampling():
    """A 10 Å model upsampling up to 2x works a 40 Å volume at 20 Å: factor 0.5 adds a pass at 10 Å; a 30 Å one
    (worked at 15 Å) gets 10 Å, not 7.5; 10 and 20 Å volumes are already worked at 10 Å and get none."""
    assert scales.finer_passes([1, 0.5, 2, 4], 20.0, 10.0) == [10.0]
    assert scales.finer_passes([1, 0.5, 2, 4], 15.0, 10.0) == [10.0]
    assert scales.finer_passes([1, 0.5, 2, 4], 10.0, 10.0) == []
    assert scales.finer_passes([1, 2, 4], 20.0, 10.0) == []


def test_a_finer_pass_is_averaged_with_the_others():
    calls, seen = [], []

    def segment(data, px, prob, mask, work=None):
        calls.append((data.shape, px))
        seen.append(work)
        prob[:] = 1.0 if work else 0.0                   # only the finer pass finds anything
    data = np.zeros((8, 32, 32), np.float32)
    prob, mask = np.zeros(data.shape, np.float32), np.zeros(data.shape, np.uint8)
    scales.segment_scales(segment, data, 40.0, [1, 0.5, 2], prob, mask, 0.4, "t", finer=[10.0])
    assert seen == [None, 10.0] and calls == [((8, 32, 32), 40.0)] * 2        # the 80 Å copy is skipped
    assert np.allclose(prob, 0.5) and mask.all()


def test_coarser_copy_keeps_positions_centre_aligned():
    """A linear ramp stays the same ramp on the coarse grid (voxel j of the copy sits at (j + 0.5) f - 0.5), and
    comes back unchanged away from the borders: nothing is shifted by half a voxel."""
    data = ramp((24, 40, 36))
    small = scales.reduce(data, 2)
    assert small.shape == (12, 20, 18)
    expected = ramp((12, 20, 18)) * 2 + 0.5 * (0.5 + 0.25 - 0.125)
    np.testing.assert_allclose(small[3:-3, 3:-3, 3:-3], expected[3:-3, 3:-3, 3:-3], atol=1e-3)
    back = np.zeros(data.shape, np.float32)
    scales.add_restored(back, small)
    np.testing.assert_allclose(back[6:-6, 6:-6, 6:-6], data[6:-6, 6:-6, 6:-6], atol=1e-3)


def test_reduction_smooths_noise():
    noise = np.random.default_rng(0).normal(size=(32, 64, 64)).astype(np.float32)
    assert scales.reduce(noise, 2).std() < 0.5 * noise.std()


def fake_segment(calls):
    """A stand-in for the network: probability = the input's value clipped to [0, 1]; records each call."""
    def segment(data, px, prob, mask):
        calls.append((data.shape, px))
        prob[:] = np.clip(data, 0, 1)
        mask[:] = prob >= 0.5
    return segment


def test_maps_of_every_scale_are_averaged_and_thresholded():
    data = np.zeros((16, 32, 32), np.float32)
    data[:, :, 12:20] = 1.0                          # a slab of "membrane" 8 voxels wide
    calls, prob, mask = [], np.zeros(data.shape, np.float32), np.zeros(data.shape, np.uint8)
    scales.segment_scales(fake_segment(calls), data, 10.0, [1, 2, 4], prob, mask, 0.5, "t")
    assert calls == [((16, 32, 32), 10.0), ((8, 16, 16), 20.0), ((4, 8, 8), 40.0)]
    assert prob.max() <= 1.0 and prob[:, :, 15].min() > 0.9 and prob[:, :, 2].max() < 0.05
    assert mask[:, :, 14:18].all() and not mask[:, :, :8].any()
    # the mean, not the first map: the smoothed copies spread the edges
    assert 0 < prob[8, 16, 11] < 1


def test_copies_coarser_than_the_limit_are_skipped_and_2d_images_only_when_asked():
    calls = []
    data = np.zeros((8, 32, 32), np.float32)
    scales.segment_scales(fake_segment(calls), data, 30.0, [1, 2, 4], np.zeros(data.shape, np.float32),
                          np.zeros(data.shape, np.uint8), 0.5, "t")
    assert [px for _, px in calls] == [30.0, 60.0]          # 120 Å would exceed scales.COARSEST
    calls.clear()
    image = np.zeros((1, 32, 32), np.float32)
    scales.segment_scales(fake_segment(calls), image, 10.0, [1, 2, 4], np.zeros(image.shape, np.float32),
                          np.zeros(image.shape, np.uint8), 0.5, "t")
    assert calls == [((1, 32, 32), 10.0)]                           # a card's scales: volumes only
    calls.clear()
    scales.segment_scales(fake_segment(calls), image, 10.0, [1, 2, 4], np.zeros(image.shape, np.float32),
                          np.zeros(image.shape, np.uint8), 0.5, "t", planar=True)
    assert calls == [((1, 32, 32), 10.0), ((1, 16, 16), 20.0), ((1, 8, 8), 40.0)]   # asked for: in-plane


def test_a_single_pass_leaves_its_outputs_as_written():
    """With no coarser copy to average (factor 1 alone, or every copy past the limit), the mask the segmentation
    wrote stands: a multi-class model writes labels there, which thresholding the probability would erase."""
    def labelling(data, px, prob, mask):
        prob[:] = 0.2
        mask[:] = 3
    data = np.zeros((8, 32, 32), np.float32)
    for factors, px in (([1], 10.0), ([1, 2], 40.0)):
        prob, mask = np.zeros(data.shape, np.float32), np.zeros(data.shape, np.uint8)
        scales.segment_scales(labelling, data, px, factors, prob, mask, 0.5, "t")
        assert (mask == 3).all() and np.allclose(prob, 0.2)


def test_card_and_command_line_set_the_scales(tiny_model):
    """tiny_model: conftest's untrained model. The card's factors are used unless the caller gives others, and a
    predictor on a volume runs one pass per scale (the log says which)."""
    from membraneseg.engine.network import modelfile
    from membraneseg.engine.segmentation.predict import Predictor
    card = modelfile.read_card(tiny_model)
    assert card.test_scales is None
    assert Predictor(tiny_model).scales == [1.0]
    assert Predictor(tiny_model, test_scales=[1, 2]).scales == [1.0, 2.0]
    assert Predictor(tiny_model, test_scales=[1, 2]).planar_scales and not Predictor(tiny_model).planar_scales
    shipped = modelfile.read_card(modelfile.default_model_path(volumes=True))
    assert shipped.test_scales == [0.5, 1.0, 2.0, 4.0]
    vol = np.random.default_rng(1).normal(size=(8, 96, 96)).astype(np.float32)
    prob, mask = Predictor(tiny_model, test_scales=[1, 2]).predict_array(vol, pixel_size=10.0)
    assert prob.shape == vol.shape and mask.shape == vol.shape and 0 <= prob.min() and prob.max() <= 1


def test_cli_refuses_factors_not_over_zero(tmp_path):
    out = subprocess.run([sys.executable, "-m", "membraneseg.engine", "segment", str(tmp_path), "-o",
                          str(tmp_path / "o"), "--scales", "1", "-0.5"], capture_output=True, text=True)
    assert out.returncode != 0 and "--scales" in out.stderr


def test_a_coarse_tomogram_gets_its_finer_pass_through_segment_file(tiny_model, tmp_path, caplog):
    """tiny_model never upsamples (no max_upsampling in its card): a 40 Å tomogram is worked at 40 Å, and factor
    0.5 adds a pass at 20 Å, written into the memory-mapped outputs."""
    from membraneseg.engine.core import io
    from membraneseg.engine.segmentation.predict import Predictor
    caplog.set_level("INFO")
    vol = np.random.default_rng(3).normal(size=(6, 40, 40)).astype(np.float32)
    io.write(str(tmp_path / "t.mrc"), vol, 40.0)
    mask_path, prob_path = Predictor(tiny_model, test_scales=[0.5, 1]).segment_file(
        str(tmp_path / "t.mrc"), str(tmp_path / "out"), progress=False)
    assert "finer test-time pass: the network at 20.00 Å" in caplog.text
    prob = io.read(prob_path).data
    assert prob.shape == vol.shape and 0 <= prob.min() and prob.max() <= 1
    assert io.read(mask_path).data.shape == vol.shape
