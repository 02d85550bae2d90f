"""The workflow templates load in Scipion: found by the plugin, fields filled, every protocol class and parameter
exists, and every input points to an output the producing protocol declares."""
import json
import os
import tempfile

from pyworkflow.object import Pointer
from pyworkflow.template import TemplateList
from pyworkflow.tests import BaseTest, setupTestProject

import membraneseg

TEMPLATE_DIR = os.path.join(os.path.dirname(membraneseg.__file__), "templates")
COMMON = {"_useQueue", "_prerequisites", "_queueParams", "forceSchedule"}   # saved with every protocol


def templateProtocols(template):
    """The protocols of a template (a list of dicts), its fields filled with their defaults (a folder for
    paths, since a template's path fields have no default)."""
    template.replaceEnvVariables()   # as Scipion does: expands %(VAR)s and splits out the ~fields~
    template.parseContent()
    for param in template.getParams().values():
        if param.getValue() in (None, "") and param.getType() in (2, 6):   # path, folder
            param.setValue(tempfile.gettempdir())
        assert param.validate() is None, "%s: %s" % (template, param.getTitle())
    path = template.createTemplateFile()
    with open(path) as f:
        protocols = json.load(f)
    return path, protocols


class TestTemplates(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)

    def test_templates_are_found_and_load(self):
        # as Scipion's template chooser finds them
        chooser = TemplateList()
        chooser.addPluginTemplates()
        templates = [t for t in chooser.templates if t.source == "membraneseg"]
        found = sorted(t.name for t in templates)
        files = sorted(f.replace(".json.template", "") for f in os.listdir(TEMPLATE_DIR)
                       if f.endswith(".json.template"))
        self.assertTrue(files)
        self.assertEqual(found, files)
        domainProtocols = self.proj.getDomain().getProtocols()
        for template in templates:
            self.assertNotEqual(template.description, "Not provided", template.name)
            path, dicts = templateProtocols(template)
            ids = {d["object.id"]: d for d in dicts}
            for d in dicts:
                protClass = domainProtocols.get(d["object.className"])
                self.assertIsNotNone(protClass, "%s: no protocol class %s" % (template.name, d["object.className"]))
                prot = self.proj.newProtocol(protClass)
                params = set(name for name, _ in prot.iterDefinitionAttributes())
                for key in d:
                    if not key.startswith("object.") and key not in COMMON:
                        self.assertIn(key, params, "%s: %s has no parameter %s" % (template.name, protClass.__name__,
                                                                                   key))
                for key, value in d.items():
                    if isinstance(getattr(prot, key, None), Pointer) and value:
                        source, output = value.split(".", 1)
                        producer = domainProtocols[ids[source]["object.className"]]
                        outputs = producer._possibleOutputs
                        names = [o.name for o in outputs] if not isinstance(outputs, dict) else list(outputs)
                        self.assertIn(output, names, "%s: %s.%s points to %s, which %s does not declare"
                                      % (template.name, protClass.__name__, key, value, producer.__name__))
            # and Scipion builds the workflow from it
            before = len(self.proj.getRuns())
            self.proj.loadProtocols(path)
            runs = self.proj.getRuns(refresh=True)
            self.assertEqual(len(runs) - before, len(dicts))
            loaded = {r.getClassName() for r in runs}
            self.assertTrue({d["object.className"] for d in dicts} <= loaded)
            os.remove(path)
