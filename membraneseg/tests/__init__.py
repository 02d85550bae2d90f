"""Headless Scipion protocol tests (pyworkflow BaseTest).

Must not import pyworkflow at package import: ``headless.configure()`` has to run first (see conftest.py).
``load_tests`` lets Scipion's runner (``scipion3 tests membraneseg.tests``, which loads the package by name) find
the test modules in this folder; pytest collects them directly.
"""
import os


def load_tests(loader, standard_tests, pattern):
    here = os.path.dirname(os.path.abspath(__file__))
    standard_tests.addTests(loader.discover(start_dir=here, pattern=pattern or "test*.py",
                                            top_level_dir=os.path.dirname(os.path.dirname(here))))
    return standard_tests
