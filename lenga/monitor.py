"""Peak memory of a whole Spark application on one machine: driver Python + JVM + Python workers.

Spark's own metrics miss the Python workers (decode, writers, UDFs), which are where lenga's memory
goes, so the benchmark samples the resident set size of this process and all its descendants.
"""

from __future__ import annotations

import threading
import time

import psutil

SAMPLE_INTERVAL_S = 0.2


def tree_rss(process: psutil.Process, exclude: frozenset[int] = frozenset()) -> dict[str, int]:
    """RSS by process kind (python, java, ...) of ``process`` and its descendants, less ``exclude``."""
    usage: dict[str, int] = {}
    for proc in [process, *process.children(recursive=True)]:
        if proc.pid in exclude:
            continue
        try:
            kind = "driver-python" if proc.pid == process.pid else proc.name()
            usage[kind] = usage.get(kind, 0) + proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return usage


class PeakRSS:
    """Context manager sampling the process tree's RSS in a thread; ``peak_mb`` after exit.

    ``exclude`` names processes that are not part of the measured application, such as the
    embedded Kafka broker, which is the stand-in for the survey's Kafka cluster.
    """

    def __init__(self, interval_s: float = SAMPLE_INTERVAL_S, exclude: tuple[int, ...] = ()):
        self.interval_s = interval_s
        self.exclude = frozenset(exclude)
        self.peak_bytes = 0
        self.peak_breakdown: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._process = psutil.Process()

    def _sample(self) -> None:
        usage = tree_rss(self._process, self.exclude)
        total = sum(usage.values())
        if total > self.peak_bytes:
            self.peak_bytes, self.peak_breakdown = total, usage

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20

    def breakdown_mb(self) -> dict[str, float]:
        return {kind: round(rss / 2**20, 1) for kind, rss in sorted(self.peak_breakdown.items())}


class Stopwatch:
    """``with Stopwatch() as s: ...`` then ``s.seconds``."""

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start
