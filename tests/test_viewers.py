"""The viewers' pictures, headless: overlays must show the mask (pixels under it change, others do not), and the
training and evaluation plots must be drawn. Also the slice viewer's window logic and the non-blocking launcher."""
import json
import os
import time

import numpy as np
import pytest
from matplotlib import image

from membraneseg.engine.measurement import evaluate
from membraneseg.engine.core import io
from membraneseg.viewers import launch, render

HERE = os.path.dirname(os.path.abspath(__file__))
HISTORY = os.path.join(HERE, "..", "membraneseg", "weights", "default", "training_history.json")


@pytest.fixture
def volumes(tmp_path):
    """A 6x40x50 tomogram (a ramp with noise), a binary mask, a probability map and a two-label map."""
    rng = np.random.default_rng(0)
    tomo = (np.linspace(-1, 1, 50)[None, None, :] + 0.2 * rng.normal(size=(6, 40, 50))).astype(np.float32)
    mask = np.zeros((6, 40, 50), np.uint8)
    mask[:, 10:14, 5:45] = 1
    prob = np.where(mask > 0, 0.9, 0.0).astype(np.float32)
    labels = mask.copy()
    labels[:, 10:14, 25:45] = 2
    paths = {}
    for name, data in (("tomo", tomo), ("mask", mask), ("prob", prob), ("labels", labels)):
        paths[name] = str(tmp_path / (name + ".mrc"))
        io.write(paths[name], data, 10.0)
    return paths, mask


def read_png(path):
    return np.rint(image.imread(path)[..., :3] * 255).astype(int)


@pytest.mark.parametrize("kind", ["mask", "prob", "labels"])
def test_overlay_png_changes_exactly_the_pixels_under_the_mask(volumes, tmp_path, kind):
    paths, mask = volumes
    over = render.overlay_png(paths["tomo"], paths[kind], str(tmp_path / "over.png"), z=3)
    bare = render.overlay_png(paths["tomo"], paths[kind], str(tmp_path / "bare.png"), z=3, alpha=0.0)
    over, bare = read_png(over), read_png(bare)
    assert over.shape == bare.shape == (40, 50, 3)             # one PNG pixel per voxel
    under = mask[3] > 0
    changed = np.any(over != bare, axis=2)
    assert changed[under].mean() > 0.95                        # the overlay is there
    assert not changed[~under].any()                           # and nowhere else
    assert bare.std() > 20                                     # the slice itself is visible, not blank
    if kind == "labels":                                       # two membranes, two colours: undo the 50% blend
        for x, label in ((10, 1), (40, 2)):
            colour = 2 * over[12, x] - bare[12, x]
            assert np.abs(colour - render.LABEL_COLOURS[label - 1]).max() <= 2


def test_overlay_refuses_a_mask_of_another_size(volumes, tmp_path):
    paths, mask = volumes
    small = str(tmp_path / "small.mrc")
    io.write(small, mask[:3], 10.0)
    with pytest.raises(io.InputError, match="differs from its tomogram"):
        render.overlay_png(paths["tomo"], small, str(tmp_path / "x.png"))


def test_training_curves_png_from_a_real_history(tmp_path):
    path = render.training_curves_png(HISTORY, str(tmp_path / "curves.png"))
    png = read_png(path)
    assert png.shape[:2] == (400, 1000) and png.std() > 10
    with pytest.raises(ValueError, match="no epoch"):
        render.training_curves_png({"epochs": []}, str(tmp_path / "empty.png"))


def test_evaluation_pngs_from_a_report(volumes, tmp_path):
    paths, _ = volumes
    report = evaluate.evaluate([evaluate.Pair("t1", paths["prob"], paths["mask"])])
    out = render.evaluation_pngs(report, str(tmp_path / "plots"))
    assert [os.path.basename(p) for p in out] == ["metrics.png", "pr_curve.png"]
    for p in out:
        assert read_png(p).std() > 10
    masks_only = evaluate.evaluate([evaluate.Pair("t1", paths["mask"], paths["mask"])])
    assert [os.path.basename(p) for p in render.evaluation_pngs(masks_only, str(tmp_path / "m"))] == ["metrics.png"]


def test_slice_viewer_window_logic_without_a_display(volumes):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    paths, mask = volumes
    items = [dict(tsId="a", tomo=paths["tomo"], mask=paths["mask"], kind="binary"),
             dict(tsId="b", tomo=paths["tomo"], mask=paths["prob"], kind="probability")]
    fig = Figure()
    FigureCanvasAgg(fig)
    viewer = launch.SliceViewer(items, fig)
    assert viewer.z == 3 and "a (1 of 2)" in viewer.ax.get_title()
    key = type("Event", (), {})
    for k, expected_z in (("up", 4), ("up", 5), ("up", 5), ("down", 4)):   # clamped at the last slice
        key.key = k
        viewer.on_key(key)
        assert viewer.z == expected_z
    with_overlay = viewer.picture()
    key.key = "o"
    viewer.on_key(key)
    bare = viewer.picture()
    assert np.any(with_overlay != bare, axis=2)[mask[4] > 0].all()
    assert np.array_equal(np.asarray(viewer.image.get_array()), bare)      # what is shown is what is drawn
    key.key = "n"
    viewer.on_key(key)
    assert viewer.index == 1 and "b (2 of 2)" in viewer.ax.get_title()


def test_launcher_returns_at_once_and_writes_pngs(volumes, tmp_path):
    paths, _ = volumes
    manifest = tmp_path / "items.json"
    manifest.write_text(json.dumps([dict(tsId="t1", tomo=paths["tomo"], mask=paths["labels"], kind="labels")]))
    start = time.time()
    proc = launch.launch(["overlay", manifest, "--png", tmp_path / "png"], str(tmp_path / "viewer.log"))
    assert time.time() - start < 1.0                           # the GUI would not wait
    assert proc.wait(timeout=120) == 0, (tmp_path / "viewer.log").read_text()
    assert read_png(str(tmp_path / "png" / "t1_overlay.png")).shape == (40, 50, 3)
    assert launch.main(["curves", HISTORY, "--png", str(tmp_path / "c")]) == 0
    assert os.path.exists(tmp_path / "c" / "training_curves.png")
