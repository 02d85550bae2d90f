"""Headless Scipion tests: every bad input of issue 9 through the protocols.

Tomograms are imported with ScipionTomo's importer (on stand-in volumes), then pointed at the bad files, as a set
from another plugin might be: the importer itself refuses unreadable files and renames odd ones. Each refused
tomogram must land in the failed set with the engine's one-line reason and leave no output, while the others are
processed; a file name full of shell characters must reach the engine as data; bad models, empty sets, mismatched
masks and a missing environment must be explained.
"""
import glob
import json
import os
import shutil
from unittest import mock

import numpy as np
from pyworkflow.tests import BaseTest, setupTestProject
from pyworkflow.utils import magentaStr
from tomo.objects import SetOfTomoMasks, SetOfTomograms

from membraneseg import Plugin
from membraneseg.constants import (ENV_ACTIVATION_VAR, ENV_NAME, MODEL_JSON, MODEL_WEIGHTS, OUT_FAILED, OUT_MASKS,
                                   OUT_MODEL, OUT_TOMOS)
from membraneseg.engine.core import io
from membraneseg.engine.network import model as net, modelfile
from membraneseg.engine.segmentation import predict
from membraneseg.objects import MembraneSegModel
from membraneseg.protocols import (ProtMembraneSegClean, ProtMembraneSegEvaluate, ProtMembraneSegImportModel,
                                   ProtMembraneSegPhantoms, ProtMembraneSegPreprocess, ProtMembraneSegSegment,
                                   ProtMembraneSegTrain)

from . import badinputs
from .common import import_tomograms

REFUSED = dict(badinputs.REFUSED, **{"2D where a volume is needed": badinputs.FLAT})
FAST_PREPROCESS = dict(eedIterations=1, doClahe=False)


def hostile_path(base):
    """A volume (with a 1 Å header) whose path holds spaces, quotes, ';', '|', '>', '&', '$()', backticks and '%':
    run by a shell without quoting, it would create files named PWNED* (the '/' in the markers make folders)."""
    folder = os.path.join(base, "$(touch %s)" % os.path.join(base, "PWNED1"), "`touch %s`" % os.path.join(base,
                                                                                                       "PWNED2"))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "it's \"a\" tomo; touch PWNED3 | echo > PWNED4 & 100%s %(GPU)s.mrc")
    badinputs.write_mrc(path, badinputs.noise(seed=5), voxel=1.0)
    return path


def import_files(test, files):
    """A SetOfTomograms (10 Å/px) whose items are the files ``files`` {tsId: path}: stand-ins are imported, then
    each item is pointed at its file."""
    stand_ins = test.getOutputPath("stand-ins-%d" % len(os.listdir(test.getOutputPath())))
    os.makedirs(stand_ins, exist_ok=True)
    for tsId in files:
        badinputs.write_mrc(os.path.join(stand_ins, tsId + ".mrc"), badinputs.noise())
    tomos = import_tomograms(test, stand_ins)
    items = [tomo.clone() for tomo in tomos]
    for tomo in items:
        tomo.setFileName(files[tomo.getTsId()])
        tomos.update(tomo)
    tomos.write()
    return tomos


def tsIds(cases):
    """Names that the importer keeps as they are, one per case."""
    return {name: "case%02d" % i for i, name in enumerate(cases)}


def results(folder):
    """Image files under ``folder`` (the engine's outputs), hidden ones included."""
    return [f for f in os.listdir(folder) if io.suffix_of(f.replace(".partial", "")) in (".mrc", ".tif")]


class TestBadTomograms(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.refused = badinputs.make(cls.getOutputPath("refused"), REFUSED)
        cls.usable = badinputs.make(cls.getOutputPath("usable"), badinputs.USABLE)
        cls.hostile = hostile_path(cls.getOutputPath("hostile"))
        cls.ids = tsIds(list(REFUSED) + list(badinputs.USABLE) + ["hostile"])
        paths = dict(cls.refused, **cls.usable, hostile=cls.hostile)
        cls.tomograms = import_files(cls, {cls.ids[name]: path for name, path in paths.items()})

    def _checkFailed(self, prot, names):
        """Exactly ``names`` failed, each with the engine's one-line reason naming its file, and left no output."""
        failed = getattr(prot, OUT_FAILED)
        self.assertEqual(sorted(t.getTsId() for t in failed), sorted(self.ids[n] for n in names))
        for name in names:
            with open(prot._getExtraPath(self.ids[name], "FAILED.txt")) as f:
                reason = f.read()
            self.assertTrue(reason.startswith(self.refused[name] + ": "), reason)
            self.assertIn(REFUSED[name][2], reason)
            self.assertNotIn("\n", reason)
            self.assertEqual(results(prot._getExtraPath(self.ids[name])), [])

    def _checkNothingRan(self):
        """The hostile name's shell characters reached the engine as data: no PWNED file anywhere."""
        planted = [p for root in (self.getOutputPath(), self.proj.getPath(), os.getcwd())
                   for p in glob.glob(os.path.join(glob.escape(root), "**", "PWNED*"), recursive=True)
                   if os.path.basename(p) in ("PWNED1", "PWNED2", "PWNED3", "PWNED4")]
        self.assertEqual(planted, [])

    def test_preprocess_refuses_each_bad_tomogram_and_processes_the_others(self):
        print(magentaStr("\n==> Preprocessing %d tomograms, %d of them bad" % (len(self.ids), len(REFUSED))))
        prot = self.newProtocol(ProtMembraneSegPreprocess, inputTomograms=self.tomograms, **FAST_PREPROCESS)
        self.launchProtocol(prot)
        self._checkFailed(prot, REFUSED)
        done = {t.getTsId(): t.clone() for t in getattr(prot, OUT_TOMOS)}
        self.assertEqual(sorted(done), sorted(self.ids[n] for n in list(badinputs.USABLE) + ["hostile"]))
        for name, (_, _, shape, _) in badinputs.USABLE.items():
            vol = io.read(done[self.ids[name]].getFileName())
            self.assertEqual(vol.data.shape, shape, name)
            # the set's sampling rate, whatever the header said (0 or 1 Å included)
            self.assertAlmostEqual(vol.voxel_size, 10.0, places=3, msg=name)
            self.assertTrue(np.isfinite(np.asarray(vol.data)).all(), name)
        self._checkNothingRan()

    def test_segment_refuses_a_2d_file_and_segments_a_hostile_name_with_a_1_angstrom_header(self):
        names = ["2D where a volume is needed", "hostile"]
        subset = import_files(self, {self.ids[n]: dict(self.refused, hostile=self.hostile)[n] for n in names})
        print(magentaStr("\n==> Segmenting %s" % names))
        prot = self.newProtocol(ProtMembraneSegSegment, inputTomograms=subset, numberOfThreads=2, binThreads=1)
        self.launchProtocol(prot)
        self._checkFailed(prot, names[:1])
        masks = [m.clone() for m in getattr(prot, OUT_MASKS)]
        self.assertEqual([m.getTsId() for m in masks], [self.ids["hostile"]])
        self.assertEqual(masks[0].getFileName(),
                         predict.output_paths(self.hostile, prot._getExtraPath(self.ids["hostile"]))[0])
        vol = io.read(masks[0].getFileName())
        self.assertEqual(vol.data.shape, badinputs.SHAPE)
        self.assertAlmostEqual(vol.voxel_size, 10.0, places=3)   # the set's, not the header's 1 Å
        self._checkNothingRan()

    def test_empty_sets_are_refused(self):
        tomos = SetOfTomograms.create(self.getOutputPath(), suffix="Empty")
        masks = SetOfTomoMasks.create(self.getOutputPath(), template="tomomasks%s.sqlite", suffix="Empty")
        for protClass, attrs, words in (
                (ProtMembraneSegSegment, ["inputTomograms"], "The input set of tomograms is empty."),
                (ProtMembraneSegPreprocess, ["inputTomograms"], "The input set of tomograms is empty."),
                (ProtMembraneSegClean, ["inputMasks"], "The input set is empty."),
                (ProtMembraneSegEvaluate, ["inputMasks", "referenceMasks"], "no tomogram has both"),
                (ProtMembraneSegTrain, ["inputTomograms", "inputMasks"], "The input set of tomograms is empty.")):
            prot = self.newProtocol(protClass)
            for attr in attrs:
                getattr(prot, attr).set(tomos if attr == "inputTomograms" else masks)
            self.assertTrue(any(words in e for e in prot.validate()), (protClass.__name__, prot.validate()))

    def test_phantom_settings_out_of_range_are_refused(self):
        prot = self.newProtocol(ProtMembraneSegPhantoms, kind=2, rawIceAbsorption=1.5, snr=-1.0)
        errors = prot.validate()
        for words in ("ice absorption is a fraction", "signal-to-noise ratio must be positive"):
            self.assertTrue(any(words in e for e in errors), errors)
        self.assertEqual(self.newProtocol(ProtMembraneSegPhantoms, kind=2, rawIceAbsorption=0.6).validate(), [])


class TestBadModels(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.good = modelfile.default_model_path()

    def _copy(self, name):
        folder = self.getOutputPath(name)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(self.good, folder)
        return folder

    def test_missing_and_corrupt_models_are_refused_before_running(self):
        # models registered in the project whose folders were then deleted or damaged
        gone, corrupt = self._copy("gone"), self._copy("corrupt")
        goneModel = MembraneSegModel(path=gone)
        shutil.rmtree(gone)
        badinputs.flip_last_bytes(os.path.join(corrupt, MODEL_WEIGHTS))
        for path, words in ((gone, "folder not found"), (corrupt, "checksum mismatch")):
            prot = self.newProtocol(ProtMembraneSegImportModel, modelPath=path)
            self.assertTrue(any(words in e for e in prot.validate()), prot.validate())
        # segmenting reads the card when validating; the weights' checksum is checked when the engine loads them
        prot = self.newProtocol(ProtMembraneSegSegment)
        prot.inputModel.set(goneModel)
        self.assertTrue(any("folder not found" in e for e in prot._validate()), prot._validate())

    def test_model_of_another_architecture_is_refused_with_the_reason(self):
        other = self._copy("other-architecture")
        card = modelfile.read_card(other)
        card.network = net.NetworkSpec.from_preset("tiny").to_dict()   # the weights are cpu-small's
        with open(os.path.join(other, MODEL_JSON), "w") as f:
            json.dump(card.to_dict(), f)
        prot = self.newProtocol(ProtMembraneSegImportModel, modelPath=other)
        self.assertEqual(prot.validate(), [])                              # the checksum is right
        print(magentaStr("\n==> Importing a model whose card describes another network"))
        with self.assertRaises(Exception):
            self.launchProtocol(prot)
        self.assertIn("weights do not fit the network described in the card", prot.getErrorMessage())
        self.assertIsNone(getattr(prot, OUT_MODEL, None))


class TestEnvironment(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)

    def test_validation_says_how_to_install_a_missing_environment(self):
        original = Plugin.getVar

        def getVar(var, default=None):   # the default activation, as where nothing was configured
            return Plugin._defaultActivation() if var == ENV_ACTIVATION_VAR else original(var, default)

        with mock.patch.object(Plugin, "getVar", getVar), \
                mock.patch.object(Plugin, "_condaAvailable", return_value=False), \
                mock.patch.object(Plugin, "_venvDir", return_value=self.getOutputPath("no-venv")):
            errors = self.newProtocol(ProtMembraneSegSegment)._validate()
        self.assertTrue(any("scipion3 installb %s" % ENV_NAME in e for e in errors), errors)

    def test_a_run_in_a_missing_environment_says_how_to_install_it(self):
        folder = self.getOutputPath("tomo")
        os.makedirs(folder, exist_ok=True)
        badinputs.write_mrc(os.path.join(folder, "t.mrc"), badinputs.noise())
        tomos = import_tomograms(self, folder)
        prot = self.newProtocol(ProtMembraneSegPreprocess, inputTomograms=tomos, **FAST_PREPROCESS)
        # the run (a new process) enters an environment that does not exist
        with mock.patch.dict(os.environ, {ENV_ACTIVATION_VAR: ". %s" % self.getOutputPath("no-venv", "activate")}):
            with self.assertRaises(Exception):
                self.launchProtocol(prot)
        reason = open(prot._getExtraPath("t", "FAILED.txt")).read()
        self.assertIn("stopped without saying why", reason)
        self.assertIn("install it with 'scipion3 installb %s'" % ENV_NAME, reason)
