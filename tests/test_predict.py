"""Segmentation of volumes and 2D images: outputs, headers, resampling, stitching, refusals."""
import os

import numpy as np
import pytest

from membraneseg.engine import io, model as net, modelfile, predict, preprocess, recipes


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny network with random weights, saved as a model folder at 10 Å/px."""
    folder = str(tmp_path_factory.mktemp("model"))
    spec = net.NetworkSpec.from_preset("tiny")
    card = modelfile.ModelCard(network=spec.to_dict(), pixel_size=10.0, patch=96, threshold=0.5)
    modelfile.save(net.build(spec, patch=96), card, folder)
    return folder


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


def test_stitching_has_no_seams(tmp_path, tiny_model):
    path, data = _volume(tmp_path)
    p = Pointwise(tiny_model, batch_size=4)
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
    folder = str(tmp_path / "m25")
    spec = net.NetworkSpec.from_preset("tiny", context=3)
    modelfile.save(net.build(spec, patch=64), modelfile.ModelCard(network=spec.to_dict(), pixel_size=10.0,
                                                                  patch=64), folder)
    p = predict.Predictor(folder, batch_size=2)
    path, data = _volume(tmp_path, shape=(5, 70, 80))
    _, prob_path = p.segment_file(path, str(tmp_path / "out"), progress=False)
    assert io.read(prob_path).data.shape == data.shape
    img_path = str(tmp_path / "s.tif")
    io.write(img_path, data[0])
    _, prob_path = p.segment_file(img_path, str(tmp_path / "out"), progress=False)
    assert io.read(prob_path).data.shape == (1, 70, 80)


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
