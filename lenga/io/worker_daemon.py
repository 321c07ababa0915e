"""Spark's Python worker daemon (``pyspark.daemon``), importing pyspark from its installed package.

Why: Spark starts every Python process it needs (the UDF workers, and one daemon each for the
Python data sources' lookup, creation and read planning) with ``$SPARK_HOME/python/lib/pyspark.zip``
first on ``PYTHONPATH``. Python cannot cache bytecode for modules imported from a zip, so each of
those processes compiles pyspark's modules from source: measured with py-spy on a 20,000-alert
ingest, ~4 s of CPU, most of it in the chain of processes a query starts one after the other
before its first task (lookup, create, plan, worker daemons).

With a pip-installed pyspark, that zip is a copy of the installed package itself
(``$SPARK_HOME`` is ``site-packages/pyspark``), so this module moves the zips of that Spark home
behind the installed package on ``sys.path`` (where its cached ``.pyc`` files are used) and then
runs the stock daemon. Anywhere else (a Spark distribution whose ``python/lib`` is not beside an
installed package) it changes nothing.

:func:`lenga.io.session.build_session` selects it (``spark.python.daemon.module``) for local
masters only: on a cluster the executors' Python may not import lenga before a task ships it.
Spark uses it for the UDF and data-source read workers; its data-source planning daemons (lookup,
create, plan) and the streaming source runner are started with the stock modules. For those, the
venv's ``sitecustomize`` (written by ``./spark-submit.sh setup``) calls :func:`use_installed_pyspark`
at every interpreter start: py-spy found them compiling pyspark from the zip for ~1.5 CPU-s at every
query start, one process after the other, before the query's first task (objects-only aggregation
of 20,000 alerts, query start included: 4.2-4.5 → 3.1 s wall; ingest query start 1.4 → 1.0 s).

It also changes what a reused worker does between two tasks. The stock daemon runs a full
``gc.collect()`` there, which walks every object the worker holds: its imported modules (pyarrow,
polars-avro, torch...), 50 ms per task for the ingest's modules and 130 ms with the stamp
classifier's, for tasks that often last a few hundred milliseconds (py-spy: 6% of the ingest
workers' CPU). Here it collects the young generations only, where a task's cyclic garbage is; the
interpreter's own full collections still run when the old generation grows
(:class:`YoungGenerationsGC`).
"""

from __future__ import annotations

import gc
import os
import sys
from types import ModuleType


def prefer_installed_pyspark(path: list[str], spark_home: str | None) -> list[str]:
    """``path`` with the zips of ``spark_home/python/lib`` moved to its end, when ``spark_home`` is
    an installed pyspark package (it holds ``__init__.py``: pip's layout); else ``path`` as is."""
    if not spark_home or not os.path.isfile(os.path.join(spark_home, "__init__.py")):
        return path
    lib = os.path.join(os.path.realpath(spark_home), "python", "lib")

    def zipped(entry: str) -> bool:
        return entry.endswith(".zip") and os.path.dirname(os.path.realpath(entry)) == lib

    return [entry for entry in path if not zipped(entry)] + [entry for entry in path if zipped(entry)]


def use_installed_pyspark() -> None:
    """:func:`prefer_installed_pyspark` applied to this interpreter's ``sys.path`` (``SPARK_HOME``
    from the environment Spark gives its Python processes)."""
    sys.path[:] = prefer_installed_pyspark(sys.path, os.environ.get("SPARK_HOME"))


class YoungGenerationsGC(ModuleType):
    """The ``gc`` module as :mod:`pyspark.daemon` sees it: ``collect()`` without an argument
    collects generations 0 and 1 instead of all three (see the module docstring)."""

    def __init__(self):
        super().__init__("gc")

    def __getattr__(self, name: str):
        return getattr(gc, name)

    @staticmethod
    def collect(generation: int = 1) -> int:
        return gc.collect(generation)


if __name__ == "__main__":
    use_installed_pyspark()
    import pyspark.daemon

    pyspark.daemon.gc = YoungGenerationsGC()
    pyspark.daemon.manager()
