"""Write the class-data-sharing archive of the local Spark JVM (``./spark-submit.sh setup`` runs it).

It runs a small workload of lenga's own (simulated alerts from files through the ingest and
aggregation queries) in a session whose JVM dumps the classes it loaded when it exits; see
:mod:`lenga.io.jvm_archive` for why and for how sessions use the archive.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from lenga.config import load_config
from lenga.io.jvm_archive import QUIET_OPTIONS, archive_path, java_binary, remove_replaced, spark_jars
from lenga.io.session import build_session
from lenga.sim.night import SimConfig, simulate, write_directory
from lenga.stream.aggregate import run_aggregation
from lenga.stream.ingest import run_stream


def _workload(spark, workdir: Path) -> None:
    """Load the classes lenga's queries use: simulated alerts from files through the ingest query
    (Python data source, mapInArrow, delta-rs commits) and the aggregation (RocksDB state)."""
    incoming = workdir / "incoming"
    write_directory([a for a in simulate(SimConfig(seed=1, n_objects=8, n_nights=2)) if not a.corrupt], incoming)
    config = load_config(extra={
        "source": {"kind": "files", "files": {"path": str(incoming)}},
        "lake": {"root": str(workdir / "lake")},
        "stream": {"checkpoint": str(workdir / "checkpoints" / "stream")},
    })
    run_stream(config, spark=spark, steps=[])
    run_aggregation(config, spark)


def create(path: Path) -> Path:
    """Write the archive at ``path``: dumped next to it under a temporary name, checked by a JVM
    start, then renamed (a reader never sees a partial archive)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dump = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tempfile.TemporaryDirectory(prefix="lenga-cds-") as workdir:
            conf = dict(load_config().spark)
            conf["spark.driver.extraJavaOptions"] = (f"{conf.get('spark.driver.extraJavaOptions', '')} "
                                                     f"-XX:ArchiveClassesAtExit={dump} {QUIET_OPTIONS}")
            spark = build_session("lenga-class-archive", conf, class_archive=False)
            _workload(spark, Path(workdir))
            gateway = spark.sparkContext._gateway.proc
            spark.stop()
            gateway.stdin.close()  # the JVM exits when its stdin closes, and writes the archive then
            gateway.wait(timeout=300)
        check = subprocess.run([str(java_binary()), f"-XX:SharedArchiveFile={dump}", "-version"],
                               capture_output=True, text=True)
        if check.returncode != 0 or not dump.is_file():
            raise RuntimeError(f"lenga: the JVM class archive could not be written or used: {check.stderr[-500:]}")
        path.with_suffix(".jars").write_text(str(spark_jars()))
        os.replace(dump, path)
        remove_replaced(path)
    finally:
        dump.unlink(missing_ok=True)
    return path


def main() -> None:
    path = archive_path()
    if path is None:
        print("[lenga] no java found: no JVM class archive", file=sys.stderr)
    elif path.is_file():
        print(f"[lenga] JVM class archive ready: {path}", file=sys.stderr)
    else:
        print(f"[lenga] writing the JVM class archive (once, ~1 min): {path}", file=sys.stderr)
        create(path)


if __name__ == "__main__":
    main()
