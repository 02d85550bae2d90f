"""The Scipion Plugin: configuration variables, the model environment, and the one helper that runs the engine."""
import os
import shlex
import shutil
import sys

import pwem

from .constants import (ENGINE_REQUIREMENTS, ENV_ACTIVATION_VAR, ENV_NAME, MODEL_VAR, TENSORFLOW_GPU_REQUIREMENT,
                        TENSORFLOW_REQUIREMENT, VERSION)

PACKAGE_NAME = "membraneseg"
ENV_FLAG = "membraneseg-env-ready"
# The folder that holds the ``membraneseg`` package: the engine runs from it, whatever environment it is in.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Plugin(pwem.Plugin):
    # Scipion finds a plugin's name, path and version through Plugin.__module__; the class lives here so that
    # importing the package does not import Scipion, but it belongs to the package.
    __module__ = "membraneseg"
    _url = "https://github.com/scipion-em/scipion-em-membraneseg"
    _supportedVersions = [VERSION]

    @classmethod
    def _defineVariables(cls):
        cls._defineVar(ENV_ACTIVATION_VAR, cls._defaultActivation(),
                       description="Command that enters the membraneseg model environment (conda by default, "
                                   "a venv where conda is absent).")
        cls._defineVar(MODEL_VAR, "", description="Model folder used when a protocol is given none; empty "
                                                  "means the model shipped with the plugin.")

    # ------------------------------------------------------------------ environment
    @classmethod
    def _condaAvailable(cls):
        return bool(shutil.which("conda") or os.environ.get("CONDA_ACTIVATION_CMD"))

    @classmethod
    def _venvDir(cls):
        return os.path.join(pwem.Config.EM_ROOT, ENV_NAME, "venv")

    @classmethod
    def _defaultActivation(cls):
        if cls._condaAvailable():
            return "conda activate %s" % ENV_NAME
        return ". %s" % shlex.quote(os.path.join(cls._venvDir(), "bin", "activate"))

    @classmethod
    def getActivation(cls):
        """The full shell prefix that enters the environment, ending in '&&'."""
        activation = cls.getVar(ENV_ACTIVATION_VAR) or "true"
        conda = cls.getCondaActivationCmd() if activation.startswith("conda ") else ""
        return "%s %s &&" % (conda, activation)

    @classmethod
    def validateInstallation(cls):
        """Errors telling how to install the model environment when its default venv is missing."""
        activation = cls.getVar(ENV_ACTIVATION_VAR) or ""
        if activation == cls._defaultActivation() and not cls._condaAvailable() \
                and not os.path.exists(os.path.join(cls._venvDir(), "bin", "activate")):
            return ["The membraneseg model environment is not installed (%s is missing). Install it with: "
                    "scipion3 installb %s (or set %s to the command that enters an environment with TensorFlow)."
                    % (cls._venvDir(), ENV_NAME, ENV_ACTIVATION_VAR)]
        return []

    @classmethod
    def defineBinaries(cls, env):
        gpu = shutil.which("nvidia-smi") is not None
        requirements = [TENSORFLOW_GPU_REQUIREMENT if gpu else TENSORFLOW_REQUIREMENT] + ENGINE_REQUIREMENTS
        pip_args = " ".join(shlex.quote(r) for r in requirements)
        if cls._condaAvailable():
            conda = cls.getCondaActivationCmd()
            command = ("%s conda create -y -n %s python=3.11 && %s conda activate %s && pip install %s && touch %s"
                       % (conda, ENV_NAME, conda, ENV_NAME, pip_args, ENV_FLAG))
        else:
            command = ("%s -m venv venv && venv/bin/pip install %s && touch %s"
                       % (shlex.quote(sys.executable), pip_args, ENV_FLAG))
        env.addPackage(PACKAGE_NAME, version=VERSION, tar="void.tgz", commands=[(command, ENV_FLAG)],
                       neededProgs=[], default=True)

    # ------------------------------------------------------------------ running the engine
    @classmethod
    def getEngineProgram(cls, useGpu=True):
        """The shell program that runs ``python -m membraneseg.engine`` inside the environment. With a GPU the
        %(GPU)s placeholder lets Scipion (and its queue templates) choose the device; without, all are hidden."""
        devices = "%(GPU)s" if useGpu else "-1"
        return ("%s CUDA_VISIBLE_DEVICES=%s PYTHONPATH=%s${PYTHONPATH:+:$PYTHONPATH} python -m membraneseg.engine"
                % (cls.getActivation(), devices, shlex.quote(PACKAGE_PARENT)))

    @classmethod
    def engineArguments(cls, command, args, useGpu=True):
        """Quote every argument for the shell, so file names with spaces, quotes, ';', '$()' or backticks are
        passed as data. With the GPU placeholder pyworkflow applies '%' formatting to the arguments, so literal
        '%' signs are doubled."""
        line = " ".join(shlex.quote(str(a)) for a in [command] + list(args))
        return line.replace("%", "%%") if useGpu else line

    @classmethod
    def runEngine(cls, protocol, command, args, useGpu=False, threads=1):
        """Run one engine command for ``protocol`` through runJob, so that it also works through Scipion's
        queue system (hosts.conf)."""
        args = list(args) + ["--threads", str(max(1, int(threads)))]
        if not useGpu:
            args += ["--device", "cpu"]
        protocol.runJob(cls.getEngineProgram(useGpu), cls.engineArguments(command, args, useGpu),
                        env=cls.getEnviron(), numberOfThreads=1)

    @classmethod
    def getEnviron(cls):
        return pwem.pwutils.Environ(os.environ)

    @classmethod
    def getDefaultModel(cls):
        """The model folder protocols use when given none."""
        from .engine.network.modelfile import default_model_path
        return cls.getVar(MODEL_VAR) or default_model_path(volumes=True)   # protocols segment tomograms
