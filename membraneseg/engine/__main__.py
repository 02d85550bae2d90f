"""``python -m membraneseg.engine COMMAND``: the same as the ``membraneseg`` command."""
import sys

from .cli import main

sys.exit(main())
