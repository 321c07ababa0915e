"""lenga.bench.monitor: the benchmark's memory sampler sees child processes, and PSS never exceeds RSS."""

from __future__ import annotations

import subprocess
import sys
import time

from lenga.bench.monitor import CPUMeter, PeakRSS

ALLOCATED_MB = 300
# A child that touches ALLOCATED_MB of fresh pages (so they are resident), then waits to be sampled.
CHILD = f"import time; block = bytearray({ALLOCATED_MB} * 2**20); block[::4096] = b'x' * len(block[::4096]); time.sleep(3)"


def test_peak_memory_includes_children_and_pss_counts_shared_pages_once():
    with PeakRSS(interval_s=0.1) as memory:
        child = subprocess.Popen([sys.executable, "-c", CHILD])
        time.sleep(2.0)
        child.wait()
    assert memory.peak_mb >= ALLOCATED_MB
    assert "driver-python" in memory.breakdown_mb()
    # The child's private pages count fully in both sums; pages shared with this process (the
    # interpreter) count once in PSS and twice in RSS.
    assert ALLOCATED_MB <= memory.peak_pss_mb <= memory.peak_mb


def test_snapshot_keeps_the_peaks_of_the_first_part_of_a_measure():
    with PeakRSS(interval_s=0.1) as memory:
        child = subprocess.Popen([sys.executable, "-c", CHILD])
        time.sleep(2.0)
        child.wait()
        first = memory.snapshot()
        later = subprocess.Popen([sys.executable, "-c", CHILD.replace(str(ALLOCATED_MB), str(3 * ALLOCATED_MB))])
        time.sleep(2.0)
        later.wait()
    # The tree may hold more (a Spark JVM of another test): compare the two peaks, not absolutes.
    assert first.peak_mb >= ALLOCATED_MB
    assert memory.peak_mb - first.peak_mb >= ALLOCATED_MB  # the later child's 3x raised only the full peak
    assert ALLOCATED_MB <= first.peak_pss_mb <= first.peak_mb
    assert "driver-python" in first.breakdown_mb()


BURN_S = 1.0
# A child that keeps one core busy for BURN_S of CPU time.
BURNER = f"import time\nend = time.process_time() + {BURN_S}\nwhile time.process_time() < end: pass"


def test_cpu_meter_counts_a_child_that_ends_before_the_meter():
    with CPUMeter(interval_s=0.05) as meter:
        subprocess.run([sys.executable, "-c", BURNER], check=True)
    by_kind = meter.seconds()
    # The child is a worker (neither this driver nor a JVM); sampling every 50 ms loses at most the
    # last interval of it.
    assert by_kind["workers"] >= BURN_S - 0.1
    assert meter.total() >= by_kind["workers"]
