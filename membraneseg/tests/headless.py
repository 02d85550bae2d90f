"""Headless Scipion set-up for tests, the demo and the examples, without the ``scipion`` launcher.

pyworkflow reads its configuration from the environment once, at its first import, so ``configure()`` must run
before anything imports pyworkflow. It only sets variables the user has not set (``setdefault``).
"""
import os
import sys

HOSTS_CONF = """[localhost]
PARALLEL_COMMAND = mpirun -np %_(JOB_NODES)d --map-by node %_(COMMAND)s
"""


def configure(root=None):
    """Point pyworkflow at a writable folder (default ``./scipion-userdata``) and at this Python; returns it."""
    root = os.path.abspath(root or os.environ.get("MEMBRANESEG_HEADLESS_ROOT") or "scipion-userdata")
    os.makedirs(root, exist_ok=True)
    hosts = os.path.join(root, "hosts.conf")
    if not os.path.exists(hosts):
        with open(hosts, "w") as f:
            f.write(HOSTS_CONF)
    defaults = {
        "SCIPION_DOMAIN": "pwem",            # else createProject fails with a NoneType mapper error
        "SCIPION_HOSTS": hosts,
        "SCIPION_PYTHON": sys.executable,    # protocol runs are subprocesses of this interpreter
        "SCIPION_HOME": root,
        "SCIPION_USER_DATA": root,
        "SCIPION_NOTIFY": "False",
        "SCIPION_TEST_NOSYNC": "True",
        # the engine runs in this same environment here: entering it is a no-op
        "MEMBRANESEG_ENV_ACTIVATION": "true",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    # the engine subprocess must find the same python (activation is a no-op)
    bindir = os.path.dirname(sys.executable)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    return root
