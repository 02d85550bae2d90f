"""scipion-em-membraneseg: membrane and vesicle segmentation of cryo-electron tomograms.

This file is imported both by Scipion and, inside the model environment, by ``python -m membraneseg.engine``,
where Scipion is absent. So ``Plugin`` is loaded on first access (PEP 562): importing the package never imports
Scipion, and asking for the Plugin where pwem is missing says so. Any other import error is raised as usual.
"""
from .constants import VERSION

__version__ = VERSION
_logo = "icon.png"
_references = ["MoralesMartinez2025"]


def __getattr__(name):
    if name == "Plugin":
        try:
            from .plugin import Plugin
        except ModuleNotFoundError as exc:
            if exc.name in ("pwem", "pyworkflow"):
                raise AttributeError("membraneseg.Plugin needs Scipion (pwem), which is not installed here") \
                    from exc
            raise
        globals()["Plugin"] = Plugin
        return Plugin
    raise AttributeError("module 'membraneseg' has no attribute %r" % name)
