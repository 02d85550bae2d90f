"""MRC and image input/output: shapes, voxel sizes, atomic writes, clear errors."""
import os

import numpy as np
import pytest

from membraneseg.engine.core import io


def test_mrc_roundtrip_keeps_voxel_size_and_is_memory_mapped(tmp_path):
    data = np.random.default_rng(0).normal(size=(5, 6, 7)).astype(np.float32)
    path = str(tmp_path / "v.mrc")
    io.write(path, data, voxel_size=13.7)
    vol = io.read(path)
    assert vol.data.shape == (5, 6, 7) and not vol.is_2d
    assert vol.voxel_size == pytest.approx(13.7)
    assert isinstance(vol.data.base, np.memmap) or isinstance(getattr(vol.data, "base", None), np.ndarray)
    np.testing.assert_array_equal(np.asarray(vol.data), data)


def test_mask_written_as_8bit(tmp_path):
    path = str(tmp_path / "m.mrc")
    io.write(path, np.ones((2, 3, 4), np.uint8), 10)
    vol = io.read(path)
    assert vol.data.dtype.itemsize == 1 and int(vol.data.max()) == 1


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint16, np.float16, np.float32])
def test_mrc_modes_read(tmp_path, dtype):
    path = str(tmp_path / "d.mrc")
    io.write(path, (np.arange(24).reshape(2, 3, 4) % 100).astype(dtype), 5)
    assert io.read(path).data.shape == (2, 3, 4)


def test_2d_images(tmp_path):
    img = (np.arange(64 * 48) % 251).reshape(48, 64).astype(np.uint8)
    for name in ("a.png", "a.tif"):
        path = str(tmp_path / name)
        io.write(path, img)
        vol = io.read(path)
        assert vol.is_2d and vol.data.shape == (1, 48, 64)
        np.testing.assert_array_equal(vol.data[0], img)


def test_rgb_image_becomes_gray_like_opencv(tmp_path):
    import cv2
    rgb = np.random.default_rng(1).integers(0, 255, size=(20, 30, 3), dtype=np.uint8)
    path = str(tmp_path / "rgb.png")
    cv2.imwrite(path, rgb[..., ::-1])
    np.testing.assert_allclose(io.read(path).data[0], cv2.imread(path, 0), atol=1)


def test_errors_name_the_file(tmp_path):
    with pytest.raises(io.InputError, match="file not found"):
        io.read(str(tmp_path / "missing.mrc"))
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    with pytest.raises(io.InputError, match="notes.txt: unsupported file type"):
        io.read(str(bad))
    good = str(tmp_path / "g.mrc")
    io.write(good, np.zeros((8, 16, 16), np.float32), 10)
    truncated = tmp_path / "t.mrc"
    truncated.write_bytes(open(good, "rb").read()[:2000])
    with pytest.raises(io.InputError, match="t.mrc: not a readable MRC file"):
        io.read(str(truncated))
    junk = tmp_path / "junk.mrc"
    junk.write_bytes(b"\0" * 100)
    with pytest.raises(io.InputError, match="junk.mrc"):
        io.read(str(junk))


def test_failed_write_leaves_nothing(tmp_path):
    path = str(tmp_path / "out.mrc")
    with pytest.raises(RuntimeError):
        with io.create_mrc(path, (4, 8, 8), np.float32, 10) as out:
            out[0] = 1
            raise RuntimeError("killed half-way")
    assert os.listdir(tmp_path) == []


def test_file_appears_only_when_complete(tmp_path):
    path = str(tmp_path / "out.mrc")
    with io.create_mrc(path, (4, 8, 8), np.float32, 10) as out:
        out[:] = 2
        assert not os.path.exists(path)
        assert os.path.exists(io.partial_name(path))
    assert os.listdir(tmp_path) == ["out.mrc"]
    vol = io.read(path)
    assert vol.voxel_size == pytest.approx(10) and float(vol.data.mean()) == 2


@pytest.mark.parametrize("header,given,expected", [(10.0, None, 10.0), (0.0, None, 0.0), (1.0, None, 0.0),
                                                  (1.0, 7.0, 7.0), (10.0, 7.0, 7.0)])
def test_pixel_size_resolution(header, given, expected):
    assert io.resolve_pixel_size(header, given) == expected
