"""``python -m membraneseg.engine COMMAND``: the same as the ``membraneseg`` command."""
import sys

from .cli.main import main

sys.exit(main())
