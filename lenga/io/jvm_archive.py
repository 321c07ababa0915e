"""A class-data-sharing archive (AppCDS, JDK 11+) for the JVM of local Spark sessions.

Why: a local lenga job spends seconds of its start loading Spark's classes one by one from the ~250
jars of pyspark's ``jars/`` directory (JFR: ~3.4 CPU-s of a 20,000-alert ingest went to class
lookups in those jars, on the critical path of the session's start, of the query's start and of
its first micro-batch). A dynamic CDS archive holds those classes already parsed and verified; the
JVM maps it instead. Measured on this 2-core machine (core tables, 20,000 ZTF alerts, two
micro-batches): session start 4.5 → 2.5 s, query start 1.8 → 1.4 s, first micro-batch 6.5 → 5.7 s,
the JVM's peak RSS unchanged (0.52 GB).

How: ``jobs/jvm_archive.py`` (``./spark-submit.sh setup`` runs it once) starts a local
session with ``-XX:ArchiveClassesAtExit``, runs a small workload of lenga's own (simulated alerts
through the ingest and aggregation queries, from files), lets its JVM exit, checks that a JVM
starts with the archive and moves it to :func:`archive_path`. :func:`java_options` then gives
``build_session`` the options that use it, for local masters only (cluster executors are other
JVMs). The archive is keyed by the java binary and pyspark's jar files (names, sizes, times), so a
new JDK or a reinstalled pyspark never meets an old archive (a truncated archive crashes the JVM; a
mismatched one is silently ignored by it, which tests/spark/test_jvm_archive.py would notice); creating
one removes the archive of the same jars directory's earlier install.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pyspark
from pyspark.find_spark_home import _find_spark_home

#: Quiet when the JVM cannot use the archive (it then loads classes from the jars, as without one).
QUIET_OPTIONS = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def java_binary() -> Path | None:
    """The java binary Spark's launcher runs (``$JAVA_HOME/bin/java``, else ``java`` on the PATH)."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return Path(java).resolve() if java and Path(java).exists() else None


def spark_jars() -> Path:
    """pyspark's ``jars/`` directory, resolved."""
    return (Path(_find_spark_home()) / "jars").resolve()


def archive_dir() -> Path:
    """Where archives are kept (``LENGA_JVM_ARCHIVE_DIR``): one file per (java, pyspark jars) key."""
    return Path(os.environ.get("LENGA_JVM_ARCHIVE_DIR", Path.home() / ".cache" / "lenga" / "jvm"))


def archive_path() -> Path | None:
    """The archive for this java and these Spark jars (it may not exist yet); None without java."""
    java = java_binary()
    if java is None:
        return None
    jars = spark_jars()
    # The JVM uses an archive only with the very jar files it was dumped from (it checks their
    # sizes and times): a reinstalled venv, same paths, needs a new one.
    stamps = [f"{p.name} {p.stat().st_size} {p.stat().st_mtime_ns}" for p in sorted(jars.glob("*.jar"))]
    key = "\n".join([str(java), str(java.stat().st_mtime_ns), pyspark.__version__, str(jars), *stamps])
    return archive_dir() / f"spark-driver-{hashlib.sha1(key.encode()).hexdigest()[:16]}.jsa"


def remove_replaced(path: Path) -> None:
    """Remove the archives of earlier installs of the same jars directory (~170 MB each), named by
    the ``.jars`` file beside each archive; other venvs' archives stay."""
    jars = str(spark_jars())
    for other in path.parent.glob("spark-driver-*.jsa"):
        source = other.with_suffix(".jars")
        if other != path and source.is_file() and source.read_text() == jars:
            other.unlink(missing_ok=True)
            source.unlink(missing_ok=True)


def java_options() -> str:
    """Driver JVM options that map the archive, or "" when there is none."""
    path = archive_path()
    return f"-XX:SharedArchiveFile={path} {QUIET_OPTIONS}" if path is not None and path.is_file() else ""
