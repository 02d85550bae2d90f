"""Viewers: masks over their tomograms, training curves, evaluation results, GAN samples and vesicles. Their windows run
in separate processes (``launch``); ``render`` draws the same pictures as PNG files for headless use."""
from .viewer_evaluation import MembraneSegEvaluationViewer  # noqa: F401
from .viewer_overlay import MembraneSegOverlayViewer  # noqa: F401
from .viewer_training import MembraneSegTrainingViewer  # noqa: F401
from .viewer_gan import MembraneSegGanViewer  # noqa: F401
from .viewer_vesicles import MembraneSegVesiclesViewer  # noqa: F401
