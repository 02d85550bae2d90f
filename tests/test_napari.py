"""The overlay viewer's napari path for real: a tomogram with its mask and probability map opened in napari on a
virtual screen (xvfb-run), a screenshot taken, and the layers checked. Skips, saying why, where napari (the
``viewer`` extra: ``pip install .[viewer]``) or xvfb-run is missing."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from membraneseg.engine.core import io

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("napari") is None,
                       reason="napari is not installed (pip install .[viewer])"),
    pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed (Debian: xvfb)"),
]

SCRIPT = """
import json, sys
from membraneseg.viewers.launch import napari_viewer
items, shot = json.load(open(sys.argv[1])), sys.argv[2]
viewer = napari_viewer(items, show=True)
viewer.screenshot(shot, canvas_only=True)
print(json.dumps([dict(name=l.name, kind=type(l).__name__, visible=bool(l.visible), shape=list(l.data.shape))
                  for l in viewer.layers]))
viewer.close()
"""


def test_napari_opens_tomogram_mask_and_probability_map(tmp_path):
    shape = (8, 64, 64)
    z, y, x = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    ring = np.abs(np.hypot(y - 32, x - 32) - 16) <= 1.5
    tomo = np.random.default_rng(0).normal(size=shape).astype(np.float32) - 3 * ring
    paths = {k: str(tmp_path / ("t%s.mrc" % s)) for k, s in (("tomo", ""), ("mask", "_mask"), ("prob", "_prob"))}
    io.write(paths["tomo"], tomo, 10.0)
    io.write(paths["mask"], ring.astype(np.int8), 10.0)
    io.write(paths["prob"], 0.9 * ring.astype(np.float32) + 0.05, 10.0)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps([dict(tsId="t", kind="binary", **paths)]))
    shot = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="xcb")
    out = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", sys.executable, "-c", SCRIPT,
                          str(manifest), str(shot)], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    layers = json.loads(out.stdout.strip().splitlines()[-1])
    assert [(l["name"], l["kind"]) for l in layers] == [("t", "Image"), ("t mask", "Labels"),
                                                         ("t probability", "Image")]
    assert all(l["visible"] and l["shape"] == list(shape) for l in layers)
    import cv2
    picture = cv2.imread(str(shot))
    assert picture is not None and picture.shape[0] > 100
    assert picture.std() > 5                                  # not a blank canvas
    b, g, r = (picture[..., i].astype(int) for i in range(3))
    assert np.mean((b > g + 60) & (r > g + 60)) > 0.005       # the ring, drawn in magenta
