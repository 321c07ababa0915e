"""Spark's Python worker daemon (``pyspark.daemon``), importing pyspark from its installed package
and collecting only the young generations between tasks.

Spark starts its Python processes with ``pyspark.zip`` first on the path, which Python compiles
at every start (:mod:`lenga.io.pyspark_path` explains and measures it); this daemon applies
:func:`lenga.io.pyspark_path.use_installed_pyspark` and then runs the stock daemon.
:func:`lenga.io.session.build_session` selects it (``spark.python.daemon.module``) for local
masters only: on a cluster the executors' Python may not import lenga before a task ships it.
Spark uses it for the UDF and data-source read workers; its data-source planning daemons and the
streaming source runner are started with the stock modules (the venv's ``sitecustomize`` covers
those).

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
from types import ModuleType

from lenga.io.pyspark_path import use_installed_pyspark


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
