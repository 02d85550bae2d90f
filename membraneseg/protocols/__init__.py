from .protocol_import_model import ProtMembraneSegImportModel  # noqa: F401
from .protocol_preprocess import ProtMembraneSegPreprocess  # noqa: F401
from .protocol_segment import ProtMembraneSegSegment  # noqa: F401
from .protocol_clean import ProtMembraneSegClean  # noqa: F401
from .protocol_vesicles import ProtMembraneSegVesicles  # noqa: F401
from .protocol_evaluate import ProtMembraneSegEvaluate  # noqa: F401
from .protocol_phantoms import ProtMembraneSegPhantoms  # noqa: F401
from .protocol_train import ProtMembraneSegTrain  # noqa: F401
from .protocol_gan import ProtMembraneSegGeneratePairs, ProtMembraneSegTrainGan  # noqa: F401
