"""Peak memory of a whole Spark application on one machine: driver Python + JVM + Python workers.

Spark's own metrics miss the Python workers (decode, writers, UDFs), which are where lenga's memory
goes, so the benchmark samples the memory of this process and all its descendants, two ways:

* the sum of resident set sizes (RSS), an upper bound: PySpark forks its Python workers from one
  daemon, and the pages they share with it (interpreter, pyarrow, numpy...) count once per worker;
* the sum of proportional set sizes (PSS, Linux), the memory the application really occupies: a
  page shared by n processes counts 1/n in each, so shared pages count once in the sum.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psutil

SAMPLE_INTERVAL_S = 0.25
#: PSS is read every this many samples (every 2 s): it walks every mapping of every process (the
#: JVM has thousands). py-spy on a 20,000-alert ingest: reading it every second still took 3.5 s
#: of CPU of the ~45 s measured, 7% of the two cores; a micro-batch's memory peak lasts seconds.
PSS_EVERY = 8


def tree_memory(process: psutil.Process, exclude: frozenset[int] = frozenset(),
                with_pss: bool = True) -> tuple[dict[str, int], int]:
    """RSS by process kind (python, java, ...) of ``process`` and its descendants, less ``exclude``,
    and the sum of their PSS (0 without ``with_pss`` or where the platform has no PSS)."""
    usage: dict[str, int] = {}
    pss = 0
    for proc in [process, *process.children(recursive=True)]:
        if proc.pid in exclude:
            continue
        try:
            kind = "driver-python" if proc.pid == process.pid else proc.name()
            memory = proc.memory_full_info() if with_pss else proc.memory_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        usage[kind] = usage.get(kind, 0) + memory.rss
        pss += getattr(memory, "pss", 0)
    return usage, pss


class PeakRSS:
    """Context manager sampling the process tree's memory in a thread; after exit ``peak_mb`` (peak
    of the RSS sum, with ``breakdown_mb`` by process kind at that moment) and ``peak_pss_mb``.

    ``exclude`` names processes that are not part of the measured application, such as the
    embedded Kafka broker, which is the stand-in for the survey's Kafka cluster.
    """

    def __init__(self, interval_s: float = SAMPLE_INTERVAL_S, exclude: tuple[int, ...] = ()):
        self.interval_s = interval_s
        self.exclude = frozenset(exclude)
        self.peak_bytes = 0
        self.peak_pss_bytes = 0
        self.peak_breakdown: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._process = psutil.Process()
        self._samples = 0
        self._lock = threading.Lock()

    def _sample(self, with_pss: bool = False) -> None:
        with self._lock:
            usage, pss = tree_memory(self._process, self.exclude,
                                     with_pss=with_pss or self._samples % PSS_EVERY == 0)
            self._samples += 1
            total = sum(usage.values())
            if total > self.peak_bytes:
                self.peak_bytes, self.peak_breakdown = total, usage
            self.peak_pss_bytes = max(self.peak_pss_bytes, pss)

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
        self._sample(with_pss=True)

    def snapshot(self) -> PeakRSS:
        """The peaks so far (PSS read now too), as a finished measure: the peaks of a first part of
        a longer measure without a second sampler (sampling costs CPU: reading PSS walks every
        mapping of every process, and a second sampler would double that in the measured run)."""
        self._sample(with_pss=True)
        done = PeakRSS(self.interval_s, tuple(self.exclude))
        with self._lock:
            done.peak_bytes, done.peak_pss_bytes = self.peak_bytes, self.peak_pss_bytes
            done.peak_breakdown = dict(self.peak_breakdown)
        return done

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20

    @property
    def peak_pss_mb(self) -> float:
        return self.peak_pss_bytes / 2**20

    def breakdown_mb(self) -> dict[str, float]:
        return {kind: round(rss / 2**20, 1) for kind, rss in sorted(self.peak_breakdown.items())}


class CPUMeter:
    """CPU seconds (user + system) spent while it runs by this process (``driver``), the JVM
    (``jvm``) and every other descendant (``workers``: Spark's Python workers, which come and go).

    Each process is sampled every ``interval_s``; a process's CPU counts from its first sample (0
    for one started during the measure) to its last, so a worker ending between two samples loses
    at most one interval. Reaped children's times are not used (they would count twice)."""

    def __init__(self, interval_s: float = 0.25):
        self.interval_s = interval_s
        self._first: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._me = psutil.Process()

    def _sample(self, initial: bool = False) -> None:
        for proc in [self._me, *self._me.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                name = proc.name()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            kind = "driver" if proc.pid == self._me.pid else "jvm" if name == "java" else "workers"
            self._first.setdefault(proc.pid, times.user + times.system if initial else 0.0)
            self._last[proc.pid] = (kind, times.user + times.system)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> CPUMeter:
        self._sample(initial=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def total(self) -> float:
        """CPU seconds of every process together."""
        return sum(last - self._first[pid] for pid, (_, last) in self._last.items())

    def seconds(self) -> dict[str, float]:
        usage = {"driver": 0.0, "jvm": 0.0, "workers": 0.0}
        for pid, (kind, last) in self._last.items():
            usage[kind] += last - self._first[pid]
        return {kind: round(value, 2) for kind, value in usage.items()}


class Stopwatch:
    """``with Stopwatch() as s: ...`` then ``s.seconds``."""

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start


def emit_report(result: dict, path: str | None = None) -> None:
    """Print a benchmark's result as JSON, and write it to ``path`` when given."""
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        Path(path).write_text(text + "\n")
