"""Measurement: the benchmark stages and component benchmarks run by ``jobs/benchmark.py``, and
model reports on real alerts (:mod:`lenga.bench.reports`)."""
