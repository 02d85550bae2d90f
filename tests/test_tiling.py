"""Patch grids, blending windows and 2.5D context indices."""
import numpy as np
import pytest

from membraneseg.engine.core import tiling


@pytest.mark.parametrize("length,patch,overlap", [(224, 224, 0.25), (500, 224, 0.25), (1024, 224, 0.5),
                                                  (225, 224, 0.125)])
def test_patches_cover_with_requested_overlap(length, patch, overlap):
    s = tiling.starts(length, patch, overlap)
    assert s[0] == 0 and s[-1] + patch == length
    steps = np.diff(s)
    assert np.all(steps <= patch * (1 - overlap) + 1)


def test_window_is_smooth_and_positive():
    w = tiling.window(224)
    assert w.min() > 0 and w.max() <= 1
    assert w[112, 112] > 0.99 and w[0, 0] < 0.01


def test_blending_constant_predictions_is_exact():
    shape, patch = (300, 410), 96
    acc = np.zeros(shape)
    wsum = np.zeros(shape)
    w = tiling.window(patch)
    for r, c in tiling.grid(shape, patch, 0.25):
        acc[r:r + patch, c:c + patch] += 0.7 * w
        wsum[r:r + patch, c:c + patch] += w
    np.testing.assert_allclose(acc / wsum, 0.7, rtol=1e-6)


def _positions(z, depth, k, spacing=1.0, step=1):
    """Where each z-neighbour lies, read off slices whose value is their index."""
    return tiling.blend_slices(float, tiling.context_slices(z, depth, k, spacing, step))


def test_context_slices_mirror_at_the_ends():
    assert _positions(0, 10, 5) == [2, 1, 0, 1, 2]
    assert _positions(9, 10, 5) == [7, 8, 9, 8, 7]
    assert _positions(5, 10, 3, spacing=2.0) == [3, 5, 7]
    assert _positions(0, 1, 5) == [0] * 5     # a 2D image: missing context, slice repeated


@pytest.mark.parametrize("z", [3, 4])
def test_fractional_spacing_interpolates_neighbours_for_every_slice(z):
    # a 20 Å volume for a 10 Å model: neighbours half a slice away, for even and odd slices alike (rounding
    # gave even slices no context and odd ones neighbours a whole slice away)
    assert _positions(z, 10, 3, spacing=0.5) == pytest.approx([z - 0.5, z, z + 0.5])
    assert _positions(0, 10, 3, spacing=0.5) == pytest.approx([0.5, 0, 0.5])
    assert _positions(9, 10, 5, spacing=0.75) == pytest.approx([7.5, 8.25, 9, 8.25, 7.5])
    assert all(len(terms) == 1 for terms in tiling.context_slices(5, 10, 3))        # whole slices: no blending


def test_a_model_voxel_deeper_than_the_input_slices_averages_them():
    # a 5 Å volume for a 10 Å model: each model slice is the mean over the 10 Å it spans, as binning gives it
    assert tiling.context_slices(5, 10, 1, spacing=2.0) == [((4, 0.25), (5, 0.5), (6, 0.25))]
    assert tiling.context_slices(0, 10, 1, spacing=2.0) == [((0, 0.5), (1, 0.5))]        # mirrored at the end
    three = tiling.context_slices(7, 20, 3, spacing=4.0)       # 2.5 Å: 4 slices deep, neighbours 4 apart
    assert [sum(w for _, w in terms) for terms in three] == pytest.approx([1, 1, 1])
    assert _positions(7, 20, 3, spacing=4.0) == pytest.approx([3, 7, 11])
    assert [i for i, _ in three[1]] == [5, 6, 7, 8, 9]


def test_a_context_step_puts_the_neighbours_that_many_model_voxels_away_each_one_voxel_deep():
    assert _positions(20, 40, 3, step=8) == [12, 20, 28]
    assert _positions(3, 40, 3, step=8) == [5, 3, 11]                      # mirrored at the start
    assert _positions(20, 40, 5, spacing=0.5, step=8) == pytest.approx([12, 16, 20, 24, 28])   # a coarse input
    deep = tiling.context_slices(20, 60, 3, spacing=2.0, step=4)            # a 5 Å input: 2 slices per voxel
    assert [[i for i, _ in terms] for terms in deep] == [[11, 12, 13], [19, 20, 21], [27, 28, 29]]
    assert [sum(w for _, w in terms) for terms in deep] == pytest.approx([1, 1, 1])


def test_pad_to_reaches_patch_size():
    img = np.arange(50 * 60, dtype=np.float32).reshape(50, 60)
    out = tiling.pad_to(img, tiling.padded_shape(img.shape, 224))
    assert out.shape == (224, 224)
    np.testing.assert_array_equal(out[:50, :60], img)


def test_reflected_crop_mirrors_the_image_beyond_its_edges():
    a = np.arange(35, dtype=np.float32).reshape(5, 7)
    # however far outside: the same as numpy's 'reflect' padding (the edge row is not repeated)
    padded = np.pad(a, 20, mode="reflect")
    for r0, c0, size in ((-3, -4, 12), (2, 5, 9), (-20, -20, 40)):
        np.testing.assert_array_equal(tiling.crop(a, r0, c0, size, reflect=True),
                                      padded[r0 + 20:r0 + 20 + size, c0 + 20:c0 + 20 + size])
    np.testing.assert_array_equal(tiling.crop(a[:1], -2, 0, 3, reflect=True), a[[0, 0, 0], :3])   # one row
