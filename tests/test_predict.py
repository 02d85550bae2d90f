"""Segmentation of volumes and 2D images: outputs, headers, resampling, stitching, refusals."""
import os

import numpy as np
import pytest

from membraneseg.engine.core import io
from membraneseg.engine.network import inference, model as net, modelfile
from membraneseg.engine.segmentation import predict
from membraneseg.engine.preprocessing import preprocess, recipes


class Pointwise(predict.Predictor):
    """The real predictor with the network replaced by a pointwise function, so the stitched result can be
    compared with the function applied to the whole slice: any seam or offset would show."""

    def predict_batch(self, patches):
        return (1.0 / (1.0 + np.exp(-patches)))[..., None].astype(np.float32)


def _volume(tmp_path, shape=(6, 150, 170), voxel=10.0, name="v.mrc"):
    data = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    path = str(tmp_path / name)
    io.write(path, data, voxel)
    return path, data


@pytest.mark.parametrize("single_window_max", [0, None], ids=["overlapping-windows", "one-window"])
def test_stitching_has_no_seams(tmp_path, tiny_model, single_window_max):
    path, data = _volume(tmp_path)
    p = Pointwise(tiny_model, batch_size=4, single_window_max=single_window_max)
    assert p.window_for((150, 170)) == (96 if single_window_max == 0 else 192)
    mask_path, prob_path = p.segment_file(path, str(tmp_path / "out"), overlap=0.25, progress=False)
    prob = np.asarray(io.read(prob_path).data)
    stats = preprocess.robust_stats(data)
    expected = 1.0 / (1.0 + np.exp(-preprocess.normalize(data, stats)))
    np.testing.assert_allclose(prob, expected, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(io.read(mask_path).data) > 0, prob >= 0.5)


def test_resampling_to_model_pixel_size_and_back(tmp_path, tiny_model):
    # a 5 Å tomogram is halved for the 10 Å model and the result brought back to the input's grid and header
    path, data = _volume(tmp_path, shape=(3, 200, 180), voxel=5.0)
    p = Pointwise(tiny_model, batch_size=8)
    mask_path, prob_path = p.segment_file(path, str(tmp_path / "out"), progress=False)
    prob = io.read(prob_path)
    assert prob.data.shape == data.shape and prob.voxel_size == pytest.approx(5.0)
    assert io.read(mask_path).voxel_size == pytest.approx(5.0)


def test_coarse_inputs_are_not_upsampled_unless_asked_and_a_large_upsampling_is_said(tmp_path, tiny_model, caplog):
    path, _ = _volume(tmp_path, shape=(2, 40, 40), voxel=40.0)
    caplog.set_level("INFO")
    assert Pointwise(tiny_model).working_pixel_size(40.0) == 40.0          # default: never upsampled
    assert Pointwise(tiny_model).working_pixel_size(5.0) == 10.0           # finer: brought down to the model's
    Pointwise(tiny_model, batch_size=8).segment_file(path, str(tmp_path / "out"), progress=False)
    assert "segmented at 40.00 Å/px" in caplog.text and "resampled" not in caplog.text
    caplog.clear()
    up = Pointwise(tiny_model, batch_size=8, max_upsampling=8)
    assert up.working_pixel_size(40.0) == 10.0 and Pointwise(tiny_model, max_upsampling=2).working_pixel_size(
        40.0) == 20.0
    up.segment_file(path, str(tmp_path / "up"), progress=False)
    assert "resampled 4.00x to the model's 10.00 Å/px" in caplog.text
    assert io.read(str(tmp_path / "up" / "v_prob.mrc")).data.shape == (2, 40, 40)
    with pytest.raises(ValueError, match="upsampling"):
        Pointwise(tiny_model, max_upsampling=0.5)
    # a model trained on coarse tomograms upsampled to its pixel size says so, and is given them the same way
    from membraneseg.engine.network import modelfile
    folder = str(tmp_path / "upsampling-model")
    model, card = modelfile.load(tiny_model)
    modelfile.save(model, modelfile.ModelCard(**dict(card.to_dict(), max_upsampling=4.0)), folder)
    assert Pointwise(folder).working_pixel_size(40.0) == 10.0
    assert Pointwise(folder, max_upsampling=1).working_pixel_size(40.0) == 40.0
    assert modelfile.read_card(tiny_model).max_upsampling is None
    caplog.clear()
    near, _ = _volume(tmp_path, shape=(2, 40, 40), voxel=13.7)
    Pointwise(tiny_model, batch_size=8).segment_file(near, str(tmp_path / "out2"), progress=False)
    assert "resampled" not in caplog.text


def test_real_network_on_volume_and_2d_image(tmp_path, tiny_model):
    path, data = _volume(tmp_path, shape=(4, 100, 120))
    p = predict.Predictor(tiny_model, batch_size=4)
    mask_path, prob_path = p.segment_file(path, str(tmp_path / "out"), progress=False)
    assert mask_path.endswith("v_mask.mrc") and prob_path.endswith("v_prob.mrc")
    prob = io.read(prob_path)
    assert prob.data.shape == data.shape and 0 <= float(prob.data.min()) <= float(prob.data.max()) <= 1
    img = (np.random.default_rng(2).random((130, 140)) * 255).astype(np.uint8)
    img_path = str(tmp_path / "slice.png")
    io.write(img_path, img)
    mask_path, prob_path = p.segment_file(img_path, str(tmp_path / "out"), threshold=0.3, pixel_size=10.0,
                                          progress=False)
    assert mask_path.endswith("slice_mask.tif") and prob_path.endswith("slice_prob.tif")
    m, pr = io.read(mask_path), io.read(prob_path)
    assert m.is_2d and m.data.shape == (1, 130, 140)
    np.testing.assert_array_equal(np.asarray(m.data) > 0, np.asarray(pr.data) >= 0.3)


def test_two_and_a_half_d_model_on_volume_and_image(tmp_path):
    """Trained on 96 px patches, run in one 128 px window: the network built for the window lists its fused-skip
    convs in another order, so weights must be copied by layer name (copied in order, they did not fit)."""
    folder = str(tmp_path / "m25")
    spec = net.NetworkSpec.from_preset("tiny", context=3)
    modelfile.save(net.build(spec, patch=96), modelfile.ModelCard(network=spec.to_dict(), pixel_size=10.0,
                                                                  patch=96), folder)
    p = predict.Predictor(folder, batch_size=2)
    path, data = _volume(tmp_path, shape=(5, 70, 80))
    _, prob_path = p.segment_file(path, str(tmp_path / "out"), progress=False)
    assert io.read(prob_path).data.shape == data.shape
    assert p.window_for(data.shape[1:]) == 128
    x = np.random.default_rng(4).normal(size=(1, 3, 128, 128, 1)).astype(np.float32)
    loaded, _ = modelfile.load(folder, patch=128)       # Keras reads the weights file by layer name
    np.testing.assert_allclose(p._forward(128)(x).numpy(), loaded(x).numpy(), rtol=1e-4, atol=1e-5)
    img_path = str(tmp_path / "s.tif")
    io.write(img_path, data[0])
    _, prob_path = p.segment_file(img_path, str(tmp_path / "out"), progress=False)
    assert io.read(prob_path).data.shape == (1, 70, 80)


def _what_the_network_sees(tmp_path, data, pixel_size, context, context_step=1, **card):
    """Segment ``data`` (at ``pixel_size`` Å) with a fresh tiny 10 Å model of ``context`` slices; returns, per
    slice given to the network, the value at one pixel of each of its context slices."""
    folder = str(tmp_path / ("m%d" % context))
    spec = net.NetworkSpec.from_preset("tiny", context=context, context_step=context_step)
    modelfile.save(net.build(spec, patch=64), modelfile.ModelCard(network=spec.to_dict(), pixel_size=10.0, patch=64,
                                                                  **card), folder)
    path = str(tmp_path / "v.mrc")
    io.write(path, data, pixel_size)
    p = predict.Predictor(folder, batch_size=1)
    seen, forward = [], p.predict_batch
    p.predict_batch = lambda patches: seen.append(patches[..., 5, 5].reshape(len(patches), -1)) or forward(patches)
    p.segment_file(path, str(tmp_path / "out"), progress=False)
    return np.concatenate(seen)


def test_a_coarse_volume_gives_a_two_and_a_half_d_model_interpolated_neighbours(tmp_path):
    """A 20 Å volume upsampled to a 10 Å model: each slice's z-neighbours lie half a slice away, for every slice
    (rounded positions gave even slices no context at all)."""
    data = np.repeat(np.arange(6, dtype=np.float32)[:, None, None], 32, 1).repeat(32, 2)   # slice value = z
    centres = _what_the_network_sees(tmp_path, data, 20.0, 3, max_upsampling=2.0)
    step = np.median(np.diff(np.unique(centres[:, 1])))  # between whole slices
    assert len(centres) == 6
    np.testing.assert_allclose(np.abs(centres[:, 0] - centres[:, 1]), step / 2, rtol=1e-4)
    np.testing.assert_allclose(np.abs(centres[:, 2] - centres[:, 1]), step / 2, rtol=1e-4)


def test_a_model_with_a_context_step_sees_neighbours_that_many_slices_away(tmp_path):
    data = np.repeat(np.arange(24, dtype=np.float32)[:, None, None], 32, 1).repeat(32, 2)   # slice value = z
    seen = _what_the_network_sees(tmp_path, data, 10.0, 3, context_step=4)
    one = np.median(np.diff(seen[:, 1]))                     # one slice, in the normalised values
    z = np.rint((seen[:, 1] - seen[0, 1]) / one).astype(int)
    assert list(z) == list(range(24))
    expected = [[abs(i - 4) if i < 4 else i - 4, i, i + 4 if i + 4 < 24 else 2 * 23 - i - 4] for i in z]
    np.testing.assert_allclose((seen - seen[0, 1]) / one, expected, atol=1e-3)


def test_a_fine_volume_is_averaged_over_the_model_voxel_depth(tmp_path):
    """A 5 Å volume for a 10 Å model: each slice the network sees is the mean over the 10 Å around it, as binning
    gives it, not one 5 Å slice (which carries several times the noise). Slices alternating +1 / -1 average out."""
    data = np.repeat(np.where(np.arange(8) % 2, 1.0, -1.0).astype(np.float32)[:, None, None], 64, 1).repeat(64, 2)
    seen = _what_the_network_sees(tmp_path, data, 5.0, 1)
    assert len(seen) == 8 and np.ptp(seen) < 1e-5


@pytest.mark.parametrize("content,message", [("constant", "same value"), ("nan", "no finite voxel")])
def test_unusable_volumes_are_refused_before_any_output(tmp_path, tiny_model, content, message):
    data = np.full((3, 64, 64), 5.0, np.float32) if content == "constant" else np.full((3, 64, 64), np.nan,
                                                                                         np.float32)
    path = str(tmp_path / "bad.mrc")
    io.write(path, data, 10)
    out = tmp_path / "out"
    with pytest.raises(io.InputError, match=message):
        predict.Predictor(tiny_model).segment_file(path, str(out), progress=False)
    assert not out.exists() or os.listdir(out) == []


def test_model_checksum_is_checked(tmp_path, tiny_model):
    import shutil
    copy = str(tmp_path / "copy")
    shutil.copytree(tiny_model, copy)
    with open(os.path.join(copy, modelfile.MODEL_WEIGHTS), "r+b") as f:
        f.seek(-10, 2)
        f.write(b"corrupted!")
    with pytest.raises(modelfile.ModelError, match="checksum mismatch"):
        modelfile.load(copy)
    with pytest.raises(modelfile.ModelError, match="folder not found"):
        modelfile.load(str(tmp_path / "nowhere"))


def test_model_preprocessing_recipe_is_applied_at_prediction(tmp_path):
    """A model trained on CLAHE'd input gets CLAHE'd input: the stitched pointwise output equals the function of
    the preprocessed volume, and no temporary file is left behind."""
    folder = str(tmp_path / "mclahe")
    spec = net.NetworkSpec.from_preset("tiny")
    recipe = {"normalize": "robust", "clahe": {"block": 32, "clip": 3.0}}
    modelfile.save(net.build(spec, patch=96), modelfile.ModelCard(network=spec.to_dict(), pixel_size=10.0,
                                                                  patch=96, preprocessing=recipe), folder)
    path, data = _volume(tmp_path, shape=(3, 120, 130))
    out = tmp_path / "out"
    _, prob_path = Pointwise(folder, batch_size=4).segment_file(path, str(out), progress=False)
    ref = str(tmp_path / "ref.mrc")
    recipes.apply_recipe(path, ref, recipe, pixel_size=10.0)
    pre = np.asarray(io.read(ref).data, np.float32)
    expected = 1.0 / (1.0 + np.exp(-preprocess.normalize(pre, preprocess.robust_stats(pre))))
    np.testing.assert_allclose(np.asarray(io.read(prob_path).data), expected, atol=1e-5)
    assert sorted(os.listdir(out)) == ["v_mask.mrc", "v_prob.mrc"]
    # in memory (scripts, benchmarks, the recipe's scoring), the same recipe is applied: the same probabilities
    prob, _ = Pointwise(folder, batch_size=4).predict_array(data, 10.0)
    np.testing.assert_allclose(prob, expected, atol=1e-5)


def test_windows_and_batches():
    p = predict.Predictor.__new__(predict.Predictor)       # only the sizing rules, no model
    p.patch, p.batch_size, p.single_window_max = 224, 8, 512
    assert p.window_for((256, 256)) == 256                  # the 2D slices the recipes score: one window
    assert p.window_for((100, 30)) == 128 and p.window_for((10, 10)) == 64
    assert p.window_for((512, 500)) == 512
    assert p.window_for((513, 300)) == 224                  # wider: overlapping windows of the training patch
    assert p.batch_for(224) == 8 and p.batch_for(512) == 1 and p.batch_for(128) == 24


def test_inference_rewrites_keep_the_output():
    """Dilated convs folded on a small bottleneck and spatial-attention convs run as depthwise convs must not
    change the network's output."""
    import keras
    spec = net.NetworkSpec.from_preset("tiny")
    a, b = net.build(spec, patch=128), net.build(spec, patch=128)
    b.set_weights(a.get_weights())
    inference.optimise_for_inference(b)
    assert all(max(layer.dilation_rate) == 1 for layer in b.layers if isinstance(layer, keras.layers.Conv2D))
    x = np.random.default_rng(3).normal(size=(2, 128, 128, 1)).astype(np.float32)
    np.testing.assert_allclose(b(x, training=False), a(x, training=False), atol=1e-5)


def test_one_window_matches_overlapping_windows_and_bf16_stays_close(tiny_model):
    """A 2D slice through one padded window gives about what the overlapping windows give (the network sees
    more context, so not exactly); bf16 arithmetic stays close to fp32."""
    image = np.random.default_rng(4).normal(size=(150, 170)).astype(np.float32)
    tiled, _ = predict.Predictor(tiny_model, single_window_max=0).predict_array(image, 10.0)
    whole, mask = predict.Predictor(tiny_model).predict_array(image, 10.0)
    bf16, _ = predict.Predictor(tiny_model, precision="bf16").predict_array(image, 10.0)
    assert whole.shape == mask.shape == (1, 150, 170)
    assert np.abs(whole - tiled).mean() < 0.05
    assert np.abs(bf16 - whole).max() < 0.05
    with pytest.raises(ValueError, match="precision"):
        predict.Predictor(tiny_model, precision="fp8")


def test_cli_quality_mode_in_bf16(tmp_path, tiny_model):
    from membraneseg.engine import cli
    path, _ = _volume(tmp_path, shape=(2, 120, 100))
    assert cli.main(["segment", path, "-o", str(tmp_path / "out"), "--model", tiny_model, "--mode", "quality",
                     "--precision", "bf16"]) == 0
    assert io.read(str(tmp_path / "out" / "v_prob.mrc")).data.shape == (2, 120, 100)
