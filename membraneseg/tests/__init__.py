"""Headless Scipion protocol tests (pyworkflow BaseTest), discoverable by ``scipion3 tests membraneseg.tests``.

Must not import pyworkflow at package import: ``headless.configure()`` has to run first (see conftest.py).
"""
