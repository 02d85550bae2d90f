"""A segmentation killed midway (SIGKILL, as the kernel's OOM killer or a cluster's scheduler would) leaves no file
that looks finished, only hidden .partial files that nothing takes for a result or an input; it streams (the
tomogram and its outputs are never resident whole); and running it again completes it correctly."""
import hashlib
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from membraneseg.engine import cli
from membraneseg.engine.core import io
from membraneseg.engine.core.inputs import expand_inputs
from membraneseg.engine.segmentation import predict

SHAPE = (300, 128, 128)     # about 7 s of segmentation with the tiny model on 2 cores
# The engine releases the pages it has read and written every RELEASE_BYTES; here every 2 MB instead of 256 MB,
# so that streaming shows on a tomogram small enough for a test.
ENGINE = ("import sys; from membraneseg.engine import cli; from membraneseg.engine.segmentation import predict; "
          "assert predict.RELEASE_BYTES; predict.RELEASE_BYTES = 2 << 20; sys.exit(cli.main(sys.argv[1:]))")


def progress(log):
    """The percentage of slices done, from the engine's log lines 'NAME: 30/300 slices (10%), ...'."""
    with open(log) as f:
        done = re.findall(r"slices \((\d+)%\)", f.read())
    return int(done[-1]) if done else 0


def resident_bytes(pid, paths):
    """Bytes of ``paths`` (memory-mapped files) resident in process ``pid``, from /proc/PID/smaps."""
    total, current = 0, None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            fields = line.split()
            if fields and not fields[0].endswith(":"):    # a mapping's first line: address perms offset dev inode path
                current = line.split(None, 5)[5].strip() if len(fields) > 5 else ""
            elif fields and fields[0] == "Rss:" and current in paths:
                total += int(fields[1]) * 1024
    return total


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux /proc")
def test_killed_segmentation_leaves_nothing_finished_and_a_rerun_completes(tiny_model, tmp_path):
    path = str(tmp_path / "tomo.mrc")
    io.write(path, np.random.default_rng(0).normal(size=SHAPE).astype(np.float32), 12.0)
    with open(path, "rb") as f:
        before = hashlib.sha256(f.read()).hexdigest()
    out = tmp_path / "out"
    mask_path, prob_path = predict.output_paths(path, str(out))
    partials = [io.partial_name(p) for p in (mask_path, prob_path)]
    log_path = str(tmp_path / "log.txt")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-c", ENGINE, "segment", path, "-o", out, "--model", tiny_model,
                                 "--threads", "1"], stdout=log, stderr=log)
    try:
        deadline = time.time() + 120
        while progress(log_path) < 40 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the segmentation ended before it could be killed; make SHAPE larger"
        resident = resident_bytes(proc.pid, {os.path.realpath(p) for p in [path] + partials})
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    # streaming: of the tomogram and its two outputs (~44 MB), about the release interval was in memory; keeping
    # what was read and written would hold 40% of it by now
    mapped = os.path.getsize(path) + sum(map(os.path.getsize, partials))
    assert resident < 0.15 * mapped, "%.1f of %.1f MB resident" % (resident / 1e6, mapped / 1e6)
    # nothing that looks finished; the hidden partial files are no input either
    assert sorted(os.listdir(out)) == sorted(os.path.basename(p) for p in partials)
    assert not any(map(io.is_supported, partials))
    with pytest.raises(io.InputError, match="folder holds no MRC volume or image"):
        expand_inputs([str(out)])
    # run again: completes, replaces the partial files, leaves the input as it was
    assert cli.main(["segment", path, "-o", str(out), "--model", tiny_model]) == 0
    assert sorted(os.listdir(out)) == sorted(os.path.basename(p) for p in (mask_path, prob_path))
    mask, prob = io.read(mask_path), io.read(prob_path)
    assert mask.data.shape == prob.data.shape == SHAPE
    assert mask.voxel_size == prob.voxel_size == pytest.approx(12.0)
    p = np.asarray(prob.data)
    assert np.isfinite(p).all() and 0 <= p.min() <= p.max() <= 1 and p[-1].std() > 0   # the last slice was done
    np.testing.assert_array_equal(np.asarray(mask.data) > 0, p >= 0.5)
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == before
