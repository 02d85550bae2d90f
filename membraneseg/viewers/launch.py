"""The viewers' windows, run as their own process so the Scipion GUI never waits for them:

    python -m membraneseg.viewers.launch overlay MANIFEST.json [--viewer auto|napari|matplotlib] [--png DIR]
    python -m membraneseg.viewers.launch curves training_history.json [--png DIR]
    python -m membraneseg.viewers.launch evaluation evaluation.json [--png DIR]
    python -m membraneseg.viewers.launch pictures PNG... [--png DIR]

An overlay MANIFEST is a JSON list of {"tsId", "tomo", "mask", "kind"} and optionally "prob" (the probability map
beside a mask). ``--png DIR`` writes the pictures instead of
opening windows (for headless use and tests). The overlay opens napari (image and labels layers) where it is
installed, else a matplotlib slice viewer.
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np

from ..engine.core import io
from . import render


def launch(args, log_path=None):
    """Start this module with ``args`` in a new process and return at once (the Popen object); its output goes
    to ``log_path`` when given."""
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen([sys.executable, "-m", __name__] + [str(a) for a in args], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        if log_path:
            out.close()   # the child has its own copy


def napari_available():
    return importlib.util.find_spec("napari") is not None


# ----------------------------------------------------------------------------- overlay windows
class SliceViewer:
    """A matplotlib window showing one tomogram at a time with its mask on top. Slider or Up/Down keys (and the
    mouse wheel): z-slice; n / p: next or previous tomogram; o: overlay on or off; the opacity slider sets how
    strongly the mask is drawn. Matplotlib's toolbar saves the view."""

    def __init__(self, items, figure):
        from matplotlib.widgets import Slider
        if not items:
            raise ValueError("nothing to show")
        self.items, self.fig = items, figure
        self.ax = figure.add_axes([0.05, 0.14, 0.9, 0.8])
        self.zax = figure.add_axes([0.15, 0.06, 0.7, 0.025])
        alpha_ax = figure.add_axes([0.15, 0.02, 0.7, 0.025])
        self.alpha = Slider(alpha_ax, "opacity", 0.0, 1.0, valinit=render.DEFAULT_ALPHA)
        self.alpha.on_changed(lambda _: self.draw())
        self.show_overlay, self.image, self.zslider = True, None, None
        figure.canvas.mpl_connect("key_press_event", self.on_key)
        figure.canvas.mpl_connect("scroll_event", lambda e: self.set_z(self.z + (1 if e.button == "up" else -1)))
        self.open(0)

    def open(self, index):
        from matplotlib.widgets import Slider
        self.index = index % len(self.items)
        item = self.items[self.index]
        self.tomo, self.mask = io.read(item["tomo"]).data, io.read(item["mask"]).data
        if self.tomo.shape != self.mask.shape:
            raise io.InputError(item["mask"], "shape %s differs from its tomogram's %s"
                                % (self.mask.shape, self.tomo.shape))
        self.kind = item.get("kind", "auto")
        self.lo, self.hi = render.display_range(self.tomo)
        self.z = self.tomo.shape[0] // 2
        self.zax.clear()
        self.zslider = Slider(self.zax, "z", 0, self.tomo.shape[0] - 1, valinit=self.z, valstep=1)
        self.zslider.on_changed(lambda v: self.set_z(int(v)))
        self.draw()

    def set_z(self, z):
        z = int(np.clip(z, 0, self.tomo.shape[0] - 1))
        if z != self.z:
            self.z = z
            if self.zslider.val != z:
                self.zslider.set_val(z)   # calls back into set_z with the same z: no loop
            self.draw()

    def picture(self):
        """The RGB slice now shown."""
        rgb = render.gray_rgb(self.tomo[self.z], self.lo, self.hi)
        if self.show_overlay:
            rgb = render.overlay_rgb(rgb, self.mask[self.z], self.kind, self.alpha.val)
        return rgb

    def draw(self):
        rgb = self.picture()
        if self.image is None:
            self.image = self.ax.imshow(rgb, interpolation="nearest")
            self.ax.set_axis_off()
        else:
            self.image.set_data(rgb)
            self.image.set_extent((-0.5, rgb.shape[1] - 0.5, rgb.shape[0] - 0.5, -0.5))
        item = self.items[self.index]
        self.ax.set_title("%s (%d of %d)  z %d/%d  %s" % (item["tsId"], self.index + 1, len(self.items), self.z,
                                                           self.tomo.shape[0] - 1, os.path.basename(item["mask"])))
        self.fig.canvas.draw_idle()

    def on_key(self, event):
        if event.key in ("up", "right"):
            self.set_z(self.z + 1)
        elif event.key in ("down", "left"):
            self.set_z(self.z - 1)
        elif event.key in ("n", "p"):
            self.open(self.index + (1 if event.key == "n" else -1))
        elif event.key == "o":
            self.show_overlay = not self.show_overlay
            self.draw()


class PictureViewer:
    """PNG files one at a time, named in the title; n / p or the arrow keys go to the next or previous one."""

    def __init__(self, paths, figure):
        import matplotlib.image
        self.paths, self.fig, self.index = list(paths), figure, 0
        self.read = matplotlib.image.imread
        self.ax = figure.add_axes([0.02, 0.02, 0.96, 0.9])
        figure.canvas.mpl_connect("key_press_event", self.on_key)
        self.show(len(self.paths) - 1)   # the newest (last epoch) first

    def show(self, index):
        self.index = index % len(self.paths)
        self.ax.clear()
        self.ax.imshow(self.read(self.paths[self.index]), cmap="gray", interpolation="nearest")
        self.ax.set_axis_off()
        self.ax.set_title("%s (%d of %d)" % (os.path.basename(self.paths[self.index]), self.index + 1,
                                             len(self.paths)))
        self.fig.canvas.draw_idle()

    def on_key(self, event):
        if event.key in ("n", "right", "p", "left"):
            self.show(self.index + (1 if event.key in ("n", "right") else -1))


def napari_viewer(items, show=True):
    """A napari viewer with each tomogram as an image layer and its mask as a labels layer (a probability map as a
    magenta image layer; an item's optional "prob", the probability map beside a mask, as one more); only the first
    tomogram's layers are visible at start. ``show`` False keeps the window hidden (for screenshots)."""
    import napari
    viewer = napari.Viewer(title="membraneseg: masks over tomograms", show=show)
    for i, item in enumerate(items):
        tomo, mask = io.read(item["tomo"]).data, io.read(item["mask"]).data
        kind = item.get("kind", "auto")
        if kind == "auto":
            kind = render.slice_kind(mask[mask.shape[0] // 2])
        viewer.add_image(tomo, name=item["tsId"], colormap="gray", contrast_limits=render.display_range(tomo),
                         visible=i == 0)
        if kind == "probability":
            probs = [mask]
        else:
            viewer.add_labels(np.asarray(mask, np.int32), name=item["tsId"] + " mask",
                              opacity=render.DEFAULT_ALPHA, visible=i == 0)
            probs = [io.read(item["prob"]).data] if item.get("prob") else []
        for prob in probs:
            viewer.add_image(prob, name=item["tsId"] + " probability", colormap="magenta", blending="additive",
                             contrast_limits=(0.0, 1.0), opacity=render.DEFAULT_ALPHA, visible=i == 0)
    return viewer


def show_napari(items):
    import napari
    napari_viewer(items)
    napari.run()


# ----------------------------------------------------------------------------- command line
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m membraneseg.viewers.launch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    o = sub.add_parser("overlay", help="masks or probability maps over their tomograms")
    o.add_argument("manifest")
    o.add_argument("--viewer", choices=("auto", "napari", "matplotlib"), default="auto",
                   help="auto: napari where installed, else matplotlib")
    for name, helptext in (("curves", "training curves"), ("evaluation", "evaluation table and plots")):
        sub.add_parser(name, help=helptext).add_argument("source", help="the JSON file")
    sub.add_parser("pictures", help="PNG pictures one at a time (n / p: next, previous), e.g. the GAN's grids"
                   ).add_argument("source", nargs="+", help="the PNG files")
    for s in sub.choices.values():
        s.add_argument("--png", metavar="DIR", help="write PNGs into DIR instead of opening a window")
    args = p.parse_args(argv)

    if args.png:
        for path in write_pngs(args):
            print(path)
        return 0
    if args.what == "overlay":
        items = _items(args.manifest)
        if args.viewer == "napari" or (args.viewer == "auto" and napari_available()):
            show_napari(items)
            return 0
    import matplotlib.pyplot as plt
    if args.what == "overlay":
        fig = plt.figure("membraneseg overlay", figsize=(8, 8.5))
        fig.viewer = SliceViewer(items, fig)   # keep a reference: widgets die with their owner
    elif args.what == "pictures":
        fig = plt.figure("membraneseg pictures", figsize=(9, 9))
        fig.viewer = PictureViewer(args.source, fig)
    elif args.what == "curves":
        render.draw_training_curves(plt.figure("membraneseg training", figsize=(10, 4)), args.source)
    else:
        report = render.load_json(args.source)
        render.draw_metrics(plt.figure("membraneseg evaluation", figsize=(9, 4.5)), report)
        if "pr_curve" in report:
            render.draw_pr_curve(plt.figure("membraneseg precision-recall", figsize=(10, 4)), report)
    plt.show()
    return 0


def _items(manifest):
    with open(manifest) as f:
        return json.load(f)


def write_pngs(args):
    if args.what == "overlay":
        return render.overlay_pngs(_items(args.manifest), args.png)
    if args.what == "curves":
        return [render.training_curves_png(args.source, os.path.join(args.png, "training_curves.png"))]
    if args.what == "pictures":
        return render.copy_pictures(args.source, args.png)
    return render.evaluation_pngs(args.source, args.png)


if __name__ == "__main__":
    sys.exit(main())
