"""A small demo lake, built once per test session, for the plot and notebook tests.

It is what a user gets from ``./spark-submit.sh demo``, in miniature: simulated ZTF and LSST alerts
through the Tansu broker, the stream (core tables, cross-match with the demo catalog and whatever
enrichment steps the runner wires), then the aggregation query (``objects``, ``features``, ...).
Test modules wrap :func:`demo_lake` in a session fixture; the lake lives under pytest's session
base directory, so the modules share one build.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# Enough for several alerts per object, upper limits, forced photometry and catalog matches.
DEMO_ARGUMENTS = ["--objects", "30", "--nights", "3", "--seed", "42", "--set", "spark.spark.master=local[2]"]
#: Tables written by stages after ingest; a notebook must say so, not crash, when they are absent.
OPTIONAL_TABLES = ("xmatch", "xmatch_objects", "objects", "features", "stamp_classifications",
                   "lc_classifications")


def demo_lake(tmp_path_factory) -> Path:
    """The session's demo lake (built by ``jobs.demo`` on first use; needs the ``spark`` fixture)."""
    from jobs import demo

    root = tmp_path_factory.getbasetemp() / "demo_lake"
    built = root / ".built"
    if not built.exists():
        demo.main(["--lake", str(root), *DEMO_ARGUMENTS])
        built.touch()
    return root


def core_only_copy(lake: Path, target: Path) -> Path:
    """A copy of ``lake`` with the ingest tables only (as before any enrichment stage ran)."""
    shutil.copytree(lake, target, ignore=shutil.ignore_patterns("_checkpoints", "_logs", *OPTIONAL_TABLES))
    return target
