"""The Pix2Pix GAN of the paper's Appendix B: its data (mask/image pairs, crops, mask changes, picture grids;
``data``), the generator and discriminator and their training (``pix2pix``), and new synthetic training pairs
from a trained GAN (``generate``). Imports ``core``, ``preprocessing`` and ``network``."""
