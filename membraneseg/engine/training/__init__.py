"""Training and fine-tuning the network: the settings of a run (``config``, importable without TensorFlow), the
data in memory and its split by group (``data``), random and fixed patches (``patches``), augmentation
(``augment``), losses (``losses``), and the resumable loop that saves a model folder (``loop``). Imports ``core``,
``preprocessing``, ``network`` and ``measurement``."""
