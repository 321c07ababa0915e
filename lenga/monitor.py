"""Peak memory of a whole Spark application on one machine: driver Python + JVM + Python workers.

Spark's own metrics miss the Python workers (decode, writers, UDFs), which are where lenga's memory
goes, so the benchmark samples the resident set size of this process and all its descendants.
"""

from __future__ import annotations

import threading
import time

import psutil

SAMPLE_INTERVAL_S = 0.2


def tree_rss_bytes(process: psutil.Process) -> int:
    """RSS of ``process`` plus every descendant that still exists."""
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


class PeakRSS:
    """Context manager sampling the process tree's RSS in a thread; ``peak_mb`` after exit."""

    def __init__(self, interval_s: float = SAMPLE_INTERVAL_S):
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._process = psutil.Process()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, tree_rss_bytes(self._process))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, tree_rss_bytes(self._process))

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20


class Stopwatch:
    """``with Stopwatch() as s: ...`` then ``s.seconds``."""

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start
