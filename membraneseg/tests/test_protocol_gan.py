"""Headless Scipion tests of the GAN chain: phantoms -> "train mask-to-image GAN" -> "generate synthetic pairs"
(from the phantoms' label maps) -> "train membrane model" with the pairs mixed in; the viewers' grids; and the
checks on the forms."""
import csv
import os

import numpy as np
from pyworkflow.tests import setupTestProject
from pyworkflow.utils import magentaStr
from tomo.tests.test_base_centralized_layer import TestBaseCentralizedLayer

from membraneseg.constants import OUT_LABELS, OUT_MODEL, OUT_TOMOS
from membraneseg.engine.core import io
from membraneseg.objects import MembraneSegPairs
from membraneseg.protocols import (ProtMembraneSegGeneratePairs, ProtMembraneSegPhantoms, ProtMembraneSegTrain,
                                   ProtMembraneSegTrainGan)
from membraneseg.protocols.protocol_gan import OUT_GAN, OUT_PAIRS
from membraneseg.protocols.protocol_phantoms import KINDS
from membraneseg.protocols.protocol_train import PRESETS
from membraneseg.tests.common import sourceParents
from membraneseg.viewers.viewer_gan import MembraneSegGanViewer

SHAPE = (16, 64, 64)          # Z, Y, X
VOXEL = 10.0
GAN = dict(size=64, filters=8, epochs=2, steps=3, batchSize=2, binThreads=2)
COUNT = 6


class TestGanChain(TestBaseCentralizedLayer):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        print(magentaStr("\n==> 3 simple phantoms of %s voxels" % (SHAPE,)))
        cls.phantoms = cls.newProtocol(ProtMembraneSegPhantoms, count=3, kind=KINDS.index("simple"),
                                       sizeZ=SHAPE[0], sizeY=SHAPE[1], sizeX=SHAPE[2], voxelSize=VOXEL, seed=5)
        cls.launchProtocol(cls.phantoms)
        cls.tomos, cls.labels = getattr(cls.phantoms, OUT_TOMOS), getattr(cls.phantoms, OUT_LABELS)

    def test_gan_pairs_feed_training(self):
        print(magentaStr("\n==> Training the GAN"))
        ganProt = self.newProtocol(ProtMembraneSegTrainGan, inputTomograms=self.tomos, inputMasks=self.labels, **GAN)
        self.launchProtocol(ganProt)
        gan = getattr(ganProt, OUT_GAN)
        card = gan.getCard()
        self.assertEqual(card["size"], 64)
        self.assertEqual(card["epochs_run"], 2)
        self.assertAlmostEqual(gan.getPixelSize(), VOXEL)
        self.assertTrue({self.tomos.getObjId(), self.labels.getObjId()} <= sourceParents(self.proj, gan))
        self.assertIn("generator L1", " ".join(ganProt.summary()))

        print(magentaStr("\n==> Generating %d pairs from the label maps" % COUNT))
        genProt = self.newProtocol(ProtMembraneSegGeneratePairs, inputGan=gan, inputMasks=self.labels, count=COUNT,
                                   seed=3, binThreads=2)
        self.launchProtocol(genProt)
        pairs = getattr(genProt, OUT_PAIRS)
        self.assertIsInstance(pairs, MembraneSegPairs)
        self.assertEqual(pairs.getCount(), COUNT)
        self.assertAlmostEqual(pairs.getPixelSize(), VOXEL)
        images, masks = sorted(os.listdir(pairs.getImagesFolder())), sorted(os.listdir(pairs.getMasksFolder()))
        self.assertEqual(len(images), COUNT)
        self.assertEqual(images, masks)
        for name in masks:
            values = set(np.unique(io.read(os.path.join(pairs.getMasksFolder(), name)).data))
            self.assertTrue(values <= {0, 255} and 255 in values, (name, values))
            image = io.read(os.path.join(pairs.getImagesFolder(), name)).data
            self.assertEqual(image.shape[1:], (64, 64))
            self.assertGreater(float(image.std()), 0)
        with open(os.path.join(pairs.getPath(), "pairs.csv")) as f:
            self.assertEqual(len(list(csv.DictReader(f))), COUNT)
        self.assertIn(gan.getObjId(), sourceParents(self.proj, pairs))

        print(magentaStr("\n==> Training with the synthetic pairs mixed in"))
        trainProt = self.newProtocol(ProtMembraneSegTrain, inputTomograms=self.tomos, inputMasks=self.labels,
                                     syntheticPairs=pairs, syntheticFraction=0.5, preset=PRESETS.index("tiny"),
                                     patchSize=64, batchSize=4, epochs=1, stepsPerEpoch=3, binThreads=2)
        self.launchProtocol(trainProt)
        model = getattr(trainProt, OUT_MODEL)
        prov = model.getCard()["provenance"]
        self.assertEqual(prov["synthetic_items"], COUNT)
        self.assertEqual(prov["config"]["synthetic_fraction"], 0.5)
        self.assertTrue(all("syn_" not in item for item in prov["val_items"] + prov["test_items"]))
        self.assertIn(pairs.getObjId(), sourceParents(self.proj, model))
        self.assertIn("50% of the training patches came from", " ".join(trainProt.summary()))

        # the viewer's grids: one per GAN epoch, and the generated pairs' grid
        viewer = MembraneSegGanViewer(project=self.proj)
        written = viewer.writePngs(gan, self.getOutputPath("gan-grids"))
        self.assertEqual([os.path.basename(p) for p in written], ["epoch_001.png", "epoch_002.png"])
        written = viewer.writePngs(genProt, self.getOutputPath("pair-grid"))
        self.assertEqual([os.path.basename(p) for p in written], ["grid.png"])
        self.assertGreater(os.path.getsize(written[0]), 1000)

    def test_forms_refuse_bad_settings(self):
        prot = self.newProtocol(ProtMembraneSegTrainGan, size=100, membraneLabels="membrane")
        errors = "\n".join(prot.validate())
        for text in ("Nothing to learn from", "GAN size 100 px is not usable", "not 'membrane'"):
            self.assertIn(text, errors)
        prot = self.newProtocol(ProtMembraneSegTrainGan, inputTomograms=self.tomos)
        self.assertIn("The tomograms need their label maps", "\n".join(prot.validate()))
        prot = self.newProtocol(ProtMembraneSegGeneratePairs, masksFolder="/nowhere")
        errors = "\n".join(prot.validate())
        self.assertIn("The masks folder /nowhere does not exist", errors)
        prot = self.newProtocol(ProtMembraneSegGeneratePairs)
        self.assertIn("No masks to draw from", "\n".join(prot.validate()))
