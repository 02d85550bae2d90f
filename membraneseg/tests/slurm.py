"""A one-node SLURM cluster in a scratch folder, for the queue test: munged, slurmctld and slurmd started as root
with their keys, sockets, state, logs and ports in that folder (nothing of the machine's own configuration is used
or changed), and stopped again.

Debian's packages provide the programs (``apt-get install slurmctld slurmd munge slurm-client``). ``unavailable()``
says why a cluster cannot be started here, or None.
"""
import os
import re
import shutil
import socket
import subprocess
import textwrap
import time

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "cluster-and-gpu.rst")
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol")

CONF = """ClusterName=membraneseg
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge.sock
CryptoType=crypto/munge
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
GresTypes=gpu
NodeName={host} CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName={partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def documented_hosts_conf():
    """The SLURM section of docs/cluster-and-gpu.rst (the ini block after "A SLURM section"), dedented, as the
    queue tests use it word for word; None where the docs are not beside the package."""
    if not os.path.exists(DOC):
        return None
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    block = re.search(r"A SLURM\s+section[^:]*:\s*\.\. code-block:: ini\n\n((?:    [^\n]*\n|\n)+)", text)
    return textwrap.dedent(block.group(1)).strip() + "\n" if block else None


def use_hosts_conf(path, text, **variables):
    """Write ``text`` as the hosts.conf at ``path`` and make Scipion submit through it (pw.Config for the project,
    the environment for the protocol's own process); set ``variables`` in the environment too. Returns the
    function that undoes it."""
    import pyworkflow as pw
    with open(path, "w") as f:
        f.write(text)
    saved = pw.Config.SCIPION_HOSTS, {k: os.environ.get(k) for k in ["SCIPION_HOSTS"] + list(variables)}
    pw.Config.SCIPION_HOSTS = os.environ["SCIPION_HOSTS"] = path
    os.environ.update(variables)

    def restore():
        pw.Config.SCIPION_HOSTS = saved[0]
        for key, value in saved[1].items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return restore


def segment_on_queue(test, tomograms, queue, **params):
    """Launch "segment membranes" in ``test``'s project with *Use queue*, one job per tomogram, on ``queue`` with
    the queue's ``params``; returns the protocol."""
    from membraneseg.protocols import ProtMembraneSegSegment
    prot = test.newProtocol(ProtMembraneSegSegment, inputTomograms=tomograms, numberOfThreads=2, mode=0,
                            binThreads=1)
    prot._useQueue.set(True)
    prot.setQueueParams([queue, dict(params, QUEUE_FOR_JOBS="Y")])
    test.launchProtocol(prot)
    return prot


def unavailable():
    """Why no cluster can be started here (a sentence), or None."""
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if missing:
        return ("SLURM or munge is not installed (%s missing; on Debian: apt-get install slurmctld slurmd munge "
                "slurm-client)" % ", ".join(missing))
    if os.geteuid() != 0:
        return "the SLURM daemons of this test start as root, and this is not root"
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalSlurm:
    """``with LocalSlurm(folder, partition) as cluster:`` a cluster whose ``env`` (SLURM_CONF) sbatch, squeue and
    scancel need; every daemon is stopped on leaving, also after an error."""

    def __init__(self, root, partition="gpu", memory_mb=16000):
        self.root, self.partition, self.memory_mb = os.path.abspath(root), partition, memory_mb
        self.conf = os.path.join(self.root, "slurm.conf")
        self.env = dict(os.environ, SLURM_CONF=self.conf)

    def _run(self, *command):
        subprocess.run(command, check=True, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def start(self, timeout=30):
        for sub in ("state", "spool", "log"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        key = os.path.join(self.root, "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        self._run("munged", "--key-file=" + key, "--socket=%s/munge.sock" % self.root,
                  "--pid-file=%s/munged.pid" % self.root, "--log-file=%s/log/munged.log" % self.root,
                  "--seed-file=%s/munged.seed" % self.root, "--force")
        with open(self.conf, "w") as f:
            f.write(CONF.format(host=socket.gethostname(), root=self.root, ctld_port=_free_port(),
                                d_port=_free_port(), cpus=os.cpu_count(), memory=self.memory_mb,
                                partition=self.partition))
        self._run("slurmctld", "-f", self.conf)
        self._run("slurmd", "-f", self.conf)
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=self.env, capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip() in ("idle", "mix", "alloc"):
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError("the SLURM node did not come up in %d s; see %s/log" % (timeout, self.root))

    def stop(self):
        subprocess.run(["scontrol", "shutdown"], env=self.env, capture_output=True)
        subprocess.run(["munged", "--stop", "--socket=%s/munge.sock" % self.root], capture_output=True)
        for name in ("slurmctld.pid", "slurmd.pid"):   # in case the controller could not tell the node
            try:
                with open(os.path.join(self.root, name)) as f:
                    os.kill(int(f.read().strip()), 15)
            except (OSError, ValueError):
                pass

    def log(self, name):
        with open(os.path.join(self.root, "log", name)) as f:
            return f.read()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
