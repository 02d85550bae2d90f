"""Progress of a long computation over slices: a bar in a terminal, a log line every tenth otherwise."""
import logging
import os
import sys
import time

log = logging.getLogger(__name__)


class Progress:
    """A one-line progress bar on stderr in a terminal, and a log line every tenth of the work otherwise."""

    def __init__(self, total, label, enabled=True):
        self.total, self.label, self.done = total, os.path.basename(label), 0
        self.start = time.time()
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.next_log = 0.1

    def update(self, n):
        self.done += n
        if not self.enabled:
            return
        frac = self.done / max(1, self.total)
        rate = self.done / max(1e-9, time.time() - self.start)
        if self.tty:
            bar = "#" * int(30 * frac)
            sys.stderr.write("\r%s [%-30s] %d/%d slices, %.1f slices/s" % (self.label, bar, self.done,
                                                                          self.total, rate))
            sys.stderr.flush()
        elif frac >= self.next_log or self.done == self.total:
            log.info("%s: %d/%d slices (%.0f%%), %.1f slices/s", self.label, self.done, self.total, 100 * frac, rate)
            self.next_log = frac + 0.1

    def close(self):
        if self.tty:
            sys.stderr.write("\n")
