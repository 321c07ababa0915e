"""Throughput of stamp classification on one process (for jobs/benchmark.py).

``measure`` simulates ``n_alerts`` first detections (alerts-table rows with gzipped FITS cutouts,
lenga.stamps.dataset), loads the shipped model and classifies them in Arrow batches of
``batch_size`` exactly as the stream's UDF does per task (decode + crop + normalise, features,
torch forward, long-format rows). It reports alerts/s end to end and of the two halves
(preprocessing, network), with CPU seconds: the machine is shared, wall time alone misleads.
With ``threads=1`` (the step's ``torch_threads``: Spark runs one task per core),
``stamps_per_cpu_s`` is what one core sustains, and a node classifies about that many times its
core count (``cores_estimate``).

    python -m lenga.bench.stamps --alerts 4000 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from lenga.config import PROJECT_ROOT
from lenga.stamps.dataset import alert_rows, assign_survey_ids, first_detections
from lenga.stamps.features import model_inputs
from lenga.stamps.inference import StampClassifier
from lenga.stream.steps.stamps import DEFAULTS


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(n_alerts: int = 4000, survey: str = "ztf", batch_size: int = 2000, threads: int = 1,
            model_dir: str | None = None, seed: int = 0, cores: int | None = None) -> dict:
    """Stamps (alert cutout triplets) per second through the classifier, end to end and per half."""
    cores = cores or os.cpu_count()
    classifier = StampClassifier.load(model_dir or PROJECT_ROOT / DEFAULTS["models"][survey])
    objects, epochs, _ = first_detections(survey, max(n_alerts // 5, 1), seed)
    assign_survey_ids(survey, objects)
    table = alert_rows(survey, objects, epochs)
    batches = table.to_batches(max_chunksize=batch_size)
    torch.set_num_threads(threads)
    classifier.classify(batches[0])  # warm-up: torch kernels, astropy frames

    def run_all():
        for batch in batches:
            classifier.classify(batch)

    def preprocess():
        for batch in batches:
            model_inputs(batch, survey)

    inputs = model_inputs(table, survey)
    images, features = inputs.images, inputs.features

    def network():
        classifier.probabilities(images, features)

    total_wall, total_cpu = _timed(run_all)
    pre_wall, pre_cpu = _timed(preprocess)
    net_wall, net_cpu = _timed(network)
    n = table.num_rows
    return {
        "survey": survey, "alerts": n, "batch_size": batch_size, "torch_threads": threads,
        "stamps_per_s": n / total_wall, "wall_s": total_wall, "cpu_s": total_cpu,
        "stamps_per_cpu_s": n / total_cpu, "cores": cores,
        "cores_estimate": cores * n / total_cpu if threads == 1 else None,
        "preprocess_per_s": n / pre_wall, "preprocess_cpu_s": pre_cpu,
        "network_per_s": n / net_wall, "network_cpu_s": net_cpu,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=4000)
    parser.add_argument("--survey", choices=["ztf", "lsst"], default="ztf")
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", help="model directory (default: the configured one)")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.alerts, args.survey, args.batch_size, args.threads, args.model), indent=2))


if __name__ == "__main__":
    main()
