"""Headless Scipion tests of "generate phantoms" and "train membrane model": phantoms -> pretraining (2.5D, tiny
preset) -> fine-tuning on 2D slices cut from phantoms -> segmentation with the fine-tuned model; the checks on
the input pairing; and a stopped run that, continued, resumes its training."""
import json
import os
import time

import numpy as np
from pyworkflow.tests import setupTestProject
from pyworkflow.utils import magentaStr
from tomo.tests.test_base_centralized_layer import TestBaseCentralizedLayer

from membraneseg.constants import OUT_LABELS, OUT_MASKS, OUT_MODEL, OUT_TOMOS
from membraneseg.engine.core import io
from membraneseg.protocols import ProtMembraneSegPhantoms, ProtMembraneSegSegment, ProtMembraneSegTrain
from membraneseg.protocols.protocol_phantoms import KINDS, RAW_CHOICES
from membraneseg.protocols.protocol_train import PRESETS
from membraneseg.tests.common import sourceParents

SHAPE = (32, 112, 112)      # Z, Y, X
VOXEL = 10.0
# small and quick: the tiny preset on 96 px patches
TINY = dict(preset=PRESETS.index("tiny"), patchSize=96, batchSize=4, binThreads=2)


def dims(shape):
    """Scipion's [X, Y, Z] of a (Z, Y, X) shape."""
    return [shape[2], shape[1], shape[0]]


class TestTrainChain(TestBaseCentralizedLayer):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.phantoms = cls.makePhantoms(count=4)
        cls.tomos, cls.labels = getattr(cls.phantoms, OUT_TOMOS), getattr(cls.phantoms, OUT_LABELS)

    @classmethod
    def makePhantoms(cls, count, shape=SHAPE, voxel=VOXEL, kind="simple", seed=0):
        print(magentaStr("\n==> %d %s phantoms of %s voxels at %g Å" % (count, kind, shape, voxel)))
        prot = cls.newProtocol(ProtMembraneSegPhantoms, count=count, kind=KINDS.index(kind), sizeZ=shape[0],
                               sizeY=shape[1], sizeX=shape[2], voxelSize=voxel, seed=seed)
        cls.launchProtocol(prot)
        return prot

    def _train(self, **kwargs):
        print(magentaStr("\n==> Training with %s" % sorted(kwargs)))
        prot = self.newProtocol(ProtMembraneSegTrain, **dict(TINY, **kwargs))
        self.launchProtocol(prot)
        return prot

    def _checkModel(self, prot, context):
        """The model object against its card and its training history; returns the card."""
        model = getattr(prot, OUT_MODEL)
        card = model.getCard()
        self.assertEqual(model.getPreset(), "tiny")
        self.assertEqual(model.getContext(), context)
        self.assertAlmostEqual(model.getPixelSize(), VOXEL)
        self.assertTrue(0 < model.getThreshold() < 1)
        self.assertEqual(model.getThreshold(), card["threshold"])
        with open(os.path.join(model.getPath(), "training_history.json")) as f:
            history = json.load(f)["epochs"]
        self.assertEqual([row["epoch"] for row in history], list(range(1, card["provenance"]["epochs_run"] + 1)))
        for row in history:
            self.assertTrue({"loss", "val_loss", "val_dice"} <= set(row), row)
        self.assertFalse(os.path.exists(os.path.join(model.getPath(), "checkpoint")))
        return card

    def test_phantoms_are_paired_by_tsId(self):
        self.checkTomograms(self.tomos, expectedSetSize=4, expectedSRate=VOXEL, expectedDimensions=dims(SHAPE))
        self.checkTomoMasks(self.labels, expectedSetSize=4, expectedSRate=VOXEL, expectedDimensions=dims(SHAPE))
        files = {t.getTsId(): t.getFileName() for t in self.tomos}
        self.assertEqual(sorted(files), ["phantom_000", "phantom_001", "phantom_002", "phantom_003"])
        for label in self.labels:
            self.assertEqual(label.getVolName(), files[label.getTsId()])
            self.assertEqual(label.membranesegKind.get(), "labels")
            values = np.unique(io.read(label.getFileName()).data)
            self.assertEqual(set(values), {0, 1})
        self.assertIn(self.tomos.getObjId(), sourceParents(self.proj, self.labels))

    def test_cell_phantoms(self):
        prot = self.makePhantoms(count=1, shape=(32, 96, 96), kind="cell", seed=3)
        tomos, labels = getattr(prot, OUT_TOMOS), getattr(prot, OUT_LABELS)
        self.checkTomograms(tomos, expectedSetSize=1, expectedSRate=VOXEL, expectedDimensions=dims((32, 96, 96)))
        self.checkTomoMasks(labels, expectedSetSize=1, expectedSRate=VOXEL)
        values = set(np.unique(io.read(labels.getFirstItem().getFileName()).data))
        self.assertTrue(values <= {0, 1, 2, 3, 4} and values & {1, 2}, values)
        self.assertEqual(tomos.getAcquisition().getAngleMax(), 60.0)
        self.assertIn("4 macromolecule", " ".join(prot.summary()))

    def test_raw_phantoms(self):
        shape = (40, 96, 96)
        prot = self.newProtocol(ProtMembraneSegPhantoms, count=2, kind=KINDS.index("raw"), sizeZ=shape[0],
                                sizeY=shape[1], sizeX=shape[2], voxelSize=20.0, seed=4, tiltRange=50.0,
                                tiltStep=5.0, rawDefocus=-3.0, rawDose=80.0, rawThickness=150.0,
                                rawPolarity=RAW_CHOICES["rawPolarity"][1].index("bright"),
                                rawContamination=RAW_CHOICES["rawContamination"][1].index("yes"),
                                rawIceAbsorption=0.5)
        self.launchProtocol(prot)
        tomos, labels = getattr(prot, OUT_TOMOS), getattr(prot, OUT_LABELS)
        # Z: 150 nm at 20 Å is 75 voxels, more than the size's 40, so the volume is 40 deep
        self.checkTomograms(tomos, expectedSetSize=2, expectedSRate=20.0, expectedDimensions=dims(shape))
        self.checkTomoMasks(labels, expectedSetSize=2, expectedSRate=20.0)
        self.assertEqual(tomos.getAcquisition().getAngleMax(), 50.0)
        for tomo in tomos:
            with open(tomo.getFileName()[:-len(".mrc")] + ".json") as f:
                settings = json.load(f)
            self.assertEqual((settings["defocus"], settings["dose"], settings["thickness"], settings["polarity"],
                              settings["contamination"], settings["ice_absorption"]),
                             (30000.0, 80.0, 1500.0, "bright", True, 0.5))
        self.assertIn("5 carbon film", " ".join(prot.summary()))

    def test_pretrain_finetune_segment(self):
        # pretraining: a 2.5D model on the phantoms (2 train, 1 validation, 1 test tomogram)
        pre = self._train(inputTomograms=self.tomos, inputMasks=self.labels, context=3, epochs=3, stepsPerEpoch=4)
        card = self._checkModel(pre, context=3)
        self.assertEqual(len(card["provenance"]["test_items"]), 1)
        self.assertIn("dice", card["provenance"]["test"])
        parents = sourceParents(self.proj, getattr(pre, OUT_MODEL))
        self.assertTrue({self.tomos.getObjId(), self.labels.getObjId()} <= parents)
        self.assertIn("Held-out test split: Dice", " ".join(pre.summary()))

        # fine-tuning on 2D slices with their masks, grouped by phantom; the 2.5D model sees repeated context
        folder = self.getOutputPath("slices")
        groups = self.writeSlices(folder)
        fine = self._train(imagesFolder=os.path.join(folder, "images"), masksFolder=os.path.join(folder, "masks"),
                           groupsFile=groups, inputModel=getattr(pre, OUT_MODEL), epochs=2, stepsPerEpoch=3,
                           learningRate=1e-4)
        self.assertIn("1 images in", " ".join(fine.warnings()))            # the slice without a mask
        card = self._checkModel(fine, context=3)
        prov = card["provenance"]
        self.assertEqual(prov["config"]["start_model"], os.path.abspath(getattr(pre, OUT_MODEL).getPath()))
        self.assertEqual(len(prov["train_items"] + prov["val_items"] + prov["test_items"]), 12)
        self.assertEqual(len(prov["validation"]["groups"]), 1)             # one whole phantom validates
        self.assertNotIn("unlabelled", " ".join(prov["train_items"]))
        self.assertIn(getattr(pre, OUT_MODEL).getObjId(), sourceParents(self.proj, getattr(fine, OUT_MODEL)))
        self.assertIn("fine-tuned with scipion-em-membraneseg", " ".join(fine.methods()))

        # segmentation with the fine-tuned model and its calibrated threshold
        model = getattr(fine, OUT_MODEL)
        seg = self.newProtocol(ProtMembraneSegSegment, inputTomograms=self.tomos, inputModel=model, binThreads=2)
        self.launchProtocol(seg)
        masks = getattr(seg, OUT_MASKS)
        self.checkTomoMasks(masks, expectedSetSize=4, expectedSRate=VOXEL, expectedDimensions=dims(SHAPE))
        self.assertEqual({m.membranesegThreshold.get() for m in masks}, {model.getThreshold()})
        self.assertIn(model.getObjId(), sourceParents(self.proj, masks))

    def test_partially_annotated_tomograms(self):
        # the phantoms' label maps, taken as annotated on three z-slices each: the others never reach the loss
        prot = self._train(inputTomograms=self.tomos, inputMasks=self.labels, annotatedSlices="4 12 20",
                           epochs=1, stepsPerEpoch=2)
        prov = self._checkModel(prot, context=1)["provenance"]
        self.assertEqual(prov["config"]["annotated_slices"], "4 12 20")
        self.assertEqual(prov["annotated"]["slices"], 3 * len(prov["train_items"]))
        self.assertEqual(prov["annotated"]["voxels"], 3 * SHAPE[1] * SHAPE[2] * len(prov["train_items"]))
        self.assertIn("Trained on %d annotated slices" % prov["annotated"]["slices"], " ".join(prot.summary()))
        bad = self.newProtocol(ProtMembraneSegTrain, inputTomograms=self.tomos, inputMasks=self.labels,
                               annotatedSlices="4 and 12", **TINY)
        self.assertIn("Annotated slices must be", " ".join(bad.validate()))

    def writeSlices(self, folder):
        """Three z-slices of each phantom as 8-bit PNGs with 0/255 masks, one image without a mask, and a CSV
        grouping the slices by phantom; returns the CSV's path."""
        for sub in ("images", "masks"):
            os.makedirs(os.path.join(folder, sub), exist_ok=True)
        rows = ["image,group"]
        labels = {m.getTsId(): m.getFileName() for m in self.labels}
        for tomo in self.tomos:
            data, lab = io.read(tomo.getFileName()).data, io.read(labels[tomo.getTsId()]).data
            low, high = np.percentile(data, (1, 99))
            for z in (8, 16, 24):
                name = "%s_z%02d.png" % (tomo.getTsId(), z)
                image = np.clip((data[z] - low) / (high - low) * 255, 0, 255).astype(np.uint8)
                io.write(os.path.join(folder, "images", name), image)
                io.write(os.path.join(folder, "masks", name), (lab[z] > 0).astype(np.uint8) * 255)
                rows.append("%s,%s" % (name, tomo.getTsId()))
        io.write(os.path.join(folder, "images", "unlabelled.png"), image)
        path = os.path.join(folder, "groups.csv")
        with open(path, "w") as f:
            f.write("\n".join(rows) + "\n")
        return path

    def test_mismatched_inputs_are_refused_with_the_tsId(self):
        other = self.makePhantoms(count=5, shape=(16, 64, 96), voxel=12.0, seed=9)
        prot = self.newProtocol(ProtMembraneSegTrain, inputTomograms=self.tomos,
                                inputMasks=getattr(other, OUT_LABELS))
        errors = "\n".join(prot.validate())
        self.assertIn("Label map(s) phantom_004 have no tomogram with the same tsId (4 tomograms, 5 label maps)",
                      errors)
        self.assertIn("phantom_000: the tomogram is 112 x 112 x 32 voxels but its label map is 96 x 64 x 16.",
                      errors)
        self.assertIn("phantom_003: the tomogram is at 10.000 Å/px but its label map at 12.000 Å/px.", errors)
        prot = self.newProtocol(ProtMembraneSegTrain, inputTomograms=getattr(other, OUT_TOMOS),
                                inputMasks=self.labels)
        self.assertIn("No label map has the tsId of tomogram(s) phantom_004", "\n".join(prot.validate()))
        prot = self.newProtocol(ProtMembraneSegTrain, inputTomograms=self.tomos)
        self.assertIn("The tomograms need their label maps", "\n".join(prot.validate()))
        prot = self.newProtocol(ProtMembraneSegTrain, context=4, membraneLabels="1 membrane")
        errors = "\n".join(prot.validate())
        for text in ("Nothing to train on", "odd number of slices", "not '1 membrane'"):
            self.assertIn(text, errors)
        prot = self.newProtocol(ProtMembraneSegTrain, imagesFolder=self.getOutputPath(), masksFolder="/nowhere")
        self.assertIn("need a masks folder (/nowhere does not exist)", "\n".join(prot.validate()))

    def test_presets_match_the_engine(self):
        from membraneseg.engine.network.model import PRESETS as ENGINE_PRESETS
        self.assertEqual(set(PRESETS), set(ENGINE_PRESETS))

    def test_continued_run_resumes_training(self):
        prot = self.newProtocol(ProtMembraneSegTrain, inputTomograms=self.tomos, inputMasks=self.labels,
                                epochs=4, stepsPerEpoch=3, **TINY)
        print(magentaStr("\n==> Training, to be stopped after its first epoch"))
        self.proj.launchProtocol(prot, wait=False)
        metadata = prot._getExtraPath("model", "checkpoint", "training_metadata.json")
        deadline = time.time() + 600
        while not os.path.exists(metadata) and time.time() < deadline:
            time.sleep(0.5)
        self.assertTrue(os.path.exists(metadata), "the training wrote no checkpoint")
        self.proj.stopProtocol(prot)
        self.assertTrue(prot.isAborted())
        history = prot._getExtraPath("model", "training_history.json")
        with open(history) as f:
            before = json.load(f)["epochs"]

        print(magentaStr("\n==> Continuing it"))
        self.launchProtocol(prot)            # the default run mode resumes: unfinished steps run again
        card = self._checkModel(prot, context=1)
        with open(history) as f:
            after = json.load(f)["epochs"]
        done = card["provenance"]["resumed_after_epoch"]
        self.assertGreaterEqual(done, 1)
        self.assertEqual(after[:done], before[:done])              # the epochs checkpointed before the stop were kept
        self.assertEqual(card["provenance"]["epochs_run"], len(after))
