"""The vesicles as a picture, drawn with OpenCV (the engine's environment has no matplotlib): a few z-slices of the
tomogram (or of the mask when no tomogram is given) with each vesicle's fitted surface drawn where it crosses the
slice, in one colour per vesicle and numbered at its centre slice, and beside them a histogram of the diameters.
"""
import cv2
import numpy as np

from ..core.tiling import box_around
from . import fit

COLOURS = [(75, 25, 230), (75, 180, 60), (25, 225, 255), (200, 130, 0), (48, 130, 245), (180, 30, 145),
           (240, 240, 70), (230, 50, 240), (60, 245, 210), (212, 190, 250)]   # BGR
PANEL = 384          # pixels of each slice panel's longer side
HISTOGRAM = (PANEL, 480)


def _grey(image):
    lo, hi = np.percentile(image, [0.5, 99.5])
    g = np.clip((np.asarray(image, np.float32) - lo) / max(hi - lo, 1e-6), 0, 1)
    return cv2.cvtColor(np.rint(g * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def busiest_slices(vesicles, depth, count=3):
    """``count`` z-slices that cross the most vesicles (spread out: no two closer than depth / (2 count))."""
    if depth == 1:
        return [0]
    crossings = np.zeros(depth)
    for v in vesicles:
        c, r = v.centre[0], v.surface.axes[0]
        crossings[max(int(c - r), 0):min(int(c + r) + 1, depth)] += 1
    chosen, gap = [], max(depth // (2 * count), 1)
    for z in np.argsort(-crossings, kind="stable"):
        if all(abs(int(z) - c) >= gap for c in chosen):
            chosen.append(int(z))
        if len(chosen) == count:
            break
    return sorted(chosen)


def slice_panel(background, z, vesicles):
    """One z-slice with the vesicles' outlines (their fitted surface within 0.6 px of the slice)."""
    image = _grey(background)
    for number, v in enumerate(vesicles, 1):
        s, colour = v.surface, COLOURS[(number - 1) % len(COLOURS)]
        r = s.axes[0] + 1
        if abs(z - s.centre[0]) > r:
            continue
        box, grids = box_around(background.shape, s.centre[1:], s.centre[1:], r)
        if box is None:
            continue
        yy, xx = (g.astype(int).ravel() for g in np.broadcast_arrays(*grids))
        points = np.column_stack([np.full(yy.size, float(z)), yy, xx])
        on = np.abs(fit.distance(s, points)) <= 0.6
        image[yy[on], xx[on]] = colour
    scale = PANEL / max(background.shape)
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    for number, v in enumerate(vesicles, 1):
        if round(v.centre[0]) == z:
            at = (int(v.centre[2] * scale) - 6, int(v.centre[1] * scale) + 5)
            cv2.putText(image, str(number), at, cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.rectangle(image, (0, 0), (58, 22), (0, 0, 0), -1)
    cv2.putText(image, "z %d" % z, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def histogram(diameters_nm, size=HISTOGRAM, bins=12):
    """A bar chart of the diameters (nm) on a white canvas, with its axis labels."""
    h, w = size
    image = np.full((h, w, 3), 255, np.uint8)
    left, bottom, top, right = 50, h - 45, 30, w - 15
    text = dict(fontFace=cv2.FONT_HERSHEY_SIMPLEX, fontScale=0.45, color=(0, 0, 0), thickness=1,
                lineType=cv2.LINE_AA)
    cv2.putText(image, "%d vesicles: diameter (nm)" % len(diameters_nm), (left, 20), **text)
    cv2.line(image, (left, bottom), (right, bottom), (0, 0, 0), 1)
    cv2.line(image, (left, bottom), (left, top), (0, 0, 0), 1)
    if not len(diameters_nm):
        return image
    lo, hi = float(np.min(diameters_nm)), float(np.max(diameters_nm))
    edges = np.linspace(np.floor(lo) - 1, np.ceil(hi) + 1, bins + 1)
    counts, _ = np.histogram(diameters_nm, edges)
    bar = (right - left) / bins
    for i, n in enumerate(counts):
        x0 = int(left + i * bar) + 1
        y0 = int(bottom - n / counts.max() * (bottom - top))
        cv2.rectangle(image, (x0, y0), (int(x0 + bar) - 2, bottom - 1), (200, 130, 0), -1)
    for i in range(0, bins + 1, 3):
        cv2.putText(image, "%.0f" % edges[i], (int(left + i * bar) - 10, bottom + 18), **text)
    cv2.putText(image, str(int(counts.max())), (8, top + 5), **text)
    cv2.putText(image, "0", (30, bottom), **text)
    return image


def picture(background, vesicles, voxel_size, count=3):
    """The whole picture (BGR uint8): ``count`` slice panels and the histogram, side by side."""
    zs = busiest_slices(vesicles, background.shape[0], count)
    panels = [slice_panel(np.asarray(background[z], np.float32), z, vesicles) for z in zs]
    diameters = [2 * v.radius * voxel_size / 10.0 for v in vesicles]
    panels.append(histogram(diameters))
    height = max(p.shape[0] for p in panels)
    panels = [np.pad(p, ((0, height - p.shape[0]), (0, 4), (0, 0)), constant_values=255) for p in panels]
    return np.concatenate(panels, axis=1)
