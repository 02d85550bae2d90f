"""One membrane mask or probability map in, its vesicle files out, next to each other in the output folder:

- ``<id>_vesicles.csv``: one row per vesicle (COLUMNS): centre in voxels of the input (0-based, x y z as Scipion
  and IMOD order them), sizes in nm, completeness, confidence;
- ``<id>_vesicles.mrc`` (``.tif`` for a 2D image): the label map, one label per vesicle (row ``id`` of the table);
- ``<id>_vesicles.json``: what was searched for, what was found and dropped at each step, and the table again;
- ``<id>_vesicles.png`` (on request): the picture of ``figure``.

``<id>`` is the input's name without its folder, extension and the plugin's suffixes (_mask, _prob, ...). Every
file is written whole or not at all; the JSON, written last, says the set is complete.
"""
import csv
import logging
import os
from dataclasses import asdict

import numpy as np

from ..core import io
from ..measurement import clean, evaluate
from . import find

log = logging.getLogger(__name__)

SUFFIX = "_vesicles"
COLUMNS = ("id", "x", "y", "z", "diameter_nm", "radius_nm", "semi_axis_1_nm", "semi_axis_2_nm", "semi_axis_3_nm",
           "completeness", "confidence", "rings", "shape")
TRUTH_COLUMNS = COLUMNS[:9]     # what a phantom knows of its vesicles (``truth_rows``)


def output_paths(input_path, out_dir):
    """{'csv', 'labels', 'json', 'png'}: where the results of ``input_path`` go."""
    stem = os.path.join(out_dir, evaluate.tomogram_id(input_path) + SUFFIX)
    labels = stem + (".tif" if io.suffix_of(input_path) in io.IMAGE_SUFFIXES else ".mrc")
    return dict(csv=stem + ".csv", labels=labels, json=stem + ".json", png=stem + ".png")


def rows(vesicles, voxel_size):
    """The table's rows (dicts keyed by COLUMNS) of ``vesicles`` found at ``voxel_size`` Å."""
    nm = voxel_size / 10.0
    out = []
    for number, v in enumerate(vesicles, 1):
        z, y, x = (float(c) for c in v.centre)
        axes = [float(a) * nm for a in v.surface.axes]
        out.append(dict(id=number, x=round(x, 2), y=round(y, 2), z=round(z, 2),
                        diameter_nm=round(2 * v.radius * nm, 2), radius_nm=round(v.radius * nm, 2),
                        semi_axis_1_nm=round(axes[0], 2), semi_axis_2_nm=round(axes[1], 2),
                        semi_axis_3_nm=round(axes[2], 2), completeness=v.completeness, confidence=v.confidence,
                        rings=v.rings, shape="ellipsoid" if v.ellipsoid else "sphere"))
    return out


def truth_rows(truth, voxel_size):
    """Table rows (TRUTH_COLUMNS) of a phantom's vesicles: dicts with ``centre`` (z, y, x) and ``axes`` in voxels,
    as ``simulation.simulate.truth_vesicles`` gives them."""
    nm = voxel_size / 10.0
    out = []
    for number, v in enumerate(truth, 1):
        z, y, x = (round(float(c), 2) for c in v["centre"])
        axes = sorted((float(a) * nm for a in v["axes"]), reverse=True)
        radius = float(np.prod(axes) ** (1 / 3))
        out.append(dict(zip(TRUTH_COLUMNS, [number, x, y, z, round(2 * radius, 2), round(radius, 2)]
                            + [round(a, 2) for a in axes])))
    return out


def write_csv(path, table, columns=COLUMNS):
    with io.atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(table)


def read_csv(path):
    """The rows of a vesicle table, numbers as numbers."""
    with open(path, newline="") as f:
        table = list(csv.DictReader(f))
    for row in table:
        for key, value in row.items():
            if key != "shape":
                row[key] = int(value) if key in ("id", "rings") else float(value)
    return table


def find_file(input_path, out_dir, search=None, threshold=None, kind="auto", pixel_size=None, tomogram=None,
              png=False, membrane_labels=None):
    """Find the vesicles of one file and write their files to ``out_dir``; returns the JSON record. ``tomogram``
    (a path, optional) is the background of the picture; without it the mask is. ``membrane_labels`` (values)
    picks the membrane out of a label map; by default every non-zero voxel of a mask or label map is membrane."""
    search = (search or find.Search()).check()
    vol, kind, threshold, voxel_size, mask = clean.read_mask(input_path, threshold, kind, pixel_size,
                                                             list(membrane_labels or []) or None)
    if not voxel_size:
        raise io.InputError(input_path, "the voxel size is unknown (the header says %g Å), so vesicle sizes in nm "
                                        "cannot be measured; give it with --pixel-size" % vol.voxel_size)
    background = None
    if png and tomogram:
        background = io.read(tomogram).data
        if background.shape != mask.shape:
            raise io.InputError(tomogram, "has shape %s but the mask %s has %s"
                                % (background.shape, input_path, mask.shape))
    log.info("%s: finding vesicles of %g-%g nm at %.2f Å/voxel (%s input)", input_path, search.min_diameter,
             search.max_diameter, voxel_size, kind)
    vesicles, info = find.find(mask, voxel_size, search)
    paths = output_paths(input_path, out_dir)
    table = rows(vesicles, voxel_size)
    write_csv(paths["csv"], table)
    labels = find.label_map(mask, vesicles)
    io.write(paths["labels"], labels, voxel_size)
    if png:
        from . import figure   # OpenCV: in the engine's environment only, and the protocols import this module
        image = figure.picture(mask.astype(np.float32) if background is None else background, vesicles, voxel_size)
        io.write(paths["png"], image)   # BGR, as OpenCV writes it
    record = dict(input=str(input_path), tomogram=tomogram, input_kind=kind, threshold=threshold,
                  membrane_labels=list(membrane_labels or []),
                  voxel_size=voxel_size, search=asdict(search), found=info,
                  outputs={k: v for k, v in paths.items() if k != "png" or png}, vesicles=table)
    io.write_json(paths["json"], record)
    log.info("%s: %d vesicles (%s)", input_path, len(vesicles),
             ", ".join("%s %s" % (k, v) for k, v in info.items() if k != "vesicles"))
    return record
