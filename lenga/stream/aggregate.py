"""The aggregation query: ``detections`` + ``non_detections`` → per-object light curves → ``objects``.

    detections ───┐ (one lenga_points source over the three tables, packing points per object in
    non_detections┤  its tasks; or delta-spark's source per table and a packing mapInArrow)
    alerts (context columns only)
                  └─ packed points ─ groupBy(survey, objectId)
                                       └─ state_ttl_days null: streaming aggregation (JVM)
                                            collect_list(packed points), max_by(context, (mjd, candid))
                                          state_ttl_days set: applyInPandasWithState(curve_updater)
                                            RocksDB state: the curve and the latest alert's context
                            └─ foreachBatch(ObjectsWriter)
                                 ├─ one mapInArrow (object_row_batches), per block of objects:
                                 │    curve rows (aggregated_curve_table: merge_curves)
                                 │    → objects rows                       lenga.curves.points
                                 │    → features rows                      lenga.features (PassStep)
                                 │    → light-curve classifications        lenga.lc_classifier (PassStep)
                                 │  (persisted once: every table below is a selection of it)
                                 ├─ MERGE into objects (keys survey, objectId; partition hpx)
                                 └─ object steps, in order (ObjectStep), writing their rows:
                                      features  → MERGE into features      lenga.stream.steps.features
                                      lc_classifier → append lc_classifications  lenga.stream.steps.lc_classifier
                                      (others registered by the caller)

A second streaming query chained to the ingest query through Delta (medallion style): ingest keeps
its speed, each stage scales and restarts on its own, and the aggregation sees every detection once
whatever alert, history or replay it came from (the ingest tables are already de-duplicated).

**Why a state store rather than a keyed lookup into ``detections``.** Each micro-batch needs the
full curve of every object it touches. A lookup would read, per batch, the detections of the touched
objects from the lake: even with objectId/HEALPix clustering and file statistics, that is a join
against a table of ~10^10 rows whose matching files are scattered over every night the objects
were seen, so the cost grows with the history. A state store keeps each object's curve under its
key in RocksDB, sharded by the hash of (survey, objectId) over the shuffle partitions: a batch reads
and writes only the touched keys (point lookups, local to the executor owning the shard), so the
cost per batch is ~ touched objects x curve length, and 10^8 objects are spread over as many
executors as there are state partitions (state lives on local disk, not in the JVM heap, and is
checkpointed incrementally). The state is versioned with the query's offsets, so a replayed batch
starts from the same state and emits the same rows.

**Which stateful operator: the cost per touched object.** Every Python call Spark makes per
group costs milliseconds whatever the function does (measured on this 2-core machine, 8,029
objects: ``applyInPandas`` with a no-op function 2.7 ms of worker CPU per group with 3 columns,
4.5 ms with the 17 point columns, plus ~1 ms in the JVM; ``transformWithStateInPandas`` adds a
socket round trip to the JVM's state server per state call: 8-10 ms per object, and
0.6 ms per call with a MapState over hash buckets). So the default operator has no Python per
object: **Spark's streaming aggregation** (``state_ttl_days: null``), ``collect_list`` of the
object's packed points (lenga.curves.packing: each reading task packs an object's points into one
binary value, so the JVM moves a few opaque values per object instead of a struct per point) and
``max_by`` of the alert context over (mjd, candid), merged in the JVM with the state in RocksDB;
one ``mapInArrow`` call then turns thousands of objects at once into sorted,
de-duplicated curve rows (:func:`lenga.curves.points.merge_curves` removes repeated points and decides
between copies that differ in any bit). A list, not a set: the ingest tables hold each point once
(keyed appends) and the Delta stream delivers each committed row once, so there is nothing for a
set to remove, and ``collect_set`` hashes every point in the JVM (1.7 of 11 JVM CPU-s per
20,000-alert batch); a copy that still got in (a table rewritten with data changes) would only
take state space, the curve being de-duplicated anyway. 20,000
alerts (8,029 objects, 441k points): curves + ``objects`` 84 → 38 CPU-s, 182 → 75 s wall on the
loaded machine (``python -m lenga.bench.aggregate --no-steps [--state-ttl-days 400]``); on the
quiet machine, warm, a point struct each 9.5 CPU-s (JVM 6.0), packed points 5.4-5.6 (JVM 1.9-2.1),
with ObjectHashAggregate kept from falling back to a sort (conf/lenga.yaml).

**State TTL.** Spark's streaming aggregation has no state expiry (its state is evicted only by an
event-time watermark on a grouping column, which would split a curve at window borders): its
state holds every object ever seen, which a cluster's local disks hold at 10^8 objects (a curve of
a few hundred points is a few kB in RocksDB). ``state_ttl_days`` (e.g. 400, longer than an LSST
alert's 12-month history) selects ``applyInPandasWithState`` instead, whose processing-time timeout
(re-armed whenever the object is touched) expires objects untouched that long: their state is
dropped and a later alert restarts from its own history (that object's ``objects`` row is then
recomputed from a partial curve). It costs one Python call per touched object (~2.2x the CPU of
the aggregation here), and Spark checks timeouts by scanning each state partition every batch. Both
operators give the same curves (tests/spark/test_aggregate_query.py runs one against the other).

**State reload after loss.** The state is derived data. Start the query with a new checkpoint: the
Delta streams begin at version -1, so every detection and non-detection in the lake is replayed
(``maxVersionsPerTrigger`` bounds the batches), the curves are rebuilt exactly (merging is a set
union) and every ``objects`` row is re-merged with the same values. This needs the Delta log
entries of the ingest tables (``logRetentionDuration``, 30 days by default: raise it for these
tables, or checkpoint the state store regularly). Once old log entries are gone, the state would
be seeded from a snapshot of the tables and the streams started after that snapshot's versions
(not implemented yet; neither operator takes an initial state in PySpark 4.2 but
``transformWithStateInPandas``).

**Partitioning of ``objects``: ``hpx``, nested HEALPix order 2 of the mean position** (192 pixels
of ~15 deg; -1 for an object without a detection yet). A survey observes a few fields per minute,
so a micro-batch touches objects in a few sky pixels, and the MERGE is restricted (literal
predicate on the partition column) to those pixels and their neighbours: it opens and rewrites only
files of that region, however large the table. The pixel is a function of the mean position, which
is order-independent; a mean position that crosses a pixel border moves the row to the neighbour
pixel, which is why neighbours are part of the MERGE's target. (The night of the first detection
would not be stable: a late, older detection would change it.)

**Idempotency.** Every MERGE carries the app transaction (aggregation query id, batch id): a batch
replayed after a crash between the MERGE and Spark's checkpoint commit finds its id and is skipped.

**Object steps.** After the ``objects`` MERGE, :class:`ObjectsWriter` runs a list of
:class:`ObjectStep` s in order, each with an :class:`ObjectBatchContext`: a ``tables`` dict holding
this batch's ``objects`` rows, to which every step adds its own output (``features``, then the
light-curve classifier reads ``tables["features"]``). :func:`default_steps` lists the default steps
(features, light-curve classifier); a caller registers more by passing the full list, e.g.
``start_aggregation(spark, config, lake, steps=[*default_steps(config, lake), build_object_step(config,
lake)])`` (``run_aggregation`` takes the same ``steps``). Each step tags its own Delta commits with
the batch's (app id, batch id), so replays stay idempotent step by step.

**One Python pass per batch.** A step that is a :class:`PassStep` (both default steps) also gives a
picklable function of a block of curves (and of the rows computed before it) → its rows; the writer
runs the ``objects`` statistics and every such function in one ``mapInArrow``, right on the
streaming aggregation's rows (``aggregated_curve_table`` in the same worker), persists the result
once and hands each step its rows in ``batch.computed``: the step only adds its batch column and
writes. The curves thus go to Python once per batch, not once per consumer (curve rows, ``objects``
rows, features, classification) with a cache in the JVM between them. 20,000 alerts (8,029
objects, one micro-batch; ``python -m lenga.bench.aggregate --alerts 20000 --repeats 3``, CPU
seconds of driver + JVM + Python workers on the loaded 2-core machine, C1-only JIT of
conf/lenga.yaml): 47.6 → 42.8 in a fresh session (JIT and Python workers' imports included),
32.3-32.8 → 24.2-25.3 in the later runs, whose warm workers and JIT are those of a running stream. ``batch.curves`` (``CURVES_SCHEMA``
rows, persisted) exists only when a step outside the pass is registered; it is None otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.streaming import StreamingQuery

from lenga.config import Config, ConfigError
from lenga.curves.magstats import OBJECTS, OBJECTS_SPEC
from lenga.curves.packing import ALERTS, DETECTIONS, NON_DETECTIONS, PACKED_SCHEMA, pack_batches
from lenga.curves.points import (
    CONTEXT_COLUMNS,
    CURVE_COLUMNS,
    DETECTION,
    NO_CANDID,
    OBJECT_KEY,
    target_pixels,
)
from lenga.io.lake import TABLE_COLUMN, Lake, open_lake
from lenga.io.session import await_query, build_session, chained_query, start_in_pool
from lenga.stream.ingest import query_app_id
from lenga.stream.points_source import PackedPointsSource
from lenga.stream.preflight import check_points_layout
from lenga.stream.steps.base import ObjectBatchContext, ObjectStep, PassStep
from lenga.tables import TABLE_SPECS, WriteResult
from udfs.curves import (
    ALERT,
    CURVES_SCHEMA,
    STORED_STATE_SCHEMA,
    aggregated_curve_batches,
    curve_updater,
    object_row_batches,
    pass_schema,
)

MS_PER_DAY = 86_400_000
NO_DATA_BATCHES_CONF = "spark.sql.streaming.noDataMicroBatches.enabled"


def _point_columns(table: str) -> list[str]:
    """The key and the curve columns a point table holds."""
    names = TABLE_SPECS[table].schema.names
    return [c for c in [*OBJECT_KEY, *CURVE_COLUMNS] if c in names]


#: What the aggregation reads of each table (the ``lenga_delta`` source is a Python reader that
#: sends every column of its schema to the JVM, no column pruning: detections 16 of 31 columns);
#: of the alerts, the key, the alert's time and its context.
POINT_READS = {
    DETECTIONS: _point_columns(DETECTIONS),
    NON_DETECTIONS: _point_columns(NON_DETECTIONS),
    ALERTS: [*OBJECT_KEY, "candid", "mjd", "band", *CONTEXT_COLUMNS],
}


@dataclass
class AggregationSettings:
    """The ``aggregation`` section of the configuration (all optional)."""

    checkpoint: str | None = None        # default: <stream.checkpoint>/../aggregate
    state_ttl_days: float | None = None  # None: no expiry, the fast operator (see the module docstring)
    max_versions_per_trigger: int | None = None
    trigger: str | None = None           # default: stream.trigger
    query_name: str = "lenga-aggregate"

    def __post_init__(self):
        if self.state_ttl_days is not None and self.state_ttl_days <= 0:
            raise ConfigError("config.aggregation.state_ttl_days: must be > 0 (or null: never expire)")
        if self.trigger not in (None, "available_now", "processing_time"):
            raise ConfigError("config.aggregation.trigger: must be available_now or processing_time")
        if self.max_versions_per_trigger is not None and self.max_versions_per_trigger < 1:
            raise ConfigError("config.aggregation.max_versions_per_trigger: must be >= 1")

    @classmethod
    def from_config(cls, config: Config) -> AggregationSettings:
        section = config.section("aggregation")
        unknown = sorted(set(section) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"config.aggregation: unknown key(s) {unknown}")
        return cls(**section)

    def checkpoint_for(self, config: Config) -> str:
        return self.checkpoint or str(Path(config.stream.checkpoint).parent / "aggregate")


def point_rows(tables: DataFrame) -> DataFrame:
    """The :data:`POINT_READS` tables (a :func:`lenga.io.lake.tagged_union` or :meth:`lenga.io.lake.Lake.stream_appends`) as
    light-curve points and alert-context rows, shaped alike: ``OBJECT_KEY``, ``CURVE_COLUMNS``,
    ``CONTEXT_COLUMNS``. Detections get kind ``DETECTION``; non-detections keep theirs (upper limit
    or forced photometry) and get candid ``NO_CANDID``; alerts are kind ``udfs.curves.ALERT``
    rows carrying the context. The columns a table lacks are null (no sign or position for a
    non-detection, no photometry in an alert's context row)."""

    table = F.col(TABLE_COLUMN)
    derived = {
        "kind": (F.when(table == DETECTIONS, F.lit(DETECTION)).when(table == ALERTS, F.lit(ALERT))
                 .otherwise(F.col("kind"))),
        "candid": F.when(table == NON_DETECTIONS, F.lit(NO_CANDID).cast("long")).otherwise(F.col("candid")),
    }
    return tables.select(*OBJECT_KEY, *[derived.get(c, F.col(c)).alias(c) for c in CURVE_COLUMNS],
                         *[F.col(c).cast("double").alias(c) for c in CONTEXT_COLUMNS])


def packed_point_stream(spark: SparkSession, lake: Lake, settings: AggregationSettings) -> DataFrame:
    """The appends of the :data:`POINT_READS` tables as packed points
    (:data:`lenga.curves.packing.PACKED_SCHEMA`: per object, its points as one binary value and its
    latest alert's context). On a delta-rs lake the ``lenga_points`` source packs them in the task
    that reads the files; with delta-spark one ``mapInArrow`` packs the rows of its sources."""

    reads = {TABLE_SPECS[name]: columns for name, columns in POINT_READS.items()}
    if not lake.python_table_sources:
        return lake.stream_appends(reads, settings.max_versions_per_trigger).mapInArrow(
            pack_batches, from_arrow_schema(PACKED_SCHEMA))
    for spec in reads:
        lake.ensure(spec)
    columns = list(dict.fromkeys(c for columns in POINT_READS.values() for c in columns))
    return lake.lenga_reader(PackedPointsSource, list(POINT_READS), settings.max_versions_per_trigger).option(
        "columns", ",".join(columns)).load()


def default_steps(config: Config, lake: Lake) -> list[ObjectStep]:
    """The default object steps, in order: the light-curve features (``lenga.stream.steps.features``), then
    the light-curve classifier on them (``lenga.stream.steps.lc_classifier``; skipped when disabled)."""
    # Imported here: the classifier step loads xgboost, which a query without steps never needs.
    from lenga.stream.steps.features import build_step as build_features
    from lenga.stream.steps.lc_classifier import build_object_step as build_lc_classifier

    builders = (build_features, build_lc_classifier)
    return [step for step in (build(config, lake) for build in builders) if step is not None]


@dataclass
class ObjectsBatchReport:
    batch_id: int
    objects: int
    seconds: float
    merge: WriteResult
    tables: dict[str, WriteResult] = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)
    #: Wall time of the batch's own phases: ``rows`` (stream reads, the stateful operator and the
    #: single Python pass: ``objects`` rows and the pass steps' rows), ``objects_merge``.
    phase_seconds: dict[str, float] = field(default_factory=dict)


class ObjectsWriter:
    """The ``foreachBatch`` function: curves of the touched objects → one Python pass (``objects``
    rows and the rows of every :class:`PassStep`) → MERGE ``objects`` → steps, which write them."""

    def __init__(self, lake: Lake, checkpoint: str, config: Config, steps: Sequence[ObjectStep] = (),
                 aggregated: bool = False):
        self.lake = lake
        self.checkpoint = checkpoint
        self.config = config
        self.steps = list(steps)
        #: Input rows are :func:`aggregation_state` rows (made curve rows inside the pass), not curve rows.
        self.aggregated = aggregated
        self.reports: list[ObjectsBatchReport] = []
        self._app_id: str | None = None
        self._objects_schema = pa.schema([f for f in OBJECTS if f.name != "last_batch_id"])

    def _pass(self, rows: DataFrame, aggregated: bool, in_pass: list[PassStep]) -> DataFrame:
        """The batch's one ``mapInArrow`` over the curves (``udfs.curves.object_row_batches``)."""

        spark = rows.sparkSession
        functions = [(step.name, step.row_schema, step.row_function(spark)) for step in in_pass]
        schema = pass_schema(self._objects_schema, [(step.name, step.row_schema) for step in in_pass])
        return rows.mapInArrow(object_row_batches(self._objects_schema, functions, aggregated),
                               from_arrow_schema(schema))

    def __call__(self, rows: DataFrame, batch_id: int) -> None:

        if self._app_id is None:
            self._app_id = query_app_id(self.checkpoint)
        started = time.perf_counter()
        phases = {}
        in_pass = [step for step in self.steps if isinstance(step, PassStep)]
        # A step outside the pass reads the curves itself: they are kept (persisted, so that the
        # stateful operator runs once) and the pass reads them; otherwise the curves exist only
        # inside the pass's Python workers.
        keep_curves = len(in_pass) < len(self.steps)
        curves = None
        if keep_curves:
            curves = rows.mapInArrow(aggregated_curve_batches, CURVES_SCHEMA) if self.aggregated else rows
            curves = curves.persist(StorageLevel.MEMORY_AND_DISK)
        computed = self._pass(curves if keep_curves else rows, self.aggregated and not keep_curves, in_pass)
        computed = computed.persist(StorageLevel.MEMORY_AND_DISK)

        def rows_of(table: str) -> DataFrame:
            return computed.where(F.col(table).isNotNull()).select(f"{table}.*")

        tables = {OBJECTS_SPEC.name: rows_of(OBJECTS_SPEC.name).withColumn("last_batch_id", F.lit(batch_id).cast("long"))}
        try:
            summary = tables[OBJECTS_SPEC.name].agg(F.count("*").alias("n"), F.collect_set("hpx").alias("hpx")).first()
            phases["rows"] = time.perf_counter() - started
            result = self.lake.merge(OBJECTS_SPEC, tables[OBJECTS_SPEC.name], self._app_id, batch_id,
                                     target_partitions={"hpx": target_pixels(list(summary["hpx"]))})
            phases["objects_merge"] = result.seconds
            report = ObjectsBatchReport(batch_id, int(summary["n"]), 0.0, result, phase_seconds=phases)
            context = ObjectBatchContext(rows.sparkSession, self.lake, self._app_id, batch_id, curves, tables, self.config,
                                         {step.name: rows_of(step.name) for step in in_pass})
            for step in self.steps:
                step_started = time.perf_counter()
                report.tables.update(step(context))
                report.step_seconds[step.name] = time.perf_counter() - step_started
        finally:
            for table in tables.values():
                table.unpersist()
            computed.unpersist()
            if curves is not None:
                curves.unpersist()
        report.seconds = time.perf_counter() - started
        self.reports.append(report)


def aggregation_state(packed: DataFrame) -> DataFrame:
    """Spark's own streaming aggregation (no state TTL): per object, the list of its packed points
    (:func:`packed_point_stream`) and the context of its latest alert, merged in the JVM;
    ``udfs.curves.aggregated_curve_table`` makes them ``CURVES_SCHEMA`` rows (inside
    :class:`ObjectsWriter`'s pass)."""
    latest = F.when(F.col("alert_mjd").isNotNull(), F.struct("alert_mjd", "alert_candid"))
    return packed.groupBy(*OBJECT_KEY).agg(F.collect_list("points").alias("points"),
                                           F.max_by(F.struct(*CONTEXT_COLUMNS), latest).alias("context"))


def stateful_curves(packed: DataFrame, ttl_ms: int) -> DataFrame:
    """Curves kept by ``applyInPandasWithState`` (``udfs.curves.curve_updater``) from the packed
    points of :func:`packed_point_stream`, whose processing-time timeout expires objects untouched
    for ``ttl_ms``."""
    from pyspark.sql.streaming.state import GroupStateTimeout


    return packed.groupBy(*OBJECT_KEY).applyInPandasWithState(
        curve_updater(ttl_ms), CURVES_SCHEMA, STORED_STATE_SCHEMA, "Update", GroupStateTimeout.ProcessingTimeTimeout)


def start_aggregation(spark: SparkSession, config: Config, lake: Lake,
                      settings: AggregationSettings | None = None,
                      steps: Sequence[ObjectStep] | None = None) -> tuple[StreamingQuery, ObjectsWriter]:
    """Start the aggregation query (its checkpoint: ``settings.checkpoint_for(config)``).

    ``steps`` run after the ``objects`` MERGE, in order; default :func:`default_steps`, ``[]`` for
    the ``objects`` table alone.
    """
    settings = settings or AggregationSettings.from_config(config)
    checkpoint = settings.checkpoint_for(config)
    Path(checkpoint).mkdir(parents=True, exist_ok=True)
    check_points_layout(checkpoint)
    lake.ensure(OBJECTS_SPEC)
    packed = packed_point_stream(spark, lake, settings)
    aggregated = not settings.state_ttl_days
    rows = (aggregation_state(packed) if aggregated
            else stateful_curves(packed, int(settings.state_ttl_days * MS_PER_DAY)))
    writer = ObjectsWriter(lake, checkpoint, config, default_steps(config, lake) if steps is None else steps,
                           aggregated=aggregated)
    builder = chained_query(rows, settings.query_name, writer, checkpoint,
                            settings.trigger or config.stream.trigger, config.stream.processing_time
                            ).outputMode("update")  # an object's row is emitted again each time it is touched
    # A processing-time timeout makes the operator ask for a batch after every batch (timeouts may
    # fire): an availableNow query would never end. The query captures the session conf when it
    # starts; batches run only for new data (expiry then happens in data batches).
    previous = spark.conf.get(NO_DATA_BATCHES_CONF, None)
    spark.conf.set(NO_DATA_BATCHES_CONF, "false")
    try:
        query = start_in_pool(builder, "aggregation")
    finally:
        if previous is None:
            spark.conf.unset(NO_DATA_BATCHES_CONF)
        else:
            spark.conf.set(NO_DATA_BATCHES_CONF, previous)
    return query, writer


@dataclass
class AggregationSummary:
    """A finished aggregation run."""

    lake_root: str
    wall_s: float
    batches: list[ObjectsBatchReport] = field(default_factory=list)
    objects_in_lake: int = 0

    @property
    def objects_updated(self) -> int:
        return sum(b.objects for b in self.batches)


def run_aggregation(config: Config, spark: SparkSession | None = None,
                    settings: AggregationSettings | None = None,
                    steps: Sequence[ObjectStep] | None = None) -> AggregationSummary:
    """Run the aggregation query to completion (availableNow) or until stopped; for the demo and
    jobs/aggregate.py, after (or beside) the ingest query. ``steps`` as in :func:`start_aggregation`."""
    spark = spark or build_session("lenga-aggregate", config.spark)
    lake = open_lake(spark, config.lake.root, config.lake.backend)
    started = time.perf_counter()
    query, writer = start_aggregation(spark, config, lake, settings, steps)
    await_query(query)
    return AggregationSummary(str(lake.root), time.perf_counter() - started, writer.reports,
                              lake.count(OBJECTS_SPEC.name))
