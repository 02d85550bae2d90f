"""Every protocol the plugin exports: each parameter has a label and help, and its GUI form builds under X and is
saved as screenshots (one PNG per form tab) in the test output folder, so a broken form fails CI.

The forms are drawn in a subprocess, under ``xvfb-run`` when there is no DISPLAY; the test is skipped, saying so,
when neither is available (Debian: apt-get install xvfb xauth). Run by hand with a display to look at them:
``python -m membraneseg.tests.test_forms OUTDIR PROJECT``.
"""
import json
import os
import shutil
import subprocess
import sys

if __name__ == "__main__":   # run by hand: configure Scipion before pyworkflow is first imported
    from membraneseg.tests import headless
    headless.configure()

from pyworkflow.protocol import Protocol  # noqa: E402
from pyworkflow.tests import BaseTest, setupTestProject  # noqa: E402

import membraneseg.protocols  # noqa: E402

# Parameters that pyworkflow adds to every form; their labels and help are Scipion's own.
FRAMEWORK_PARAMS = {"runName", "runMode", "hostName", "numberOfThreads", "numberOfMpi"}
XVFB = ["xvfb-run", "-a", "-s", "-screen 0 1600x1200x24"]


def pluginProtocols():
    """The protocol classes membraneseg.protocols exports, so that protocols added later are covered too."""
    return sorted((obj for obj in vars(membraneseg.protocols).values()
                   if isinstance(obj, type) and issubclass(obj, Protocol)), key=lambda c: c.__name__)


def displayPrefix():
    """[] with a display, the xvfb-run command without one, None when no X server can be had."""
    if os.environ.get("DISPLAY"):
        return []
    return XVFB if shutil.which("xvfb-run") else None


# ----------------------------------------------------------------------------- the drawing subprocess
def renderForms(outDir, projectName):
    """Build each protocol's FormWindow, show every tab and save it as PNG; write forms.json with what was drawn."""
    import tkinter.ttk as ttk

    import pyworkflow.gui.project  # noqa: F401  (must come before pyworkflow.gui.form: circular import)
    from PIL import ImageGrab
    from pyworkflow.gui.form import FormWindow
    from pyworkflow.project import Manager

    project = Manager().loadProject(projectName)
    os.chdir(project.getPath())
    os.makedirs(outDir, exist_ok=True)
    drawn = {}
    for protClass in pluginProtocols():
        prot = project.newProtocol(protClass)
        window = FormWindow("Protocol Run: " + protClass.__name__, prot, lambda *args, **kwargs: None)
        root = window.root
        root.deiconify()
        root.geometry("+0+0")
        root.update()
        notebook = findWidget(root, ttk.Notebook)
        tabs = []
        for i, tabId in enumerate(notebook.tabs()):
            notebook.select(tabId)
            root.update()
            x, y, w, h = root.winfo_rootx(), root.winfo_rooty(), root.winfo_width(), root.winfo_height()
            path = os.path.join(outDir, "%s_%d.png" % (protClass.__name__, i))
            ImageGrab.grab(bbox=(x, y, x + w, y + h)).save(path)
            tabs.append(dict(tab=notebook.tab(tabId, "text"), png=path))
        drawn[protClass.__name__] = dict(tabs=tabs, widgets=sorted(window.widgetDict))
        root.destroy()
    with open(os.path.join(outDir, "forms.json"), "w") as f:
        json.dump(drawn, f, indent=1)


def formParams(prot):
    """Names of the parameters the form shows in its tabs (Scipion puts 'General' and 'Parallelization' in the
    header), groups and lines opened up."""
    from pyworkflow.protocol import Group, Line

    def leaves(container):
        for name, param in container.iterParams():
            if isinstance(param, (Group, Line)):
                yield from leaves(param)
            else:
                yield name
    return [name for section in prot.iterDefinitionSections()
            if section.getLabel() not in ("General", "Parallelization") for name in leaves(section)]


def findWidget(widget, cls):
    if isinstance(widget, cls):
        return widget
    for child in widget.winfo_children():
        found = findWidget(child, cls)
        if found is not None:
            return found
    return None


# ----------------------------------------------------------------------------- the test
class TestForms(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)

    def test_every_parameter_has_a_label_and_help(self):
        from pyworkflow.protocol import Group, Line

        def check(protClass, container, inLine=False):
            for name, param in container.iterParams():
                if name in FRAMEWORK_PARAMS or param.condition.get() == "False":   # never shown (addHidden)
                    continue
                where = "%s.%s" % (protClass.__name__, name)
                self.assertTrue(param.label.get(), "%s has no label" % where)
                # a parameter on a line (e.g. X, Y, Z) is explained by the line's help
                if not inLine and not isinstance(param, Group):
                    self.assertTrue(param.help.get(), "%s has no help" % where)
                if isinstance(param, (Group, Line)):
                    check(protClass, param, inLine=isinstance(param, Line))

        for protClass in pluginProtocols():
            for section in self.proj.newProtocol(protClass).iterDefinitionSections():
                check(protClass, section)

    def test_train_loss_choices_are_the_engine_losses(self):
        """The form's Loss labels are indexes into the engine's LOSSES: one label per loss, in its order."""
        from membraneseg.engine.training.config import LOSSES
        from membraneseg.protocols.protocol_train import ProtMembraneSegTrain
        choices = self.proj.newProtocol(ProtMembraneSegTrain).getParam("loss").choices
        self.assertEqual(len(choices), len(LOSSES))
        self.assertIn("tolerant", choices[LOSSES.index("bce+dice+tolerant")])

    def test_forms_build_and_are_screenshotted(self):
        prefix = displayPrefix()
        if prefix is None:
            self.skipTest("no X server: DISPLAY is unset and xvfb-run is missing (apt-get install xvfb xauth)")
        from PIL import Image
        outDir = self.getOutputPath("forms")
        run = subprocess.run(prefix + [sys.executable, "-m", __name__, outDir, self.proj.getShortName()],
                             capture_output=True, text=True, timeout=600)
        self.assertEqual(run.returncode, 0, run.stdout[-3000:] + run.stderr[-3000:])
        with open(os.path.join(outDir, "forms.json")) as f:
            drawn = json.load(f)
        self.assertEqual(sorted(drawn), [c.__name__ for c in pluginProtocols()])
        for protClass in pluginProtocols():
            form = drawn[protClass.__name__]
            self.assertTrue(form["tabs"], protClass.__name__)
            missing = set(formParams(self.proj.newProtocol(protClass))) - set(form["widgets"])
            self.assertFalse(missing, "%s: no widget for %s" % (protClass.__name__, sorted(missing)))
            for tab in form["tabs"]:
                image = Image.open(tab["png"]).convert("L")
                self.assertGreaterEqual(image.size[0], 500)
                lo, hi = image.getextrema()
                colours = len(image.getcolors(maxcolors=1 << 16) or [])
                self.assertTrue(hi - lo > 100 and colours > 20, "%s (%s) looks blank" % (tab["png"], tab["tab"]))


if __name__ == "__main__":
    renderForms(sys.argv[1], sys.argv[2])
