"""Build the membraneseg_phantoms test dataset (phantom tomograms, label maps, a tiny trained model).

The protocol tests build it themselves when it is missing; this rebuilds it by hand, e.g. after changing its
recipe in membraneseg/tests/phantom_dataset.py. Run from the repository root:
    .venv/bin/python scripts/make_phantom_dataset.py [--out FOLDER]
By default it goes where the tests look for it: SCIPION_TESTS/membraneseg_phantoms (here
scipion-userdata/data/tests/membraneseg_phantoms). About a minute on 2 CPU cores.
"""
import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from membraneseg.tests import headless  # noqa: E402  (must configure before pyworkflow is imported)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="folder to build it in (default: where the tests look for it)")
    args = parser.parse_args()
    headless.configure()
    import pyworkflow as pw

    from membraneseg.tests import phantom_dataset

    folder = args.out or os.path.join(pw.Config.SCIPION_TESTS, phantom_dataset.NAME)
    if os.path.exists(folder):
        shutil.rmtree(folder)
    print("membraneseg_phantoms built in %s" % phantom_dataset.build(folder))


if __name__ == "__main__":
    main()
