"""Named phases with their wall-clock times, announced on stderr.

::

    phases = Phases("report")
    with phases("risk through time"):
        ...
    phases.timings  # {"risk through time": 1.23, ...}
"""

from __future__ import annotations

import contextlib
import sys
import time


class Phases:
    """Time named phases; print each one's start and duration to ``stream``.

    ``stream=None`` records the timings silently; the default is the
    ``sys.stderr`` of the moment each line is printed.
    """

    def __init__(self, label="report", stream="stderr"):
        self.label = label
        self.stream = stream
        self.timings = {}
        self._start = time.perf_counter()

    def _say(self, text):
        if self.stream is not None:
            stream = sys.stderr if self.stream == "stderr" else self.stream
            print(f"[{self.label}] {text}", file=stream, flush=True)

    @contextlib.contextmanager
    def __call__(self, name):
        self._say(f"{name} ...")
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.timings[name] = self.timings.get(name, 0.0) + elapsed
            self._say(f"{name}: {elapsed:.1f} s")

    @property
    def total(self):
        return time.perf_counter() - self._start
