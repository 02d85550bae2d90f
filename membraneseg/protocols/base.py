"""What every per-tomogram protocol of the plugin shares: one step per tomogram in parallel, outputs appended
under the protocol's lock, a failed set, and a close step that runs after all of them.

A subclass defines ``processTomogram(tsId)`` (compose an engine command and run it through
``Plugin.runEngine``) and ``registerTomogram(tsId)`` (append the files it wrote to output sets). A tomogram whose
processing fails goes to the failed set with its reason; the protocol fails only when every tomogram failed.
"""
import os
import signal
import subprocess

from pwem.objects import SetOfImages
from pwem.protocols import EMProtocol
from pyworkflow.object import Set
from pyworkflow.protocol import STEPS_PARALLEL, params
from tomo.objects import SetOfTomograms

from .. import Plugin
from ..constants import ENV_ACTIVATION_VAR, ENV_NAME, OUT_FAILED


def addComputeParams(form, threadsHelp, gpu=True):
    """The compute parameters every engine-running protocol has: the GPU switch and list (hidden, as Scipion
    shows them in the run header) and the threads one engine job uses."""
    if gpu:
        form.addHidden(params.USE_GPU, params.BooleanParam, default=True, label="Use GPU?",
                       help="Run on the GPU(s) below when TensorFlow sees one. Say No to force the CPU.")
        form.addHidden(params.GPU_LIST, params.StringParam, default="0", label="GPU IDs",
                       help="GPU to use, e.g. 0 or 1. With several tomograms and threads, one job per GPU.")
    form.addParam("binThreads", params.IntParam, default=2, validators=[params.GE(1)],
                  expertLevel=params.LEVEL_ADVANCED, label="CPU threads per job", help=threadsHelp)


class EngineKilled(Exception):
    """The engine died of a signal: the run was stopped (Scipion kills the engine before the protocol), or the
    kernel's out-of-memory killer or a scheduler ended it. Not a verdict on the tomogram, so the per-tomogram steps
    let it fail the step, and a continued run does the tomogram again."""


def killedBySignal(exc):
    """The signal that killed the engine's command, or None. The shell Scipion runs it through either passes the
    signal on (negative status) or reports it as 128 + signal."""
    if not isinstance(exc, subprocess.CalledProcessError):
        return None
    code = exc.returncode
    if code < 0:
        return -code
    return code - 128 if code - 128 in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT) else None


def runEngineExplained(protocol, command, args, useGpu=False, threads=1, errorFile=None):
    """Run an engine command for ``protocol``. When the engine refuses its input, this fails with the engine's
    one-line reason (which file, what is wrong) instead of a bare exit status."""
    errorFile = errorFile or protocol._getExtraPath("engine-error.txt")
    if os.path.exists(errorFile):
        os.remove(errorFile)
    try:
        Plugin.runEngine(protocol, command, list(args) + ["--error-file", errorFile], useGpu=useGpu,
                         threads=threads)
    except Exception as exc:
        signum = killedBySignal(exc)
        if signum is not None:
            raise EngineKilled("The membraneseg engine was killed by signal %d (%s): the run was stopped, or the "
                               "machine ran out of memory (run fewer tomograms at once, or a smaller batch), or "
                               "the queue ended the job. Continue the run to do this step again."
                               % (signum, signal.Signals(signum).name)) from exc
        if not os.path.exists(errorFile):
            raise Exception("The membraneseg engine stopped without saying why (%s). If the log shows that it could "
                            "not start (a command or Python module not found), the model environment is missing: "
                            "install it with 'scipion3 installb %s', or set %s to the command that enters an "
                            "environment with TensorFlow." % (exc, ENV_NAME, ENV_ACTIVATION_VAR)) from exc
        with open(errorFile) as f:
            reason = f.read().strip()
        raise Exception(reason) from None


class ProtMembraneSegPerTomo(EMProtocol):
    stepsExecutionMode = STEPS_PARALLEL
    inputAttr = "inputTomograms"   # name of the SetOfTomograms pointer parameter

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.tomoDict = None

    # ------------------------------------------------------------------ steps
    def _insertAllSteps(self):
        self._initialize()
        closeDeps = []
        for tsId in self.tomoDict:
            runId = self._insertFunctionStep(self.processStep, tsId, prerequisites=[], needsGPU=True)
            closeDeps.append(self._insertFunctionStep(self.outputStep, tsId, prerequisites=[runId],
                                                      needsGPU=False))
        self._insertFunctionStep(self.closeStep, prerequisites=closeDeps, needsGPU=False)

    def _initialize(self):
        """Rebuilt on every (re)start, so a continued run finds its tomograms again."""
        self.tomoDict = {tomo.getTsId(): tomo.clone() for tomo in self.getInputSet()}

    def processStep(self, tsId):
        if self.tomoDict is None:
            self._initialize()
        os.makedirs(self.tomoExtra(tsId), exist_ok=True)
        if os.path.exists(self._failurePath(tsId)):   # from an earlier try of this step
            os.remove(self._failurePath(tsId))
        try:
            self.processTomogram(tsId)
        except EngineKilled:      # not the tomogram's fault: the step fails and a continued run repeats it
            raise
        except Exception as exc:  # one bad tomogram must not stop the others
            reason = str(exc).strip()
            self.error("%s failed: %s" % (tsId, reason or type(exc).__name__))
            with open(self._failurePath(tsId), "w") as f:
                f.write(reason or type(exc).__name__)

    def outputStep(self, tsId):
        if self.tomoDict is None:
            self._initialize()
        with self._lock:
            if os.path.exists(self._failurePath(tsId)):
                self._appendFailed(tsId)
            else:
                self.registerTomogram(tsId)

    def closeStep(self):
        if self.tomoDict is None:
            self._initialize()
        self._closeOutputSet()
        failed = [t for t in self.tomoDict if os.path.exists(self._failurePath(t))]
        if failed and len(failed) == len(self.tomoDict):
            reasons = "; ".join("%s: %s" % (t, open(self._failurePath(t)).read()) for t in failed)
            raise Exception("All %d tomograms failed. %s" % (len(failed), reasons))

    # ------------------------------------------------------------------ for subclasses
    def processTomogram(self, tsId):
        raise NotImplementedError

    def registerTomogram(self, tsId):
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers
    def runEngine(self, tsId, command, args):
        """Run one engine command for one tomogram; a refusal fails with the engine's reason, which processStep
        records, so the failed set says why in plain words."""
        useGpu = bool(getattr(self, "useGpu", None) and self.useGpu.get())
        threads = self.binThreads.get() if hasattr(self, "binThreads") else 1
        runEngineExplained(self, command, args, useGpu=useGpu, threads=threads,
                           errorFile=self.tomoExtra(tsId, "engine-error.txt"))

    def getInputSet(self, pointer=False):
        p = getattr(self, self.inputAttr)
        return p if pointer else p.get()

    def tomoExtra(self, tsId, *paths):
        """Each tomogram's files live in extra/<tsId>/."""
        return self._getExtraPath(tsId, *paths)

    def _failurePath(self, tsId):
        return self.tomoExtra(tsId, "FAILED.txt")

    def getOrCreateSet(self, name, setClass, suffix, template="tomograms%s.sqlite", sources=()):
        """The output set ``name``, created (copying the input set's info) on first use, then reopened."""
        outSet = getattr(self, name, None)
        if outSet is not None:
            outSet.enableAppend()
            return outSet
        outSet = setClass.create(self._getPath(), template=template, suffix=suffix)
        outSet.copyInfo(self.getInputSet())
        outSet.setStreamState(Set.STREAM_OPEN)
        self._defineOutputs(**{name: outSet})
        self._defineSourceRelation(self.getInputSet(pointer=True), outSet)
        for source in sources:
            self._defineSourceRelation(source, outSet)
        return outSet

    def appendItem(self, outSet, item, append=None):
        (append or outSet.append)(item)
        outSet.write()
        self._store(outSet)

    def _appendFailed(self, tsId):
        failed = self.getOrCreateSet(OUT_FAILED, SetOfTomograms, "Failed")
        item = self.tomoDict[tsId].clone()
        try:
            readable = item.getDim() is not None
        except Exception:   # Scipion's image readers raise on some files that are not images
            readable = False
        # SetOfTomograms.append reads each tomogram's size, which an unreadable file does not have
        self.appendItem(failed, item, None if readable else lambda tomo: SetOfImages.append(failed, tomo))
