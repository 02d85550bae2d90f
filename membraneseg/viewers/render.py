"""Pictures of segmentations, training runs and evaluations, as plain functions (numpy and matplotlib; no Scipion,
no TensorFlow), so that the viewers, the evaluate protocol and headless tests share them.

Figures are drawn with matplotlib's object API on an Agg canvas, never through pyplot, so calling these from the
Scipion GUI process leaves its plotting backend alone. Every PNG is written atomically.
"""
import json
import os

import numpy as np

from ..engine.core import io

MASK_COLOUR = np.array([255, 0, 200], np.float32)        # magenta: visible on grey, unlike red/green for many
LABEL_COLOURS = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                          [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212]],
                         np.float32)
DEFAULT_ALPHA = 0.5


# ----------------------------------------------------------------------------- slices and overlays
def display_range(data, max_slices=16):
    """Grey levels (0.5th and 99.5th percentiles) for showing a volume or slice, from at most ``max_slices``
    evenly spaced z-slices so a large memory-mapped tomogram is not read whole."""
    if np.ndim(data) == 2:
        sample = np.asarray(data, np.float32)
    else:
        zs = np.unique(np.linspace(0, data.shape[0] - 1, min(max_slices, data.shape[0])).astype(int))
        sample = np.asarray(data[zs], np.float32)
    lo, hi = np.nanpercentile(sample, [0.5, 99.5])
    return float(lo), (float(hi) if hi > lo else float(lo) + 1.0)


def gray_rgb(image, lo=None, hi=None):
    """A 2D slice as an 8-bit RGB picture, grey levels from ``lo`` (black) to ``hi`` (white)."""
    image = np.asarray(image, np.float32)
    if lo is None or hi is None:
        lo, hi = display_range(image)
    g = np.clip((image - lo) / max(hi - lo, 1e-12), 0, 1) * 255
    return np.repeat(np.rint(g).astype(np.uint8)[..., None], 3, axis=2)


def slice_kind(mask):
    """How a slice of a mask should be drawn: 'probability' (fractional values), 'labels' or 'binary'."""
    mask = np.asarray(mask)
    nonzero = mask[mask != 0]
    if mask.dtype.kind == "f" and np.any(nonzero != np.round(nonzero)):
        return "probability"
    return "labels" if np.unique(nonzero).size > 1 else "binary"


def overlay_rgb(rgb, mask, kind="auto", alpha=DEFAULT_ALPHA):
    """Blend a mask slice onto an RGB slice: binary masks in magenta, label maps one colour per label, and
    probability maps in magenta with an opacity proportional to the probability."""
    mask = np.asarray(mask)
    kind = slice_kind(mask) if kind == "auto" else kind
    out = np.asarray(rgb, np.float32).copy()
    if kind == "probability":
        weight = (alpha * np.clip(mask.astype(np.float32), 0, 1))[..., None]
        out = out * (1 - weight) + MASK_COLOUR * weight
    else:
        on = mask != 0
        if kind == "labels":
            colour = LABEL_COLOURS[(np.abs(mask[on]).astype(np.int64) - 1) % len(LABEL_COLOURS)]
        else:
            colour = MASK_COLOUR
        out[on] = out[on] * (1 - alpha) + colour * alpha
    return np.rint(out).astype(np.uint8)


def write_rgb(path, rgb):
    """Write an RGB array as a PNG, pixel for pixel."""
    from matplotlib import image
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    with io.atomic_path(path) as tmp:
        image.imsave(tmp, rgb, format="png")
    return path


def overlay_png(tomo_path, mask_path, out, z=None, kind="auto", alpha=DEFAULT_ALPHA):
    """PNG of z-slice ``z`` (default: the middle one) of a tomogram with its mask or probability map on top,
    at the tomogram's pixel size (one PNG pixel per voxel). With alpha 0 it is the bare slice."""
    tomo, mask = io.read(tomo_path), io.read(mask_path)
    if tomo.data.shape != mask.data.shape:
        raise io.InputError(mask_path, "shape %s differs from its tomogram %s (%s)"
                            % (mask.data.shape, tomo_path, tomo.data.shape))
    z = tomo.data.shape[0] // 2 if z is None else int(z)
    lo, hi = display_range(tomo.data)
    return write_rgb(out, overlay_rgb(gray_rgb(tomo.data[z], lo, hi), mask.data[z], kind, alpha))


def overlay_pngs(items, folder, alpha=DEFAULT_ALPHA):
    """One overlay PNG (middle slice) per item {"tsId", "tomo", "mask", "kind"} into ``folder``; their paths."""
    return [overlay_png(it["tomo"], it["mask"], os.path.join(folder, "%s_overlay.png" % it["tsId"]),
                        kind=it.get("kind", "auto"), alpha=alpha) for it in items]


# ----------------------------------------------------------------------------- figures
def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def load_json(source):
    """A dict given as is, or read from a JSON file."""
    if isinstance(source, dict):
        return source
    with open(source) as f:
        return json.load(f)


def draw_training_curves(fig, history):
    """Loss and validation loss (left), validation Dice (right) per epoch, into ``fig``."""
    epochs = load_json(history).get("epochs", [])
    if not epochs:
        raise ValueError("the training history holds no epoch")
    x = [e["epoch"] for e in epochs]
    left, right = fig.subplots(1, 2)
    for key, style in (("loss", "-o"), ("val_loss", "-s")):
        if any(key in e for e in epochs):
            left.plot(x, [e.get(key, np.nan) for e in epochs], style, ms=3, label=key.replace("_", " "))
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.set_title("Loss")
    left.legend()
    dice = [e.get("val_dice", np.nan) for e in epochs]
    right.plot(x, dice, "-o", ms=3, color="tab:green")
    if not np.all(np.isnan(dice)):
        best = int(np.nanargmax(dice))
        right.annotate("best %.3f (epoch %d)" % (dice[best], x[best]), (x[best], dice[best]),
                       textcoords="offset points", xytext=(-60, -15))
    right.set_xlabel("epoch")
    right.set_ylabel("Dice")
    right.set_ylim(0, 1)
    right.set_title("Validation Dice (threshold 0.5)")
    return fig


def training_curves_png(history, out):
    """PNG of a training run's curves; ``history`` is a training_history.json path or its dict."""
    return _save(draw_training_curves(_figure(10, 4), history), out)


PLOT_METRICS = (("precision", "precision"), ("recall", "recall"), ("dice", "Dice"), ("iou", "IoU"),
                ("tolerant_dice", "tolerant Dice"), ("mcov", "mCov"))


def draw_metrics(fig, report):
    """Grouped bars: the metrics of each tomogram and the pooled ones."""
    report = load_json(report)
    rows = report["tomograms"] + [dict(report["pooled"], tsId="pooled")]
    keys = [(k, name) for k, name in PLOT_METRICS if k in report["pooled"]]
    ax = fig.subplots()
    width = 0.8 / len(rows)
    x = np.arange(len(keys))
    for i, r in enumerate(rows):
        ax.bar(x + i * width - 0.4 + width / 2, [r[k] for k, _ in keys], width, label=r["tsId"],
               color="black" if r["tsId"] == "pooled" else None)
    ax.set_xticks(x, [name for _, name in keys])
    ax.set_ylim(0, 1.2)                                  # room above the bars for the legend
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("score")
    ax.set_title("Segmentation against the reference (tolerance %g voxels)" % report["settings"]["tolerance_voxels"])
    if len(rows) <= 18:
        ax.legend(fontsize="small", loc="upper center", ncol=min(len(rows), 6))
    return fig


def draw_pr_curve(fig, report):
    """Precision against recall (left) and F1 against threshold (right), with the best threshold marked."""
    c = load_json(report)["pr_curve"]
    left, right = fig.subplots(1, 2)
    best = c["thresholds"].index(c["best_threshold"]) if c["best_threshold"] in c["thresholds"] else None
    left.plot(c["recall"], c["precision"], "-")
    right.plot(c["thresholds"], c["f1"], "-", color="tab:green")
    if best is not None:
        left.plot(c["recall"][best], c["precision"][best], "o", color="tab:red",
                  label="threshold %.2f" % c["best_threshold"])
        left.legend()
    right.axvline(c["best_threshold"], color="tab:red", ls="--")
    right.annotate("best %.2f: F1 %.3f" % (c["best_threshold"], c["best_f1"]), (c["best_threshold"], c["best_f1"]),
                   textcoords="offset points", xytext=(5, -15))
    left.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall curve")
    right.set(xlabel="probability threshold", ylabel="F1 (= Dice)", xlim=(0, 1), ylim=(0, 1.02),
              title="F1 against threshold (%d map(s) pooled)" % c["tomograms"])
    return fig


def evaluation_pngs(report, folder):
    """metrics.png and, for probability maps, pr_curve.png into ``folder``; their paths."""
    report = load_json(report)
    paths = [_save(draw_metrics(_figure(9, 4.5), report), os.path.join(folder, "metrics.png"))]
    if "pr_curve" in report:
        paths.append(_save(draw_pr_curve(_figure(10, 4), report), os.path.join(folder, "pr_curve.png")))
    return paths


def copy_pictures(paths, folder):
    """Copy PNG pictures (e.g. the GAN's grids) into ``folder``; returns the copies' paths."""
    import shutil
    os.makedirs(folder, exist_ok=True)
    return [shutil.copy(path, os.path.join(folder, os.path.basename(path))) for path in paths]
