"""Headless Scipion tests on ScipionTomo's own datasets, as other ScipionTomo plugins test theirs, and the same
tests on fake copies of those datasets.

- tomosegmemtv: import its tomogram, segment it with the default model, check the outputs through tomo's test
  layer (sizes, sampling rate, the voxel size in the MRC headers).
- emd_10439: import the tomogram, bin it with "preprocess tomograms" to the binning of the dataset's TARDIS
  membrane mask (tomomaskByTardisBin2), segment, and evaluate against that mask with a Dice floor.

The datasets come from the Scipion server (``scipion3 testdata --download tomosegmemtv``, ``... emd_10439``); where
they are absent these tests skip and say so. The ``...OnFakeData`` classes run the very same tests with the
datasets read from a temporary folder laid out as SCIPION_TESTS: phantom volumes under the datasets' file names.
"""
import os
import shutil
import tempfile

import numpy as np
from pyworkflow.tests import setupTestProject
from pyworkflow.utils import magentaStr
from tomo.tests import EMD_10439, TOMOSEGMEMTV_TEST_DATASET, DataSet_Tomosegmemtv, DataSetEmd10439
from tomo.tests.test_base_centralized_layer import TestBaseCentralizedLayer

from membraneseg.constants import OUT_MASKS, OUT_PROBS, OUT_TOMOS
from membraneseg.engine.core import io
from membraneseg.engine.measurement import metrics
from membraneseg.engine.simulation import phantoms
from membraneseg.protocols import ProtMembraneSegEvaluate, ProtMembraneSegPreprocess, ProtMembraneSegSegment
from membraneseg.protocols.protocol_preprocess import BIN_FACTOR
from membraneseg.tests import datasets
from membraneseg.tests.common import import_tomograms
from membraneseg.tests.test_protocol_clean import import_masks

# The reference is TARDIS's own prediction, not a manual annotation, and the default (starter) model has seen only
# simple phantoms; the default-model recipe's first arm, trained on real slices, reached Dice 0.23 on real fields
# it never saw (model card). 0.10, under half of that, is a conservative floor that still fails a model finding
# nothing, and the test also asks for more than an all-membrane mask would score. Not measured here (this machine
# cannot download emd_10439): re-measure on a machine with the data and set the floor to about 80% of the value.
DICE_FLOOR = 0.10


def segment(test, tomograms):
    print(magentaStr("\n==> Segmenting with the default model"))
    prot = test.newProtocol(ProtMembraneSegSegment, inputTomograms=tomograms, binThreads=2)
    test.launchProtocol(prot)
    return getattr(prot, OUT_MASKS), getattr(prot, OUT_PROBS)


def importDataSetTomogram(test, path, samplingRate):
    return import_tomograms(test, os.path.dirname(path), os.path.basename(path), samplingRate=samplingRate)


class TestTomosegmemtv(TestBaseCentralizedLayer):
    # tomo registers this tomogram at a nominal 1 Å/px, which the segment protocol rightly refuses to resample
    # ten-fold for a 10 Å/px model. The tomosegmemtv plugin's own test sets its membranes 2 px thick, so a 4 nm
    # bilayer puts it near 20 Å/px: it is imported at that.
    sRate = 20.0
    dims = DataSet_Tomosegmemtv.tomoDims.value          # X, Y, Z

    @classmethod
    def setUpClass(cls):
        cls.ds = datasets.getScipionTomoDataSet(TOMOSEGMEMTV_TEST_DATASET, DataSet_Tomosegmemtv.tomogram.name)
        setupTestProject(cls)
        cls.tomograms = importDataSetTomogram(cls, cls.ds.getFile(DataSet_Tomosegmemtv.tomogram.name), cls.sRate)

    def test_segment_with_default_model(self):
        masks, probs = segment(self, self.tomograms)
        for outSet in (masks, probs):
            self.checkTomoMasks(outSet, expectedSetSize=1, expectedSRate=self.sRate, expectedDimensions=self.dims)
            self.assertEqual(outSet.getFirstItem().getVolName(), self.tomograms.getFirstItem().getFileName())
        self.assertTrue(set(np.unique(io.read(masks.getFirstItem().getFileName()).data)) <= {0, 1})


class TestEmd10439(TestBaseCentralizedLayer):
    binFactor = DataSetEmd10439.binFactor.value          # the binning of tomomaskByTardisBin2

    @classmethod
    def setUpClass(cls):
        cls.ds = datasets.getScipionTomoDataSet(EMD_10439, DataSetEmd10439.tomoEmd10439.name,
                                                DataSetEmd10439.tomoMaskByTardisBin2.name)
        setupTestProject(cls)
        cls.tomograms = importDataSetTomogram(cls, cls.ds.getFile(DataSetEmd10439.tomoEmd10439.name),
                                              DataSetEmd10439.unbinnedSRate.value)
        print(magentaStr("\n==> Binning by %d" % cls.binFactor))
        prot = cls.newProtocol(ProtMembraneSegPreprocess, inputTomograms=cls.tomograms, binMode=BIN_FACTOR,
                               binFactor=cls.binFactor, doEed=False, doClahe=False, binThreads=2)
        cls.launchProtocol(prot)
        cls.binned = getattr(prot, OUT_TOMOS)
        maskPath = cls.ds.getFile(DataSetEmd10439.tomoMaskByTardisBin2.name)
        cls.reference = import_masks(cls, os.path.dirname(maskPath), cls.binned, os.path.basename(maskPath))

    def test_binned_onto_the_reference_grid(self):
        self.checkTomograms(self.binned, expectedSetSize=1, expectedSRate=DataSetEmd10439.bin2SRate.value,
                            expectedDimensions=list(self.reference.getFirstItem().getDimensions()))

    def test_segment_and_evaluate_against_tardis_mask(self):
        masks, probs = segment(self, self.binned)
        dims = list(self.binned.getFirstItem().getDimensions())
        for outSet in (masks, probs):
            self.checkTomoMasks(outSet, expectedSetSize=1, expectedSRate=DataSetEmd10439.bin2SRate.value,
                                expectedDimensions=dims)
        print(magentaStr("\n==> Evaluating against the TARDIS membrane mask"))
        prot = self.newProtocol(ProtMembraneSegEvaluate, inputMasks=probs, referenceMasks=self.reference)
        self.launchProtocol(prot)
        result, = prot.getReport()["tomograms"]
        ref = np.asarray(io.read(self.reference.getFirstItem().getFileName()).data) > 0
        allMembrane = metrics.dice(np.ones_like(ref), ref)
        print("emd_10439 against TARDIS: Dice %.3f, tolerant Dice %.3f (all-membrane mask: %.3f)"
              % (result["dice"], result["tolerant_dice"], allMembrane))
        self.assertGreaterEqual(result["dice"], DICE_FLOOR)
        self.assertGreater(result["dice"], allMembrane)


# ----------------------------------------------------------------------------- the same tests on fake datasets
class FakeDataSets:
    """Runs the tests of the class it is mixed into with every registered dataset read from a temporary folder,
    in which ``writeFakeData(root)`` put phantom volumes under the real datasets' relative file names."""

    @classmethod
    def setUpClass(cls):
        root = tempfile.mkdtemp(prefix="membraneseg-fake-scipion-tests-")
        cls.addClassCleanup(shutil.rmtree, root, ignore_errors=True)
        cls.writeFakeData(root)
        cls.enterClassContext(datasets.testsFolder(root))
        super().setUpClass()


class TestTomosegmemtvOnFakeData(FakeDataSets, TestTomosegmemtv):
    @staticmethod
    def writeFakeData(root):
        x, y, z = DataSet_Tomosegmemtv.tomoDims.value
        tomo, _ = phantoms.simple_phantom((z, y, x), TestTomosegmemtv.sRate, seed=1155)
        path = os.path.join(root, TOMOSEGMEMTV_TEST_DATASET, DataSet_Tomosegmemtv.tomogram.value)
        os.makedirs(os.path.dirname(path))
        io.write(path, tomo, DataSet_Tomosegmemtv.sRate.value)


class TestEmd10439OnFakeData(FakeDataSets, TestEmd10439):
    shape = (64, 192, 192)        # Z, Y, X: small, and even so that binning by 2 leaves no remainder

    @classmethod
    def writeFakeData(cls, root):
        b = cls.binFactor
        tomo, labels = phantoms.simple_phantom(cls.shape, DataSetEmd10439.unbinnedSRate.value, seed=10439, snr=2.0)
        # the reference at bin 2: a binned voxel is membrane where any of its voxels is (TARDIS masks are thick)
        reference = (labels > 0).reshape(cls.shape[0] // b, b, cls.shape[1] // b, b, cls.shape[2] // b, b)
        reference = reference.max(axis=(1, 3, 5)).astype(np.uint8)
        for key, data, sRate in ((DataSetEmd10439.tomoEmd10439, tomo, DataSetEmd10439.unbinnedSRate.value),
                                 (DataSetEmd10439.tomoMaskByTardisBin2, reference, DataSetEmd10439.bin2SRate.value)):
            path = os.path.join(root, EMD_10439, key.value)
            os.makedirs(os.path.dirname(path))
            io.write(path, data, sRate)
