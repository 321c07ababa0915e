"""What a step of a query sees and returns: the contracts between the queries and their steps.

A query (:mod:`lenga.stream.ingest`, :mod:`lenga.stream.aggregate`, :mod:`lenga.stream.reclassify`)
runs its steps in the order of its ``default_steps`` function; a step (:mod:`lenga.stream.steps`)
imports this module, never a query, so a new step needs no change of the queries but that list.

- Ingest steps (:class:`BatchStep`: cross-match, stamp classifier) run per micro-batch after the
  four core tables are committed, on a :class:`BatchContext`.
- Object steps (:class:`ObjectStep`: features, light-curve classifier) run per aggregation
  micro-batch after the ``objects`` MERGE, on an :class:`ObjectBatchContext`; a :class:`PassStep`
  has its rows computed in the aggregation's single Python pass over the curves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from lenga.config import Config
from lenga.io.lake import Lake
from lenga.tables import WriteResult


@dataclass
class BatchContext:
    """What an enrichment step sees of a micro-batch after the four core tables are committed.

    ``tables`` holds this batch's rows (decoded, not re-read from the lake); ``app_id`` and
    ``batch_id`` must tag every Delta commit the step makes so that replays stay idempotent.
    """

    spark: SparkSession
    lake: Lake
    app_id: str
    batch_id: int
    tables: dict[str, DataFrame]
    config: Config


class BatchStep(Protocol):
    """An enrichment stage run after the core tables (cross-match, aggregation, classifiers...).

    Returns the write results of the tables it appended to, keyed by table name.
    """

    name: str

    def __call__(self, batch: BatchContext) -> dict[str, WriteResult]: ...


@dataclass
class ObjectBatchContext:
    """What an object step sees of an aggregation micro-batch after the ``objects`` MERGE.

    ``curves`` holds one row per touched object (``udfs.curves.CURVES_SCHEMA``: its full
    de-duplicated curve as arrays and its latest alert context), persisted for the whole batch.
    ``tables`` holds this batch's ``objects`` rows under ``"objects"``; a step adds its output
    DataFrame under its table name for the steps after it. ``app_id`` and ``batch_id`` must tag
    every Delta commit of a step so that a replayed batch writes nothing twice.
    """

    spark: SparkSession
    lake: Lake
    app_id: str
    batch_id: int
    curves: DataFrame | None
    tables: dict[str, DataFrame]
    config: Config
    #: Rows the writer's single Python pass computed for each :class:`PassStep`, by step name
    #: (lazy selections of the persisted pass result; the step adds its batch columns and writes them).
    computed: dict[str, DataFrame] = field(default_factory=dict)


class ObjectStep(Protocol):
    """A per-object stage run after the ``objects`` MERGE (features, light-curve classifier...).

    Returns the write results of the tables it wrote, keyed by table name.
    """

    name: str

    def __call__(self, batch: ObjectBatchContext) -> dict[str, WriteResult]: ...


#: A :class:`PassStep`'s executor-side function: a block of curve rows (``udfs.curves.CURVES_SCHEMA``,
#: Arrow) and the rows already computed for them (``"objects"``, then earlier steps' by step name)
#: → its own rows for them (Arrow, columns of its ``row_schema``). Pickled to the executors.
RowFunction = Callable[[pa.Table, dict[str, pa.Table]], pa.Table]


@runtime_checkable
class PassStep(ObjectStep, Protocol):
    """An :class:`ObjectStep` whose rows :class:`ObjectsWriter` computes in its single Python pass over
    the batch's curves (with the ``objects`` rows and the earlier pass steps' rows), instead of in a
    Spark job of its own that ships the curves to Python again. Its ``__call__`` then finds them in
    ``batch.computed[name]`` and only writes them."""

    #: Columns of the rows :meth:`row_function`'s function returns.
    row_schema: pa.Schema

    def row_function(self, spark: SparkSession) -> RowFunction: ...
