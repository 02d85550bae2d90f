"""Partial annotations: label values that mean "not annotated" and tomograms annotated on some slices only never
reach the loss or the validation figures, and 8-bit label maps read as written."""
import numpy as np
import pytest

from membraneseg.engine.core import io
from membraneseg.engine.simulation import phantoms
from membraneseg.engine.training import data, loop, losses, patches
from membraneseg.engine.training.config import TrainConfig


@pytest.mark.parametrize("name", ["bce", "dice", "focal", "bce+dice", "bce+dice+tolerant"])
@pytest.mark.parametrize("classes", [1, 3])
def test_unannotated_voxels_never_reach_the_loss(name, classes):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes + 1 if classes > 1 else 2, (2, 32, 32)).astype(np.uint8)
    labels[:, :, 16:] = data.IGNORE                                  # the right half is not annotated
    y = np.stack([patches._target(lab, classes, weighted=True) for lab in labels])
    p = rng.uniform(0.05, 0.95, (2, 32, 32, classes)).astype(np.float32)
    if classes > 1:
        p /= p.sum(-1, keepdims=True)
    other = p.copy()
    other[:, :, 16:] = other[:, :, 16:][..., ::-1]                 # change the predictions where nothing is known
    loss = losses.make_loss(name, classes)
    assert float(loss(y, p)) == pytest.approx(float(loss(y, other)), rel=1e-5, abs=1e-6)
    # annotated everywhere, the weighted loss is the plain one
    full = np.stack([patches._target(lab, classes) for lab in np.where(labels == data.IGNORE, 0, labels)])
    ones = np.concatenate([full, np.ones(full.shape[:-1] + (1,), np.float32)], -1)
    assert float(loss(ones, p)) == pytest.approx(float(loss(full, p)), rel=1e-4, abs=1e-5)


def test_ignore_label_keeps_membrane_background_and_unknown_apart():
    config = TrainConfig(ignore_labels=[2], membrane_labels=[1, 2])     # MemBrain-seg: 0, 1 membrane, 2 ignore
    labels = np.array([[[0, 1, 2, 1]]], np.uint8)
    s = data._resample(np.zeros((1, 1, 4), np.float32), labels, 10.0, config, "x", True)
    np.testing.assert_array_equal(s.labels, [[[0, 1, data.IGNORE, 1]]])
    np.testing.assert_array_equal(patches._target(s.labels[0], 1, weighted=True)[..., 1], [[1, 1, 0, 1]])


def test_label_bytes_of_255_in_mrc_mode_0_mean_255(tmp_path):
    """Tools that write unsigned bytes as MRC mode 0 (napari's exports, older IMOD) store "not annotated" 255 as the
    byte 0xFF, which mode 0's signed reading gives as -1: such a map trains with --ignore-label 255 instead of
    being refused."""
    import mrcfile
    path = str(tmp_path / "labels.mrc")
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.array([[[0, 1, 255, 1]]], np.uint8).view(np.int8))    # mode 0, bytes 0 1 255 1
    raw = np.asarray(io.read(path).data)
    assert raw.dtype == np.int8 and raw.min() == -1
    labels = data._checked_labels(raw, TrainConfig(ignore_labels=[255]), path)
    np.testing.assert_array_equal(labels, [[[0, 1, 255, 1]]])


def test_partial_annotations_train_and_validate_on_annotated_voxels_only(tmp_path):
    from membraneseg.engine.simulation import phantoms
    tomo, labels = phantoms.simple_phantom((12, 96, 96), 10.0, seed=3)
    partial = np.full(labels.shape, 2, np.uint8)                     # 2: not annotated
    partial[[3, 6, 9]] = labels[[3, 6, 9]]                           # three annotated slices
    io.write(str(tmp_path / "t.mrc"), tomo, 10.0)
    io.write(str(tmp_path / "l.mrc"), partial, 10.0)
    config = TrainConfig(preset="tiny", patch=64, epochs=1, steps_per_epoch=2, batch_size=2, ignore_labels=[2],
                         membrane_labels=[1], max_upsampling=2.0)
    s = data.load_volume_pair(str(tmp_path / "t.mrc"), str(tmp_path / "l.mrc"), config)
    assert (s.labels != data.IGNORE).sum() == 3 * 96 * 96
    sampler = patches.PatchSampler([s], config, 0)
    for _ in range(10):                                              # patches are centred on annotated slices
        z, _, _ = sampler._centre(s, 96)
        assert z in (3, 6, 9)
    x, y = patches.fixed_patches([s], config)
    assert y.shape[-1] == 2 and 0 < y[..., 1].mean() <= 1
    card = loop.train([s], [s], config, str(tmp_path / "model"))
    assert 0 < card.threshold < 1
    assert card.max_upsampling == 2.0          # the training's rule, for segment to give coarse tomograms the same


def test_annotated_slices_leave_the_other_slices_out(tmp_path):
    from membraneseg.engine.simulation import phantoms
    tomo, labels = phantoms.simple_phantom((10, 64, 64), 10.0, seed=4)
    sparse = np.zeros_like(labels)
    sparse[[2, 7]] = labels[[2, 7]]                                   # painted on two slices, the rest blank
    io.write(str(tmp_path / "t.mrc"), tomo, 10.0)
    io.write(str(tmp_path / "l.mrc"), sparse, 10.0)
    assert data.annotated_slices(sparse, "auto") == [2, 7]
    assert data.annotated_slices(sparse, "7, 2 7") == [2, 7]
    with pytest.raises(io.InputError, match="outside its 10 z-slices"):
        data.annotated_slices(sparse, "3 12")
    with pytest.raises(io.InputError, match="'auto' or z indices"):
        data.annotated_slices(sparse, "some")
    with pytest.raises(io.InputError, match="none counts as annotated"):
        data.annotated_slices(np.zeros_like(sparse), "auto")
    config = TrainConfig(preset="tiny", patch=64, annotated_slices="auto", membrane_labels=[1])
    s = data.load_volume_pair(str(tmp_path / "t.mrc"), str(tmp_path / "l.mrc"), config)
    known = s.labels != data.IGNORE
    assert known[[2, 7]].all() and not known[[0, 1, 3, 4, 5, 6, 8, 9]].any()
    assert loop.annotation_counts([s]) == dict(slices=2, voxels=2 * 64 * 64)
    assert patches.is_partial(config) and not patches.is_partial(TrainConfig())
