"""Protocol "import membrane model": bring a model folder trained elsewhere into the project, checked on load."""
import os
import shutil

from pwem.protocols import EMProtocol
from pyworkflow import BETA
from pyworkflow.protocol import params
from pyworkflow.utils import Message

from .. import Plugin
from ..constants import OUT_MODEL
from ..engine.network import modelfile
from ..objects import MembraneSegModel
from .base import runEngineExplained


class ProtMembraneSegImportModel(EMProtocol):
    """Import a membraneseg model folder (membraneseg_model.json + model.weights.h5), for example one trained
    on another machine or shared by a colleague. The weights are checked against the checksum in the card and
    loaded into the network the card describes; a folder that fails either check is refused."""
    _label = "import membrane model"
    _devStatus = BETA
    _possibleOutputs = {OUT_MODEL: MembraneSegModel}

    def _defineParams(self, form):
        form.addSection(label=Message.LABEL_INPUT)
        form.addParam("modelPath", params.PathParam, important=True, label="Model folder",
                      help="Folder holding membraneseg_model.json and model.weights.h5 (or the JSON file "
                           "itself). It is copied into the project, so later changes to it do not affect runs.")

    def _insertAllSteps(self):
        self._insertFunctionStep(self.copyStep)
        self._insertFunctionStep(self.checkStep)
        self._insertFunctionStep(self.createOutputStep)

    def _modelDir(self):
        return self._getExtraPath("model")

    def copyStep(self):
        source = modelfile.model_folder(self.modelPath.get())
        shutil.rmtree(self._modelDir(), ignore_errors=True)
        os.makedirs(self._modelDir())
        for name in (modelfile.MODEL_JSON, modelfile.MODEL_WEIGHTS):
            shutil.copy2(os.path.join(source, name), self._modelDir())

    def checkStep(self):
        # loading needs TensorFlow, so it runs in the model environment like every engine command
        runEngineExplained(self, "inspect-model", [self._modelDir()])

    def createOutputStep(self):
        model = MembraneSegModel(path=os.path.abspath(self._modelDir()))
        self._defineOutputs(**{OUT_MODEL: model})

    def _validate(self):
        errors = list(Plugin.validateInstallation())
        try:
            card = modelfile.read_card(self.modelPath.get())
            modelfile.verify_weights(modelfile.model_folder(self.modelPath.get()), card)
        except modelfile.ModelError as exc:
            errors.append(str(exc))
        return errors

    def _summary(self):
        model = getattr(self, OUT_MODEL, None)
        return ["Imported %s from %s" % (model, self.modelPath.get())] if model is not None else []

    def _citations(self):
        return ["MoralesMartinez2025"]
