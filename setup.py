"""Packaging of scipion-em-membraneseg. The version lives in membraneseg/constants.py."""
import re
from os import path

from setuptools import find_packages, setup

here = path.abspath(path.dirname(__file__))
with open(path.join(here, "membraneseg", "constants.py")) as f:
    version = re.search(r'^VERSION = "([^"]+)"', f.read(), re.M).group(1)
with open(path.join(here, "README.rst"), encoding="utf-8") as f:
    long_description = f.read()

VIEWER = ["napari[pyqt5]==0.5.6", "ipython<9.19"]
ENGINE = ["tensorflow-cpu==2.21.0", "numpy==1.26.1", "scipy==1.10.0", "mrcfile==1.4.3", "tifffile==2023.9.26",
          "opencv-python-headless==4.11.0.86", "numba==0.68.1"]

setup(
    name="scipion-em-membraneseg",
    version=version,
    description="Scipion plugin: membrane and vesicle segmentation of cryo-electron tomograms with a hybrid "
                "deep network (Morales-Martinez et al. 2025)",
    long_description=long_description,
    long_description_content_type="text/x-rst",
    url="https://github.com/scipion-em/scipion-em-membraneseg",
    author="scipion-em-membraneseg developers",
    license="GNU General Public License v3 (GPLv3)",
    python_requires=">=3.8",
    packages=find_packages(exclude=["tests", "tests.*", "bench"]),
    install_requires=["scipion-em", "scipion-em-tomo"],
    extras_require={
        # what the model environment needs; also installed beside Scipion for development and CI
        "engine": ENGINE,
        "tests": ENGINE + ["pytest==9.2.0", "hypothesis==6.170.15"],
        # the overlay viewer's napari window, beside Scipion: napari 0.5.6 keeps Scipion's numpy 1.26 and scipy
        # 1.10, and IPython before 9.19 keeps pyworkflow's psutil 5.9
        "viewer": VIEWER,
    },
    entry_points={
        "pyworkflow.plugin": "membraneseg = membraneseg",
        "console_scripts": "membraneseg = membraneseg.engine.cli:main",
    },
    package_data={"membraneseg": ["protocols.conf", "icon.png", "weights/*/*", "weights/README*",
                                  "weights/SHA256SUMS",
                                  "templates/*.json.template"]},
    include_package_data=True,
    zip_safe=False,
    classifiers=["Programming Language :: Python :: 3", "Topic :: Scientific/Engineering :: Bio-Informatics"],
    keywords="scipion cryo-em cryo-et tomography segmentation membranes deep-learning scipion-3.0",
)
