"""pytest: configure headless Scipion before any test module imports pyworkflow."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from membraneseg.tests import headless  # noqa: E402

headless.configure(os.path.join(os.path.dirname(os.path.abspath(__file__)), "scipion-userdata"))
