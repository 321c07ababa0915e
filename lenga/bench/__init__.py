"""Measurement: the benchmark stages and component benchmarks run by ``jobs/benchmark.py``, model
reports on real alerts (:mod:`lenga.bench.reports`), and the chaos harness that drives the jobs
from outside (:mod:`lenga.bench.chaos`)."""
