"""Cluster mode proven: the streaming job on a Spark standalone cluster gives the local lake.

A master and two one-core workers run on 127.0.0.1 (``spark-class ...deploy.master.Master`` /
``...deploy.worker.Worker`` from the venv's pyspark). ``./spark-submit.sh --master spark://...
stream`` ships lenga as a zip (``--py-files``) without connector jars (``LENGA_SPARK_PACKAGES=""``,
Maven Central is unreachable here), so executors run lenga's own Kafka source and delta-rs writers.
The executors' interpreter is the venv's Python *without* the editable install of the checkout
(``python -S`` with only site-packages on its path), as on a node where lenga is not installed:
every lenga/udfs module an executor imports must come from the shipped zip.

The same simulated alerts (a demo catalog ingested, so the cross-match step runs on executors too)
are streamed from the Tansu broker once in local mode (the session fixture) and once on the
cluster; both lakes must hold the same tables, row counts and keys.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import polars as pl
import pyspark

from lenga.config import load_config
from lenga.io.kafka import create_topics, publish
from lenga.io.lake import open_lake
from lenga.sim.night import SimConfig, simulate
from lenga.stream.catalogs import ingest_demo_catalog
from lenga.stream.ingest import run_stream
from lenga.stream.steps.xmatch import XMATCH, XMATCH_OBJECTS
from lenga.tables import TABLE_SPECS

ROOT = Path(__file__).resolve().parents[2]
SPARK_CLASS = Path(pyspark.__file__).parent / "bin" / "spark-class"
WORKERS = 2
WORKER_MEMORY = "1g"          # per worker; one executor of spark.executor.memory's default 1g fits
CLUSTER_START_TIMEOUT_S = 90  # JVM start-up on a loaded 2-core machine
SUBMIT_TIMEOUT_S = 240
# Small but complete: both surveys, several alerts per object, a few corrupt messages to quarantine.
SIMULATION = {"seed": 7, "n_objects": 12, "n_nights": 2, "surveys": ["ztf", "lsst"], "corrupt_fraction": 0.1}
# Keys compared between the two lakes, per table (as well as every table's row count).
KEYS = {spec.name: list(spec.keys) for spec in (*TABLE_SPECS.values(), XMATCH, XMATCH_OBJECTS)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def executor_python(directory: Path) -> Path:
    """An interpreter with the venv's packages but not the checkout: ``-S`` skips site-packages'
    ``.pth`` files (the editable install is one), and only site-packages goes back on the path."""
    script = directory / "executor-python"
    site_packages = sysconfig.get_paths()["purelib"]
    script.write_text(f'#!/bin/sh\nPYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{site_packages}" '
                      f'exec {sys.executable} -S "$@"\n')
    script.chmod(0o755)
    return script


class StandaloneCluster:
    """A master and ``WORKERS`` workers; every process in its own group, all stopped in ``stop``."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port, self.ui_port = free_port(), free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []

    def _spawn(self, name: str, *args: str) -> None:
        env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1",
               "SPARK_LOCAL_DIRS": str(self.directory / "local"), "SPARK_LOG_DIR": str(self.directory)}
        with open(self.directory / f"{name}.log", "wb") as log:
            self.processes.append(subprocess.Popen([str(SPARK_CLASS), *args], stdout=log, stderr=subprocess.STDOUT,
                                                   env=env, start_new_session=True))

    def start(self) -> None:
        self._spawn("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                    "--port", str(self.port), "--webui-port", str(self.ui_port))
        for i in range(WORKERS):
            work = self.directory / f"worker{i}"
            work.mkdir()
            self._spawn(f"worker{i}", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                        "--cores", "1", "--memory", WORKER_MEMORY, "--webui-port", str(free_port()),
                        "--work-dir", str(work), self.url)

    def wait_until_alive(self) -> None:
        deadline = time.monotonic() + CLUSTER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=2) as reply:
                    if json.load(reply).get("aliveworkers") == WORKERS:
                        return
            except OSError:
                pass
            if any(p.poll() is not None for p in self.processes):
                break
            time.sleep(1)
        raise RuntimeError(f"standalone cluster not up: {self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in sorted(self.directory.glob("*.log")))

    def executor_logs(self) -> str:
        return "\n".join(f"--- {log}\n{log.read_text()[-3000:]}"
                         for log in sorted(self.directory.glob("worker*/app-*/*/stderr")))

    def stop(self) -> None:
        for process in reversed(self.processes):  # workers (and their executors) first
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def lake_contents(root: Path) -> dict[str, tuple[int, set]]:
    """Every Delta table of a lake (catalogs aside): row count and its set of keys."""
    contents = {}
    for table in sorted(p for p in root.iterdir() if (p / "_delta_log").is_dir()):
        frame = pl.read_delta(str(table))
        keys = KEYS.get(table.name)
        contents[table.name] = (frame.height, set(frame.select(keys).iter_rows()) if keys else None)
    return contents


def test_executor_python_cannot_see_the_checkout(tmp_path):
    """The premise of the cluster test: without the zip, an executor could not import lenga."""
    python = executor_python(tmp_path)
    probe = "import pyarrow, pyspark, fastavro\ntry:\n import lenga\nexcept ImportError:\n print('no lenga')"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # an executor's comes from Spark
    result = subprocess.run([str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no lenga"


def test_stream_on_a_standalone_cluster_matches_local_mode(spark, kafka_broker, topic_name, tmp_path):
    cluster = StandaloneCluster(tmp_path)
    try:
        cluster.start()  # the JVMs boot while the local run below works
        topics = [f"{topic_name}_ztf", f"{topic_name}_lsst"]
        sim = SimConfig.from_dict({**SIMULATION, "topics": dict(zip(("ztf", "lsst"), topics, strict=True))})
        alerts = list(simulate(sim))
        create_topics(kafka_broker.bootstrap_servers, topics, partitions=2)
        publish(((a.topic, a.key, a.value) for a in alerts), kafka_broker.bootstrap_servers)
        lakes = {mode: tmp_path / f"lake_{mode}" for mode in ("local", "cluster")}
        for lake in lakes.values():
            ingest_demo_catalog(open_lake(spark, lake, "delta-rs"), sim)

        local = load_config(None, None, {
            "source": {"kafka": {"bootstrap_servers": kafka_broker.bootstrap_servers, "topics": topics}},
            "lake": {"root": str(lakes["local"]), "backend": "delta-rs"},
            "stream": {"checkpoint": str(tmp_path / "checkpoint_local"), "trigger": "available_now"}})
        run_stream(local, spark=spark)

        cluster.wait_until_alive()
        submit = subprocess.run(
            [str(ROOT / "spark-submit.sh"), "--master", cluster.url, "stream",
             "--bootstrap", kafka_broker.bootstrap_servers, "--set", f"source.kafka.topics=[{','.join(topics)}]",
             "--lake", str(lakes["cluster"]), "--checkpoint", str(tmp_path / "checkpoint_cluster")],
            cwd=tmp_path, capture_output=True, text=True, timeout=SUBMIT_TIMEOUT_S,
            env={**os.environ, "LENGA_SPARK_PACKAGES": "", "LENGA_CLUSTER_PYTHON": str(executor_python(tmp_path))})
        (tmp_path / "submit.log").write_text(submit.stdout + submit.stderr)
        assert submit.returncode == 0, f"{submit.stderr[-6000:]}\n{cluster.executor_logs()}"
        # The work really ran on the two workers' executors (one per worker), not in the driver.
        assert len(list(tmp_path.glob("worker*/app-*/*/stderr"))) == WORKERS
    finally:
        cluster.stop()

    expected, got = lake_contents(lakes["local"]), lake_contents(lakes["cluster"])
    assert set(got) == set(expected)
    assert {"alerts", "detections", "non_detections", "quarantine", "xmatch", "xmatch_objects"} <= set(got)
    assert expected["alerts"][0] > 0 and expected["quarantine"][0] > 0 and expected["xmatch"][0] > 0
    for table, (rows, keys) in expected.items():
        assert got[table][0] == rows, table
        assert got[table][1] == keys, table
