"""Training patches: augmentation moves image and labels together, contrast inversion, borders, 2.5D context,
the share of synthetic pairs, and patches centred on the rims of hard negatives."""
import numpy as np
import pytest

from conftest import stack_sample
from membraneseg.engine.core import tiling
from membraneseg.engine.training import augment, data, patches
from membraneseg.engine.training.config import TrainConfig


def test_augmentation_moves_image_and_labels_together():
    rng = np.random.default_rng(0)
    size, patch = 144, 96
    labels = np.zeros((size, size), np.uint8)
    labels[30:60, 20:100] = 1
    labels[80:120, 70:90] = 4
    labels[40:45, 100:140] = 2
    for _ in range(20):
        stack, lab = augment.geometric([labels.astype(np.float32)] * 2, labels, rng, patch)
        assert lab.shape == (patch, patch) and stack[0].shape == (patch, patch)
        assert set(np.unique(lab)) <= {0, 1, 2, 4}                 # nearest: no new label values
        # the image went through the same warp (linear instead of nearest): they agree but at a few edge pixels
        assert np.mean(np.abs(stack[0] - lab) < 0.5) > 0.97
        np.testing.assert_array_equal(stack[0], stack[1])


def test_rot90_turns_some_patches_upright():
    rng = np.random.default_rng(2)
    bar = np.zeros((144, 144), np.uint8)
    bar[62:82, 32:112] = 1                               # a lying bar, 4x wider than tall, at the centre

    def lying(lab):
        rows, cols = np.nonzero(lab)
        return cols.var() > rows.var()
    plain = [lying(augment.geometric([bar.astype(np.float32)], bar, rng, 96)[1]) for _ in range(20)]
    turned = [lying(augment.geometric([bar.astype(np.float32)], bar, rng, 96, rot90=True)[1]) for _ in range(20)]
    assert all(plain)                                    # ±20° never stands it up
    assert 3 <= turned.count(False) <= 17                # 90° and 270° turns do, about half the time


def test_intensity_augmentation_changes_every_slice_alike_and_keeps_the_scale():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(64, 64)).astype(np.float32)
    changed = []
    for _ in range(30):
        a, b = augment.jitter_intensity([base, base.copy()], rng, 1.0)
        assert a.dtype == np.float32 and a.shape == base.shape
        assert np.allclose(a, b, atol=5.0)                          # same contrast/offset/blur; own noise draw
        changed.append(np.mean(np.abs(a - base)))
        assert 0.1 < a.std() < 10                                   # a normalised image stays roughly normalised
    assert min(changed) < max(changed) and max(changed) > 0.1


def test_style_augmentation_changes_every_slice_alike_and_standardises():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(96, 96)).astype(np.float32)
    looks = []
    for _ in range(20):
        a, b = augment.restyle([base, base.copy()], rng, 1.0)
        np.testing.assert_array_equal(a, b)                          # one look per patch, all slices alike
        assert a.dtype == np.float32 and abs(a.mean()) < 1e-4 and abs(a.std() - 1) < 1e-3
        looks.append(np.corrcoef(a.ravel(), base.ravel())[0, 1])
    assert min(looks) > 0 and max(looks) - min(looks) > 0.3      # the same image, in looks that vary


def test_contrast_inversion_negates_patches_with_its_probability_and_keeps_labels():
    config = TrainConfig(patch=64, invert=0.5, intensity=0.0, style=0.0)
    image = np.full((1, 120, 120), 2.0, np.float32) + np.random.default_rng(0).normal(0, 0.1, (1, 120, 120))
    sample = data.Sample(image.astype(np.float32), (image > 2).astype(np.uint8), "bright", True)
    plain = patches.PatchSampler([sample], TrainConfig(patch=64), 0)
    inverted = patches.PatchSampler([sample], TrainConfig(patch=64, invert=1.0), 0)
    x0, y0 = plain.batch(1)
    x1, y1 = inverted.batch(1)
    np.testing.assert_array_equal(y0, y1)
    np.testing.assert_allclose(x1, -x0)              # the same patch, negated: inversion is drawn last
    flips = [float(np.mean(x)) for x in patches.PatchSampler([sample], config, 1).batch(200)[0]]
    signs = np.sign(flips)
    assert 0.35 < np.mean(signs > 0) < 0.65         # about half of the patches bright, half dark


def test_reflect_border_fills_patches_with_mirrored_image_not_smeared_edges():
    """A 2D slice smaller than the region cut around a patch: replicate smears its edge rows into stripes
    (many identical neighbouring columns); reflect mirrors the image and its labels alike."""
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, 64, 64)).astype(np.float32)
    sample = data.Sample(image, (image > 1.5).astype(np.uint8), "small", True)

    def stripes(border):
        config = TrainConfig(patch=96, foreground_bias=0.0, border=border)
        x, y = patches.PatchSampler([sample], config, 0).batch(10)
        same = np.mean([np.mean(np.abs(np.diff(p[..., 0], axis=0)) < 1e-6) for p in x])
        return same, x, y
    smeared, _, _ = stripes("replicate")
    mirrored, x, y = stripes("reflect")
    assert smeared > 0.15 and mirrored < 0.02
    # the labels went through the same mirroring: membrane where the image is bright
    assert np.mean(x[..., 0][y[..., 0] > 0]) > np.mean(x[..., 0]) + 1.0


def _positions(z, depth, k, spacing):
    return tiling.blend_slices(float, tiling.context_slices(z, depth, k, spacing))


def test_2d_samples_get_repeated_context_and_volumes_their_neighbours():
    config = TrainConfig(context=3, patch=96, augment=False, context_dropout=0.0, foreground_bias=0.0)
    flat = patches.PatchSampler([stack_sample(depth=1, is_2d=True)], config, 0).batch(6)[0]
    assert flat.shape == (6, 3, 96, 96, 1)
    np.testing.assert_array_equal(flat[:, 0], flat[:, 1])
    np.testing.assert_array_equal(flat[:, 2], flat[:, 1])
    # a volume at 5 Å with the model at 10 Å: the neighbours are 2 input slices away (mirrored at the ends)
    x = patches.PatchSampler([stack_sample(depth=9, z_spacing=2.0)], config, 0).batch(20)[0]
    # (each slice's value is its index; a model voxel 2 input slices deep is their mean)
    for stack in x[:, :, 0, 0, 0]:
        assert any(list(stack) == pytest.approx(_positions(z, 9, 3, 2.0)) for z in range(9))
    assert np.any(x[:, 2, 0, 0, 0] - x[:, 0, 0, 0, 0] == 4)          # inside the volume: z - 2 and z + 2
    # a 20 Å volume for a 10 Å model: neighbours interpolated half a slice away
    x = patches.PatchSampler([stack_sample(depth=9, z_spacing=0.5)], config, 0).batch(20)[0]
    for z, stack in zip(x[:, 1, 0, 0, 0].astype(int), x[:, :, 0, 0, 0]):
        assert list(stack) == pytest.approx(_positions(z, 9, 3, 0.5))
    assert np.all(x[:, 2, 0, 0, 0] - x[:, 0, 0, 0, 0] <= 1) and np.any(x[:, 2, 0, 0, 0] - x[:, 0, 0, 0, 0] == 1)
    # a context step of 3: neighbours 3 model voxels (here 6 slices of 5 Å) away
    stepped = TrainConfig(**dict(vars(config), context_step=3))
    x = patches.PatchSampler([stack_sample(depth=30, z_spacing=2.0)], stepped, 0).batch(20)[0]
    for stack in x[:, :, 0, 0, 0]:
        assert any(list(stack) == pytest.approx(tiling.blend_slices(float, tiling.context_slices(z, 30, 3, 2.0, 3)))
                   for z in range(30))
    assert np.any(x[:, 2, 0, 0, 0] - x[:, 0, 0, 0, 0] == 12)
    # context dropout 1: tomogram patches look like 2D ones
    dropped = patches.PatchSampler([stack_sample(depth=9)], TrainConfig(**dict(
        vars(config), context_dropout=1.0)), 0).batch(6)[0]
    np.testing.assert_array_equal(dropped[:, 0], dropped[:, 2])


def test_synthetic_pairs_give_their_fraction_of_patches_and_leave_the_real_stream_alone():
    config = TrainConfig(patch=64, augment=False, foreground_bias=0.0, synthetic_fraction=0.3)
    real = data.Sample(np.zeros((1, 96, 96), np.float32), np.zeros((1, 96, 96), np.uint8), "real", True)
    synthetic = [data.Sample(np.ones((1, 80, 80), np.float32), np.ones((1, 80, 80), np.uint8), "syn%d" % i, True,
                              "synthetic") for i in range(50)]
    x, y = patches.PatchSampler([real], config, 0, synthetic).batch(400)
    from_synthetic = x[:, 0, 0, 0] == 1
    np.testing.assert_array_equal(from_synthetic, y[:, 0, 0, 0] == 1)      # image and mask from the same pair
    assert 0.24 < from_synthetic.mean() < 0.36           # 30% whatever their number (50 pairs against 1 image)
    # without synthetic pairs nothing extra is drawn: the patches are those of a sampler that never knew of them
    plain = patches.PatchSampler([stack_sample(depth=4)], TrainConfig(patch=64), 5).batch(4)[0]
    mixed = patches.PatchSampler([stack_sample(depth=4)], TrainConfig(patch=64, synthetic_fraction=0.3), 5,
                               ()).batch(4)[0]
    np.testing.assert_array_equal(plain, mixed)


def test_patches_centre_on_the_rims_of_hard_negatives_when_asked():
    # a volume with a membrane strip (label 1) and a square of ice contamination (label 6) at rows/columns 60-89
    labels = np.zeros((3, 120, 120), np.uint8)
    labels[:, 60:90, 60:90] = 6
    labels[:, 10:14, 10:40] = 1
    image = np.zeros((3, 120, 120), np.float32)
    image[labels == 6] = 1.0
    config = TrainConfig(patch=8, augment=False, hard_negative_labels=[5, 6], hard_negative_bias=1.0)
    sample = data._resample(image, labels, 10.0, config, "ice", False)
    rims = sample.hard_rims
    inside = rims[:, 1:].min(axis=1) >= 60
    assert len(rims) == 3 * 4 * 29 and inside.all() and np.isin(rims[:, 1:], [60, 89]).any(axis=1).all()
    assert set(np.unique(sample.labels)) == {0, 1}        # the binary model's labels still collapse
    x, y = patches.PatchSampler([sample], config, 0).batch(50)
    # every patch is centred on the square's edge: it holds both the ice (1) and what lies outside it (0)
    assert all(0 < p.mean() < 1 for p in x[..., 0]) and not y.any()
    # off (the default), nothing more is drawn: the same patches as a sampler that never heard of rims
    off = TrainConfig(patch=8, augment=False)
    plain = patches.PatchSampler([data._resample(image, labels, 10.0, off, "ice", False)], off, 3).batch(20)[0]
    named = TrainConfig(patch=8, augment=False, hard_negative_labels=[6])
    ignored = patches.PatchSampler([data._resample(image, labels, 10.0, named, "ice", False)], named, 3).batch(20)[0]
    np.testing.assert_array_equal(plain, ignored)
