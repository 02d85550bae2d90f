"""The Pix2Pix GAN: network shapes, a short training run whose L1 loss falls, the model folder and its checksum,
resuming, generating pairs (deterministic, binary masks, readable by training), mask transforms, and the
``membraneseg gan`` command line. Tiny networks (64 px, 8 filters) keep the file fast."""
import csv
import filecmp
import json
import os
import shutil

import cv2
import numpy as np
import pytest
from scipy import ndimage

from membraneseg.engine import cli
from membraneseg.engine.gan import data as gan_data, generate as gan_generate, pix2pix as gan
from membraneseg.engine.core import io
from membraneseg.engine.simulation import phantoms
from membraneseg.engine.training import data
from membraneseg.engine.training.config import TrainConfig
from membraneseg.engine.network.modelfile import ModelError

SIZE, FILTERS = 64, 8


def _ring_pair(rng, size=96):
    """A mask of three 2-px circles and its image: the circles dark and blurred, in noise."""
    mask = np.zeros((size, size), np.uint8)
    for _ in range(3):
        centre = rng.uniform(10, size - 10, 2).astype(int)
        cv2.circle(mask, (int(centre[0]), int(centre[1])), int(rng.uniform(8, 25)), 1, 2)
    image = -3.0 * cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.5) + rng.normal(0, 0.3, mask.shape)
    return mask, image.astype(np.float32)


def _pairs(n, seed=0):
    rng = np.random.default_rng(seed)
    return [gan_data.GanPair(gan_data.scale_image(image), mask, "ring%d" % i, "rings")
            for i, (mask, image) in enumerate(_ring_pair(rng) for _ in range(n))]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A GAN trained for 4 epochs of 20 steps (about 5 s) on 8 ring pairs."""
    folder = str(tmp_path_factory.mktemp("gan"))
    card = gan.train_gan(_pairs(8), folder, size=SIZE, filters=FILTERS, epochs=4, steps=20, batch_size=4,
                         pixel_size=10.0)
    return folder, card


def test_network_shapes_and_sizes_refused():
    g = gan.build_generator(SIZE, FILTERS)
    d = gan.build_discriminator(SIZE, FILTERS)
    assert g.input_shape == (None, SIZE, SIZE, 1) and g.output_shape == (None, SIZE, SIZE, 1)
    assert d.output_shape == (None, SIZE // 8, SIZE // 8, 1)            # one logit per 70 x 70 px patch
    out = g(np.ones((2, SIZE, SIZE, 1), np.float32), training=False).numpy()
    assert -1 <= out.min() and out.max() <= 1                          # tanh
    assert gan.build_generator(96, 4).output_shape == (None, 96, 96, 1)  # 96 = 6 x 2^4
    for bad in (100, 200, 16):
        with pytest.raises(ValueError, match="GAN size %d px" % bad):
            gan.build_generator(bad, 4)


def test_training_lowers_l1_and_writes_the_model_folder(trained):
    folder, card = trained
    l1 = [row["g_l1"] for row in card.history]
    # measured: g_l1 0.280, 0.258, 0.214, 0.185 over the 4 epochs; last / first 0.64-0.66 for seeds 0-4
    assert len(l1) == 4 and l1[-1] < 0.8 * l1[0]
    with open(os.path.join(folder, gan.GAN_JSON)) as f:
        saved = json.load(f)
    assert saved["kind"] == "membraneseg-pix2pix" and saved["format"] == 1 and saved["epochs_run"] == 4
    assert (saved["size"], saved["filters"], saved["pixel_size"], saved["lambda_l1"]) == (SIZE, FILTERS, 10.0, 100)
    assert set(saved["history"][0]) == {"epoch", "g_adv", "g_l1", "d_loss", "seconds"}
    assert saved["training_pairs"][0] == {"source": "ring0", "group": "rings", "pairs": 1}
    assert saved["scaling"]["clip_sd"] == 3.0
    for name in (gan.G_WEIGHTS, gan.D_WEIGHTS):
        assert os.path.isfile(os.path.join(folder, name))
    for epoch in range(1, 5):   # rows mask | generated | real of 4 crops, with 2-px gaps
        grid = io.read(os.path.join(folder, "samples", "epoch_%03d.png" % epoch)).data[0]
        assert grid.shape == (4 * SIZE + 6, 3 * SIZE + 4)
    generator, loaded = gan.load_generator(folder)
    assert loaded.generator_sha256 == saved["generator_sha256"]


def test_checksum_and_bad_folders_refused(trained, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(trained[0], copy)
    weights = copy / gan.G_WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="%s.*checksum mismatch" % copy):
        gan.load_generator(copy)
    with pytest.raises(ModelError, match="nogan: folder not found"):
        gan.load_generator(tmp_path / "nogan")
    with pytest.raises(ModelError, match="no gan_model.json"):
        gan.load_generator(tmp_path)


def test_rerun_resumes_after_the_last_epoch(tmp_path, caplog):
    pairs, folder = _pairs(4, seed=1), str(tmp_path / "gan")
    first = gan.train_gan(pairs, folder, size=SIZE, filters=FILTERS, epochs=1, steps=2, batch_size=2)
    caplog.set_level("INFO", logger="membraneseg.engine.gan")
    second = gan.train_gan(pairs, folder, size=SIZE, filters=FILTERS, epochs=2, steps=2, batch_size=2)
    assert "after epoch 1" in caplog.text and "epoch 2/2" in caplog.text and "epoch 1/2" not in caplog.text
    assert [r["epoch"] for r in second.history] == [1, 2] and second.history[0] == first.history[0]
    assert second.epochs_run == 2 and os.listdir(os.path.join(folder, gan.CHECKPOINT_DIR)) == ["epoch_002"]
    with pytest.raises(io.InputError, match="checkpoint: holds a GAN training with other settings.*lambda_l1"):
        gan.train_gan(pairs, folder, size=SIZE, filters=FILTERS, epochs=3, steps=2, batch_size=2, lambda_l1=10)


def test_generate_is_deterministic_binary_and_readable_by_training(trained, tmp_path):
    rng = np.random.default_rng(7)
    masks = [(name, m) for name, (m, _) in zip(("a", "b"), (_ring_pair(rng, 120), _ring_pair(rng, 50)))]
    reals = [("real", pair.image) for pair in _pairs(2, seed=3)]
    runs = {}
    for name, seed in (("one", 5), ("two", 5), ("other", 6)):
        runs[name] = tmp_path / name
        gan_generate.generate(trained[0], masks, runs[name], 6, seed=seed, real_images=reals)
    files = sorted(os.listdir(runs["one"] / "images"))
    assert files == ["syn_%05d.png" % i for i in range(6)] and sorted(os.listdir(runs["one"] / "masks")) == files
    for sub in ("images", "masks"):
        assert all(filecmp.cmp(runs["one"] / sub / f, runs["two"] / sub / f, shallow=False) for f in files)
        assert not all(filecmp.cmp(runs["one"] / sub / f, runs["other"] / sub / f, shallow=False) for f in files)
    for f in files:
        mask = io.read(str(runs["one"] / "masks" / f)).data[0]
        assert mask.shape == (SIZE, SIZE) and set(np.unique(mask)) <= {0, 255} and mask.any()
    with open(runs["one"] / "pairs.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {r["source_mask"] for r in rows} == {"a", "b"}
    assert all(r["nearest_real"].startswith("real@") and float(r["nearest_distance"]) > 0 for r in rows)
    assert io.read(str(runs["one"] / "grid.png")).data.shape == (1, 6 * SIZE + 10, 3 * SIZE + 4)
    info = json.loads((runs["one"] / "pairs.json").read_text())
    assert (info["count"], info["seed"], info["pixel_size"]) == (6, 5, 10.0)
    assert info["gan_sha256"] == trained[1].generator_sha256
    assert not os.path.exists(str(runs["one"]) + ".partial")
    sample = data.load_image_pair(str(runs["one"] / "images" / files[0]), str(runs["one"] / "masks" / files[0]),
                                   TrainConfig(pixel_size=10.0))
    np.testing.assert_array_equal(sample.labels[0], io.read(str(runs["one"] / "masks" / files[0])).data[0] > 0)
    with pytest.raises(io.InputError, match="does not hold generated pairs"):    # never overwrite other data
        gan_generate.generate(trained[0], masks, tmp_path, 1)


def test_transform_mask_keeps_a_thin_ring():
    yy, xx = np.mgrid[:96, :96]
    r = np.hypot(yy - 47.5, xx - 47.5)
    ring = ((r >= 30) & (r < 32)).astype(np.uint8)      # 2 px wide
    inner = r < 40                                      # away from the reflected corners
    for seed in range(20):
        m = gan_data.transform_mask(ring, np.random.default_rng(seed), 180, (1.0, 1.0))
        assert m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1}
        assert 0.8 < m[inner].sum() / ring.sum() < 1.6
        assert ndimage.label(m * inner, np.ones((3, 3)))[1] == 1    # still one closed ring
    same = [gan_data.transform_mask(ring, np.random.default_rng(3)) for _ in range(2)]
    np.testing.assert_array_equal(*same)


def test_pairs_from_a_tomogram_and_masks_from_a_label_map(tmp_path):
    tomo, labels = phantoms.simple_phantom((8, 64, 64), 10.0, seed=2)
    labels = labels * np.uint8(2)                       # membrane label 2, as the cell phantoms' vesicles
    io.write(str(tmp_path / "t.mrc"), tomo, 10.0)
    io.write(str(tmp_path / "t_labels.mrc"), labels, 10.0)
    pairs = gan_data.load_volume_pairs(str(tmp_path / "t.mrc"), str(tmp_path / "t_labels.mrc"))
    assert len(pairs) == sum(labels[z].any() for z in range(8)) > 0
    assert all(-1 <= p.image.min() and p.image.max() <= 1 and p.pixel_size == 10.0 for p in pairs)
    half = gan_data.resample(pairs[0], 20.0)
    assert half.image.shape == half.mask.shape == (32, 32) and half.pixel_size == 20.0
    masks = gan_data.load_masks(str(tmp_path / "t_labels.mrc"), (1, 2), stride=2, to_pixel_size=20.0)
    assert masks[0][0].startswith("t_labels.mrc:z") and masks[0][1].shape == (32, 32)
    with pytest.raises(io.InputError, match="t_labels.mrc: no slice has a membrane label"):
        gan_data.load_volume_pairs(str(tmp_path / "t.mrc"), str(tmp_path / "t_labels.mrc"), membrane_labels=(5,))
    io.write(str(tmp_path / "img.png"), np.zeros((40, 40), np.uint8))
    io.write(str(tmp_path / "msk.png"), np.zeros((40, 30), np.uint8))
    with pytest.raises(io.InputError, match="msk.png: mask has shape"):
        gan_data.load_image_pair(str(tmp_path / "img.png"), str(tmp_path / "msk.png"))


def _write_pairs(folder, n=3):
    rng = np.random.default_rng(4)
    for sub in ("images", "masks"):
        os.makedirs(folder / sub)
    for i in range(n):
        mask, image = _ring_pair(rng, 80)
        io.write(str(folder / "images" / ("s%d.png" % i)), gan_data.to_uint8(gan_data.scale_image(image)))
        io.write(str(folder / "masks" / ("s%d.png" % i)), mask * np.uint8(255))


def test_cli_gan_train_and_generate(tmp_path, capsys):
    _write_pairs(tmp_path)
    tomo, labels = phantoms.simple_phantom((4, 64, 64), 10.0, seed=1)
    io.write(str(tmp_path / "t.mrc"), tomo, 10.0)
    io.write(str(tmp_path / "t_labels.mrc"), labels, 10.0)
    model, out = tmp_path / "gan", tmp_path / "syn"
    assert cli.main(["gan", "train", "-o", str(model), "--images", str(tmp_path / "images"), "--masks",
                     str(tmp_path / "masks"), "--volume", str(tmp_path / "t.mrc"), str(tmp_path / "t_labels.mrc"),
                     "--size", str(SIZE), "--filters", str(FILTERS), "--epochs", "1", "--steps", "2",
                     "--batch-size", "2", "--pixel-size", "8"]) == 0
    assert "1 epochs" in capsys.readouterr().out
    card = gan.read_gan_card(model)
    assert card.pixel_size == 8.0 and [p["pairs"] for p in card.training_pairs][-1] == sum(
        labels[z].any() for z in range(4))
    assert cli.main(["gan", "generate", str(model), "-o", str(out), "--masks", str(tmp_path / "masks"),
                     str(tmp_path / "t_labels.mrc"), "-n", "3", "--real-images", str(tmp_path / "images"),
                     "--seed", "1"]) == 0
    assert capsys.readouterr().out.strip() == "%s\t3 pairs" % out
    assert len(os.listdir(out / "images")) == 3 and (out / "grid.png").is_file()


@pytest.mark.parametrize("action,words", [("train", ["Å", "--l1-weight", "--size", "--volume"]),
                                          ("generate", ["Å", "--max-angle", "degrees", "--blur-sigma", "px"])])
def test_cli_gan_help_names_units(action, words, capsys):
    with pytest.raises(SystemExit):
        cli.main(["gan", action, "--help"])
    out = capsys.readouterr().out
    assert all(w in out for w in words)


def test_cli_bad_input_exits_2_naming_the_file(tmp_path):
    _write_pairs(tmp_path)
    err = tmp_path / "err.txt"
    assert cli.main(["gan", "train", "-o", str(tmp_path / "gan"), "--images", str(tmp_path / "images"),
                     "--masks", str(tmp_path / "nomasks"), "--error-file", str(err)]) == 2
    assert err.read_text().strip() == "%s: folder not found" % (tmp_path / "nomasks")
    assert cli.main(["gan", "generate", str(tmp_path / "images"), "-o", str(tmp_path / "out"), "--masks",
                     str(tmp_path / "masks"), "--error-file", str(err)]) == 2
    assert "no gan_model.json" in err.read_text() and not (tmp_path / "out").exists()
