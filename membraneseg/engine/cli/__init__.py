"""The ``membraneseg`` command line: one thin module per command (``segment``, ``phantoms``, ``train``,
``inspect-model``, ``preprocess``, ``evaluate``, ``clean``, ``gan``), each with ``add(sub)``, which declares its
options and their help, and ``run(args)``, which checks them and calls the engine's plain functions. ``options``
holds what the commands share; ``main`` builds the parser and turns bad input into one line and exit status 2.

This package may import every other package of the engine; nothing imports it.
"""
from .main import EXIT_BAD_INPUT, main

__all__ = ["EXIT_BAD_INPUT", "main"]
