"""The distribution query: new alerts → enriched alert → user filters → one Kafka topic per filter.

    alerts (Delta stream of appends; lenga_delta, or delta-spark's source)   cutouts not read
      └─ foreachBatch(DistributionWriter)
           ├─ filters file re-read if changed (lenga.filters.reload), pinned per batch id
           ├─ enrich: + objects row, xmatch flags, stamp and light-curve classes (lake reads
           │          restricted to the batch's objects / candids; a missing table gives nulls);
           │          the features map and xmatch array only when a predicate reads them
           ├─ select: every filter's predicate [+ watchlist cone match] in one pass → one row per
           │          (alert, filter selecting it), the payloads' columns only (checkpointed)
           └─ publish: + light curves / cutouts for the rows whose payload has them → one
                      mapInArrow building every filter's payload (thin | lightcurve | full) → Avro
                      (Confluent wire format with a registry, else object container) → Kafka from
                      the task (confluent-kafka, lenga.io.kafka_sink's writer), every message
                      acknowledged before the batch commits

A batch is four Spark actions whatever the number of filters (the alerts' count and nights, the
selection, its count per filter, the publishing) plus the broadcasts of their joins.

A third streaming query chained to ingest through Delta like the aggregation query: publishing
never slows ingest down, and it restarts on its own checkpoint.

**The enriched alert** (``ENRICHED_SCHEMA``, what a filter's ``where`` sees) is the alert's columns
(``lenga.schema.ALERTS`` without the cutouts) plus:

- ``objects``: a struct, the object's row of the ``objects`` table (``objects.ndet``,
  ``objects.firstmjd``, ``objects.magmean_g`` ...);
- ``features``: a map feature name → value of the object's latest ``features`` row (highest
  ``feature_version``, then latest ``last_batch_id``), NaN as null: ``features['Amplitude_g'] > 0.5``;
- ``xmatch``: an array of the object's matches (``catalog, catalog_version, source_id, sep_arcsec,
  properties, labels``): ``exists(xmatch, m -> m.catalog = 'gaia_dr3' AND m.sep_arcsec < 1)``;
  ``known_sso`` / ``probable_star``: the flags of ``xmatch_objects``;
- ``stamp_probabilities`` (map class → probability of *this* candid, latest classifier version),
  ``stamp_class`` / ``stamp_probability`` (ranking 1), ``stamp_classifier_version``;
- ``lc_probabilities`` (map, top and leaf classes of the object's latest light-curve
  classification: highest classifier version, then latest lastmjd, ndet, batch), ``lc_class`` /
  ``lc_probability`` (top level, ranking 1), ``lc_subclass`` / ``lc_subclass_probability`` (leaf),
  ``lc_classifier_version``, ``lc_lastmjd`` (the last detection the classification saw);
- ``first_detection_mjd`` (earliest of ``objects.firstmjd``, ZTF ``jdstarthist`` and the alert's
  ``mjd``) and ``days_since_first_detection``;
- ``watchlist_target`` / ``watchlist_sep_arcsec``: set for a watchlist filter's matches, else null.

A table that does not exist yet contributes nulls (an empty map/array for ``xmatch``), so a filter
on it matches nothing instead of failing.

**Consistency.** Each table is read as committed when the batch runs:

- ``stamp_classifications`` is written by the ingest query in the same micro-batch as the alert
  (after the alerts table), so in a concurrent deployment a batch may see an alert before its stamp
  classes; in a chained (availableNow) run it always sees them;
- ``objects``, ``features`` and ``lc_classifications`` come from the aggregation query, which runs
  on its own clock: the light-curve class and statistics of an alert may lag by one aggregation
  batch (they describe the curve up to ``lc_lastmjd`` / ``objects.lastmjd``, which can be earlier
  than the alert). Filters that need the up-to-date class should test ``lc_lastmjd >= mjd``;
- the ``lightcurve`` payload holds the object's detections and non-detections with ``mjd`` up to the
  alert's, as stored in the lake; the detections of the alert's own ingest batch are committed
  right after the alerts table, so a concurrent deployment may miss the newest points, never
  points from after the alert.

**Delivery: at-least-once, replay-stable.** Each publishing task flushes its producer and fails
unless every message it sent is acknowledged; the batch, hence Spark's commit, waits for all tasks. A crash in between replays the batch: the filters file
version used is pinned per batch id (``<checkpoint>/filters/<batch>.yaml``) so the replay applies the
same filters, and the messages it sends again are duplicates with the same (key = objectId, candid)
(a header), which consumers drop. Only lake tables written by the other queries in the meantime can
change what a replay selects (e.g. an lc class that arrived in between).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DoubleType,
    MapType,
    NumericType,
    StringType,
    StructField,
    StructType,
)

from lenga.config import Config
from lenga.curves.magstats import OBJECTS
from lenga.curves.points import OBJECT_KEY
from lenga.filters.config import FilterError, FilterSet, FilterSettings, FilterSpec, parse_filters
from lenga.filters.payloads import (
    encode_batch,
    field_names,
    published_schema,
    schema_version_tag,
)
from lenga.filters.registry import RegistryError, register_schema
from lenga.filters.reload import FilterReloader
from lenga.filters.watchlist import cone_match
from lenga.io.delta_source import table_arrow_schema
from lenga.io.kafka import create_topics
from lenga.io.kafka_sink import KafkaSinkWriter
from lenga.io.lake import TABLE_COLUMN, Lake, open_lake
from lenga.io.session import await_query, build_session, chained_query, start_in_pool
from lenga.schema import ALERTS
from lenga.stream.predicate import CompiledFilter, compile_predicate
from lenga.tables import FEATURES_TABLE as FEATURES
from lenga.tables import LC_CLASSIFICATIONS_TABLE as LC
from lenga.tables import STAMP_CLASSIFICATIONS_TABLE as STAMP
from lenga.tables import TABLE_SPECS, TableSpec
from lenga.tables import XMATCH_OBJECTS_TABLE as XMATCH_OBJECTS
from lenga.tables import XMATCH_TABLE as XMATCH

ALERT_KEY = ["survey", "candid"]
CUTOUT_COLUMNS = [name for name in ALERTS.names if name.startswith("cutout")]
#: What the distribution query reads of the alerts table: everything but the cutouts.
ALERT_COLUMNS = [name for name in ALERTS.names if name not in CUTOUT_COLUMNS]
JD_MINUS_MJD = 2400000.5
# Columns of the features table that identify a row rather than describe the curve.
FEATURE_BOOKKEEPING = {"survey", "objectId", "feature_version", "night", "last_batch_id"}
# Pinned filters files kept in the checkpoint (Spark keeps 100 batches of its own logs by default).
PINNED_BATCHES_KEPT = 100
DETECTION_FIELDS = ["mjd", "candid", "band", "ra", "dec", "magpsf", "sigmapsf", "psfFlux", "psfFluxErr", "isdiffpos"]
NON_DETECTION_FIELDS = ["mjd", "kind", "band", "diffmaglim", "psfFlux", "psfFluxErr"]

_PROBABILITIES = MapType(StringType(), DoubleType())
_XMATCH_ROW = StructType([
    StructField("catalog", StringType()), StructField("catalog_version", StringType()),
    StructField("source_id", StringType()), StructField("sep_arcsec", DoubleType()),
    StructField("properties", MapType(StringType(), DoubleType())),
    StructField("labels", MapType(StringType(), StringType())),
])
_OBJECT_VALUES = [name for name in OBJECTS.names if name not in OBJECT_KEY]
FEATURES_PART_SCHEMA = StructType([StructField("survey", StringType()), StructField("objectId", StringType()),
                                   StructField("features", _PROBABILITIES)])
#: Enriched columns in no payload and costly for every alert of a batch (the features map has a few
#: hundred values): built only when a filter in force reads them.
OPTIONAL_COLUMNS = frozenset({"features", "xmatch"})

#: The enriched alert: the columns a filter's predicate may use (see the module docstring).
ENRICHED_SCHEMA = StructType([
    *from_arrow_schema(pa.schema([ALERTS.field(n) for n in ALERT_COLUMNS])).fields,
    StructField("objects", from_arrow_schema(pa.schema([OBJECTS.field(n) for n in _OBJECT_VALUES]))),
    StructField("features", _PROBABILITIES),
    StructField("xmatch", ArrayType(_XMATCH_ROW)),
    StructField("known_sso", BooleanType()),
    StructField("probable_star", BooleanType()),
    StructField("stamp_probabilities", _PROBABILITIES),
    StructField("stamp_class", StringType()),
    StructField("stamp_probability", DoubleType()),
    StructField("stamp_classifier_version", StringType()),
    StructField("lc_probabilities", _PROBABILITIES),
    StructField("lc_class", StringType()),
    StructField("lc_probability", DoubleType()),
    StructField("lc_subclass", StringType()),
    StructField("lc_subclass_probability", DoubleType()),
    StructField("lc_classifier_version", StringType()),
    StructField("lc_lastmjd", DoubleType()),
    StructField("first_detection_mjd", DoubleType()),
    StructField("days_since_first_detection", DoubleType()),
    StructField("watchlist_target", StringType()),
    StructField("watchlist_sep_arcsec", DoubleType()),
])


# --- reading the lake ------------------------------------------------------------------------------

def read_table(lake: Lake, name: str, nights: list[int] | None = None) -> DataFrame | None:
    """A lake table written by another stage, with the schema it has now; None if it does not exist."""
    if not lake.exists(name):
        return None
    return lake.read(TableSpec(name, table_arrow_schema(lake.path(name))), nights)


def version_order(column: str) -> Column:
    """A version string as an array of its integers ('1.10.0' → [1, 10, 0]), so that versions
    compare numerically (as strings '1.10' < '1.9')."""
    return F.transform(F.split(F.col(column), r"[^0-9]+"), lambda part: part.try_cast("int"))


def _latest(frame: DataFrame, keys: list[str], order: list[Column]) -> DataFrame:
    """The rows of ``frame`` whose ``order`` is the greatest within their ``keys`` (all of them on a tie)."""
    rank = F.struct(*order)
    return (frame.withColumn("_rank", rank).withColumn("_best", F.max("_rank").over(Window.partitionBy(*keys)))
            .where(F.col("_rank") == F.col("_best")).drop("_rank", "_best"))


def _class_map() -> Column:
    return F.map_from_entries(F.collect_list(F.struct("class_name", F.col("probability").cast("double"))))


def object_part(lake: Lake, keys: DataFrame) -> DataFrame | None:
    frame = read_table(lake, "objects")
    if frame is None:
        return None
    return frame.join(keys, OBJECT_KEY, "left_semi").select(*OBJECT_KEY, F.struct(*_OBJECT_VALUES).alias("objects"))


def version_key(version: str | None) -> tuple:
    """:func:`version_order` in Python: '1.10.0' → ((1, 1), (1, 10), (1, 0)); a non-numeric part
    sorts first, as Spark's null does."""
    if version is None:
        return ()
    return tuple((1, int(part)) if part else (0, 0) for part in re.split(r"[^0-9]+", version))


def latest_feature_maps(table: pa.Table, names: list[str]) -> pa.Table:
    """Per object of ``table`` (rows of the ``features`` table): its latest row (highest
    ``feature_version``, then ``last_batch_id``; one of them on a tie) as ``features``, a map
    feature name → value of ``names``, NaN as null (NaN is greater than every number in Spark SQL:
    ``features['x'] > 1`` must not match a NaN).

    Built in Arrow: as a Spark expression the map is an array of a few hundred casts, generated
    code that cost 2 of the 8-9 CPU-s of this part (385 features, 5,363 objects of 152 files; the
    rest is reading that wide table)."""
    versions = table.column("feature_version").to_pylist()
    rank = {v: i for i, v in enumerate(sorted(set(versions), key=version_key))}
    order = pa.table({**{c: table.column(c) for c in OBJECT_KEY},
                      "_version": pa.array([rank[v] for v in versions], pa.int64()),
                      "_batch": table.column("last_batch_id"), "_row": pa.array(np.arange(table.num_rows))})
    order = order.sort_by([(c, "ascending") for c in [*OBJECT_KEY, "_version", "_batch"]])
    survey, object_id = (order.column(c).to_numpy(zero_copy_only=False) for c in OBJECT_KEY)
    last = np.ones(order.num_rows, dtype=bool)  # the last row of each object in the sorted order
    last[:-1] = (survey[1:] != survey[:-1]) | (object_id[1:] != object_id[:-1])
    latest = table.take(order.column("_row").to_numpy()[last])
    values = np.column_stack([latest.column(n).to_numpy(zero_copy_only=False).astype(np.float64)
                              for n in names]).ravel()  # row after row
    maps = pa.MapArray.from_arrays(pa.array(np.arange(0, values.size + 1, len(names), dtype=np.int32)),
                                   pa.array(names * latest.num_rows, pa.string()),
                                   pa.array(values, pa.float64(), mask=np.isnan(values)))
    return pa.table({c: latest.column(c) for c in OBJECT_KEY} | {"features": maps})


def features_part(lake: Lake, keys: DataFrame) -> DataFrame | None:
    frame = read_table(lake, FEATURES)
    if frame is None:
        return None
    names = [f.name for f in frame.schema.fields
             if isinstance(f.dataType, NumericType) and f.name not in FEATURE_BOOKKEEPING]

    def latest(batches):
        # All the rows of an object are in one partition (repartition below), maybe in several batches.
        batches = list(batches)
        if batches:
            yield from latest_feature_maps(pa.Table.from_batches(batches), names).to_batches()

    rows = frame.join(keys, OBJECT_KEY, "left_semi").select(*OBJECT_KEY, "feature_version", "last_batch_id", *names)
    return rows.repartition(*OBJECT_KEY).mapInArrow(latest, FEATURES_PART_SCHEMA)


def xmatch_parts(lake: Lake, keys: DataFrame, with_matches: bool = True) -> list[DataFrame]:
    """The ``xmatch`` array (if ``with_matches``) and the ``known_sso`` / ``probable_star`` flags."""
    parts = []
    matches = read_table(lake, XMATCH) if with_matches else None
    if matches is not None:
        parts.append(matches.join(keys, OBJECT_KEY, "left_semi").groupBy(*OBJECT_KEY).agg(
            F.collect_list(F.struct(*_XMATCH_ROW.names)).alias("xmatch")))
    registry = read_table(lake, XMATCH_OBJECTS)
    if registry is not None:
        parts.append(registry.join(keys, OBJECT_KEY, "left_semi").groupBy(*OBJECT_KEY).agg(
            F.bool_or("known_sso").alias("known_sso"), F.bool_or("probable_star").alias("probable_star")))
    return parts


def stamp_part(lake: Lake, alerts: DataFrame, nights: list[int]) -> DataFrame | None:
    frame = read_table(lake, STAMP, nights)
    if frame is None:
        return None
    rows = _latest(frame.join(alerts.select(*ALERT_KEY), ALERT_KEY, "left_semi"), ALERT_KEY,
                   [version_order("classifier_version")])
    return rows.groupBy(*ALERT_KEY).agg(
        _class_map().alias("stamp_probabilities"),
        F.min_by("class_name", "ranking").alias("stamp_class"),
        F.min_by("probability", "ranking").cast("double").alias("stamp_probability"),
        F.first("classifier_version").alias("stamp_classifier_version"))


def lc_part(lake: Lake, keys: DataFrame) -> DataFrame | None:
    frame = read_table(lake, LC)
    if frame is None:
        return None
    rows = _latest(frame.join(keys, OBJECT_KEY, "left_semi"), OBJECT_KEY,
                   [version_order("classifier_version"), F.col("lastmjd"), F.col("ndet"), F.col("batch_id")])

    def top(level: str, column: str) -> Column:
        return F.min_by(F.when(F.col("level") == level, F.col(column)),
                        F.when(F.col("level") == level, F.col("ranking")))

    return rows.groupBy(*OBJECT_KEY).agg(
        _class_map().alias("lc_probabilities"),
        top("top", "class_name").alias("lc_class"),
        top("top", "probability").cast("double").alias("lc_probability"),
        top("leaf", "class_name").alias("lc_subclass"),
        top("leaf", "probability").cast("double").alias("lc_subclass_probability"),
        F.first("classifier_version").alias("lc_classifier_version"),
        F.max("lastmjd").cast("double").alias("lc_lastmjd"))


def enrich(lake: Lake, alerts: DataFrame, nights: list[int],
           optional: frozenset[str] = OPTIONAL_COLUMNS) -> DataFrame:
    """The enriched alerts (``ENRICHED_SCHEMA``) of a batch of alerts (``ALERT_COLUMNS``) observed
    in ``nights``. Of ``OPTIONAL_COLUMNS`` only those in ``optional`` are built (the others are
    null): the filters in force say which they read (``CompiledFilter.uses``)."""
    keys = F.broadcast(alerts.select(*OBJECT_KEY).distinct())
    enriched = alerts
    parts = [object_part(lake, keys), *xmatch_parts(lake, keys, "xmatch" in optional), lc_part(lake, keys)]
    if "features" in optional:
        parts.append(features_part(lake, keys))
    for part in parts:
        if part is not None:
            enriched = enriched.join(part, OBJECT_KEY, "left")
    stamps = stamp_part(lake, alerts, nights)
    if stamps is not None:
        enriched = enriched.join(stamps, ALERT_KEY, "left")
    present = set(enriched.columns)
    first_history = F.when(F.col("jdstarthist") > 0, F.col("jdstarthist") - JD_MINUS_MJD)
    derived = {
        "xmatch": F.coalesce(F.col("xmatch"), F.array()) if "xmatch" in present else F.array(),
        "first_detection_mjd": F.least(F.col("objects.firstmjd") if "objects" in present else F.lit(None),
                                       first_history, F.col("mjd")),
    }
    enriched = enriched.withColumns(derived).withColumn(
        "days_since_first_detection", F.col("mjd") - F.col("first_detection_mjd"))
    return enriched.select(*[
        (F.col(f.name) if f.name in enriched.columns else F.lit(None)).cast(f.dataType).alias(f.name)
        for f in ENRICHED_SCHEMA.fields])


def object_curves(lake: Lake, objects: DataFrame) -> DataFrame:
    """Per object of ``objects`` (survey, objectId): its detections and non-detections in the lake,
    as time-ordered arrays of structs (the payload's Detection / NonDetection records)."""
    keys = F.broadcast(objects)
    detections = (lake.read(TABLE_SPECS["detections"]).join(keys, OBJECT_KEY, "left_semi")
                  .groupBy(*OBJECT_KEY).agg(F.array_sort(F.collect_list(F.struct(*DETECTION_FIELDS)))
                                            .alias("curve_detections")))
    non_detections = (lake.read(TABLE_SPECS["non_detections"]).join(keys, OBJECT_KEY, "left_semi")
                      .groupBy(*OBJECT_KEY).agg(F.array_sort(F.collect_list(F.struct(*NON_DETECTION_FIELDS)))
                                                .alias("curve_non_detections")))
    return detections.join(non_detections, OBJECT_KEY, "full")


# --- filters -------------------------------------------------------------------------------------

# What each task of the publishing pass returns: the number of messages it sent.
SENT_SCHEMA = pa.schema([("sent", pa.int64())])
#: Column of the selected rows: the index (in ``ActiveFilters.filters``) of the filter selecting it.
FILTER_INDEX = "filter_index"
# Fields of the payloads taken as they are from the enriched alert.
_PAYLOAD_COLUMNS = [name for name in field_names("full") if name in ENRICHED_SCHEMA.names]


def watchlist_match(spec: FilterSpec):
    """A pandas UDF (ra, dec) → struct(target, sep) cone-matching against the filter's watchlist."""
    targets = spec.watchlist

    @F.pandas_udf("struct<target: string, sep: double>")
    def match(ra: pd.Series, dec: pd.Series) -> pd.DataFrame:
        names, separations = cone_match(ra.to_numpy(), dec.to_numpy(), targets)
        return pd.DataFrame({"target": names, "sep": separations})

    return match


def _by_filter(values: dict[int, Column]) -> Column:
    """The value of the row's filter (``FILTER_INDEX``) among ``values`` (index → column), else null."""
    index = F.col(FILTER_INDEX)
    column = None
    for i, value in values.items():
        column = F.when(index == i, value) if column is None else column.when(index == i, value)
    return F.lit(None) if column is None else column


def select_alerts(enriched: DataFrame, filters: Sequence[CompiledFilter]) -> DataFrame:
    """One row per (enriched alert, filter selecting it), the filter's index in ``FILTER_INDEX``,
    with the payloads' columns of the enriched alert (and ``ndet``): every predicate is evaluated in
    one pass over the batch, an alert no filter selects is dropped.

    A watchlist filter's predicate sees its own cone match in ``watchlist_target`` /
    ``watchlist_sep_arcsec`` (null for the other filters), and selects only matched alerts; its
    rows keep that match."""
    frame, chosen, matches = enriched, [], {}
    no_target = {"watchlist_target": F.lit(None).cast("string"), "watchlist_sep_arcsec": F.lit(None).cast("double")}
    for i, compiled in enumerate(filters):
        condition = compiled.condition
        if compiled.spec.watchlist:
            matched = watchlist_match(compiled.spec)("ra", "dec")
            frame = frame.withColumns({
                "watchlist_target": matched["target"],
                "watchlist_sep_arcsec": F.nanvl(matched["sep"], F.lit(None).cast("double"))})
            condition = F.col("watchlist_target").isNotNull() & condition
            matches[i] = (f"_watch{i}_target", f"_watch{i}_sep")
            frame = frame.withColumns({matches[i][0]: F.col("watchlist_target"),
                                       matches[i][1]: F.col("watchlist_sep_arcsec")})
        # A null predicate (a column of a missing table) does not select, as in SQL.
        frame = frame.withColumn(f"_selects{i}", F.when(F.coalesce(condition, F.lit(False)), F.lit(i)))
        chosen.append(f"_selects{i}")
        if compiled.spec.watchlist:
            frame = frame.withColumns(no_target)
    frame = frame.withColumn(FILTER_INDEX, F.explode(F.array_compact(F.array(*chosen))))
    frame = frame.withColumns({
        "watchlist_target": _by_filter({i: F.col(target) for i, (target, _) in matches.items()}).cast("string"),
        "watchlist_sep_arcsec": _by_filter({i: F.col(sep) for i, (_, sep) in matches.items()}).cast("double")})
    # Only what the payloads need: Spark then reads only those columns of the lake tables (the
    # predicates' own columns aside), and the selected rows stay narrow.
    return frame.select(FILTER_INDEX, F.col("objects.ndet").alias("ndet"), *_PAYLOAD_COLUMNS)


def _publisher(filters: Sequence[FilterSpec], schema_ids: dict[str, int], producer: dict[str, str]):
    """mapInArrow: payload rows of every filter (``FILTER_INDEX`` says which) → Avro messages →
    Kafka, from the task itself (no second Python worker and no round trip of the encoded messages
    through the JVM): one confluent-kafka producer per task, flushed, every message acknowledged
    before the task ends (``lenga.io.kafka_sink.KafkaSinkWriter``; it raises otherwise, so the
    batch fails and is replayed). Yields the number of messages the task sent."""
    def encoded(batches):
        for batch in batches:
            index = batch.column(FILTER_INDEX)
            for i in pc.unique(index).to_pylist():
                spec = filters[i]
                yield encode_batch(batch.filter(pc.equal(index, i)), spec.payload, spec.topic, spec.name,
                                   schema_ids.get(spec.topic))

    def publish(batches):
        yield pa.RecordBatch.from_pydict({"sent": [KafkaSinkWriter(producer).write(encoded(batches)).messages]},
                                         schema=SENT_SCHEMA)
    return publish


@dataclass(frozen=True)
class ActiveFilters:
    """Filters in force: compiled predicates and, with a registry, each topic's schema id."""

    filters: tuple[CompiledFilter, ...]
    schema_ids: dict[str, int] = field(default_factory=dict)

    @property
    def uses(self) -> frozenset[str]:
        """The ``OPTIONAL_COLUMNS`` some predicate reads."""
        return frozenset().union(*(c.uses for c in self.filters))


def activate(spark: SparkSession, filters: FilterSet, bootstrap_servers: str,
             registry_url: str | None) -> ActiveFilters:
    """Compile every predicate, create the topics, register the schemas; FilterError if any fails."""
    compiled = tuple(compile_predicate(spark, spec, ENRICHED_SCHEMA, OPTIONAL_COLUMNS) for spec in filters.filters)
    ids = {}
    if registry_url:
        try:
            ids = {spec.topic: register_schema(registry_url, spec.topic, published_schema(spec.payload))
                   for spec in filters.filters}
        except RegistryError as exc:
            raise FilterError(f"schema registry: {exc}") from exc
    if filters.filters:
        try:
            create_topics(bootstrap_servers, [spec.topic for spec in filters.filters])
        except RuntimeError as exc:
            raise FilterError(str(exc)) from exc
    return ActiveFilters(compiled, ids)


def publish(lake: Lake, selected: DataFrame, nights: dict[int, list[int]], active: ActiveFilters,
            producer: dict[str, str]) -> int:
    """Publish every filter's messages for the rows ``select_alerts`` chose (``nights``: per filter
    index with rows, the nights of its alerts) with the producer settings ``producer`` (librdkafka's,
    each prefixed ``kafka.``); returns the number of messages acknowledged. One pass: the light
    curves and cutouts are joined for the rows whose payload carries them, then one ``mapInArrow``
    builds, encodes and produces every filter's messages."""
    specs = [c.spec for c in active.filters]
    index = F.col(FILTER_INDEX)
    with_curves = [i for i in nights if specs[i].payload in ("lightcurve", "full")]
    full = [i for i in nights if specs[i].payload == "full"]
    payload = "full" if full else "lightcurve" if with_curves else "thin"  # its fields hold the others'
    computed = {"schema_version": _by_filter({i: F.lit(schema_version_tag(specs[i].payload)) for i in nights}),
                "filter": _by_filter({i: F.lit(specs[i].name) for i in nights})}
    frame = selected
    if with_curves:
        objects = selected.where(index.isin(with_curves)).select(*OBJECT_KEY).distinct()
        frame = frame.join(object_curves(lake, objects), OBJECT_KEY, "left")
        computed["detections"] = F.filter(F.coalesce("curve_detections", F.array()), lambda d: d["mjd"] <= F.col("mjd"))
        computed["non_detections"] = F.filter(F.coalesce("curve_non_detections", F.array()),
                                              lambda d: d["mjd"] <= F.col("mjd"))
    if full:
        wanted = selected.where(index.isin(full)).select(*ALERT_KEY).distinct()
        cutouts = (lake.read(TABLE_SPECS["alerts"], sorted({n for i in full for n in nights[i]}))
                   .select(*ALERT_KEY, *CUTOUT_COLUMNS).join(F.broadcast(wanted), ALERT_KEY, "left_semi"))
        frame = frame.join(cutouts, ALERT_KEY, "left")
    rows = frame.select(index, *[computed.get(name, F.col(name)).alias(name) for name in field_names(payload)])
    sent = rows.mapInArrow(_publisher(specs, active.schema_ids, producer), from_arrow_schema(SENT_SCHEMA)).collect()
    return sum(r["sent"] for r in sent)


# --- the streaming query -----------------------------------------------------------------------------

@dataclass
class DistributionBatchReport:
    batch_id: int
    alerts: int
    published: dict[str, int]
    filters_digest: str
    replayed: bool
    seconds: float


class DistributionWriter:
    """The ``foreachBatch`` function of the distribution query."""

    def __init__(self, lake: Lake, settings: FilterSettings, bootstrap_servers: str, checkpoint: str):
        self.lake = lake
        self.settings = settings
        self.bootstrap_servers = bootstrap_servers
        self.pins = Path(checkpoint) / "filters"
        self.reports: list[DistributionBatchReport] = []
        self.reloader: FilterReloader[ActiveFilters] = FilterReloader(settings.filters_file(), self._activate)

    def _activate(self, filters: FilterSet) -> ActiveFilters:
        return activate(self.lake.spark, filters, self.bootstrap_servers, self.settings.schema_registry_url)

    def filters_for(self, batch_id: int) -> tuple[FilterSet, ActiveFilters, bool]:
        """The filters of a batch: those pinned for it if it ran before (a replay), else the current
        ones (reloaded if the file changed), then pinned. Returns (filters, active, replayed)."""
        pinned = self.pins / f"{batch_id}.yaml"
        if pinned.exists():
            filters = parse_filters(pinned.read_text(), str(pinned))
            current, active = self.reloader.current()
            if filters.digest != current.digest:
                active = self._activate(filters)
            return filters, active, True
        filters, active = self.reloader.current()
        self.pins.mkdir(parents=True, exist_ok=True)
        partial = pinned.with_suffix(".tmp")
        partial.write_text(filters.text)
        partial.replace(pinned)
        for old in self.pins.glob("*.yaml"):
            if old.stem.isdigit() and int(old.stem) < batch_id - PINNED_BATCHES_KEPT:
                old.unlink()
        return filters, active, False

    def __call__(self, alerts: DataFrame, batch_id: int) -> None:
        self.reports.append(self.process(alerts, batch_id))

    def process(self, alerts: DataFrame, batch_id: int) -> DistributionBatchReport:
        started = time.perf_counter()
        filters, active, replayed = self.filters_for(batch_id)
        alerts = alerts.persist(StorageLevel.MEMORY_AND_DISK)
        selected = None
        try:
            summary = alerts.agg(F.count("*").alias("n"), F.collect_set("night").alias("nights")).first()
            count, nights = summary["n"], sorted(summary["nights"])
            rows: dict[int, int] = {}
            if count and active.filters:
                # Materialised with a truncated plan (the dozen joins of the enrichment are analysed
                # once), and small: only the selected alerts.
                enriched = enrich(self.lake, alerts, nights, active.uses)
                selected = select_alerts(enriched, active.filters).localCheckpoint(eager=True)
                chosen = (selected.groupBy(FILTER_INDEX)
                          .agg(F.count("*").alias("n"), F.collect_set("night").alias("nights")).collect())
                rows = {r[FILTER_INDEX]: r["n"] for r in chosen}
                if rows:
                    producer = {"kafka.bootstrap.servers": self.bootstrap_servers,
                                **{k: str(v) for k, v in self.settings.producer_options.items()}}
                    sent = publish(self.lake, selected, {r[FILTER_INDEX]: r["nights"] for r in chosen}, active,
                                   producer)
                    if sent != sum(rows.values()):
                        raise RuntimeError(f"distribution batch {batch_id}: {sent} messages sent for "
                                           f"{sum(rows.values())} selected alerts")
        finally:
            for frame in (selected, alerts):  # localCheckpoint blocks are unpersisted too
                if frame is not None:
                    frame.unpersist()
        by_filter = {c.spec.name: rows.get(i, 0) for i, c in enumerate(active.filters)}
        return DistributionBatchReport(batch_id, count, by_filter, filters.digest, replayed,
                                       time.perf_counter() - started)


def start_distribution(spark: SparkSession, config: Config, lake: Lake,
                       settings: FilterSettings | None = None) -> tuple[StreamingQuery, DistributionWriter]:
    """Start the distribution query (checkpoint ``settings.checkpoint_for(config)``). The filters
    file is loaded (and must be valid) before the query starts."""
    settings = settings or FilterSettings.from_config(config)
    checkpoint = settings.checkpoint_for(config)
    Path(checkpoint).mkdir(parents=True, exist_ok=True)
    writer = DistributionWriter(lake, settings, settings.bootstrap_for(config), checkpoint)
    writer.reloader.current()
    alerts = lake.stream_appends({TABLE_SPECS["alerts"]: ALERT_COLUMNS}, settings.max_versions_per_trigger).drop(TABLE_COLUMN)
    builder = chained_query(alerts, settings.query_name, writer, checkpoint,
                            settings.trigger or config.stream.trigger, config.stream.processing_time)
    return start_in_pool(builder, "distribution"), writer


@dataclass
class DistributionSummary:
    wall_s: float
    batches: list[DistributionBatchReport]

    @property
    def alerts(self) -> int:
        return sum(b.alerts for b in self.batches)

    def published(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for batch in self.batches:
            for name, n in batch.published.items():
                totals[name] = totals.get(name, 0) + n
        return totals


def run_distribution(config: Config, spark: SparkSession | None = None,
                     settings: FilterSettings | None = None) -> DistributionSummary:
    """Run the distribution query to completion (availableNow) or until stopped."""

    spark = spark or build_session("lenga-distribute", config.spark)
    lake = open_lake(spark, config.lake.root, config.lake.backend)
    started = time.perf_counter()
    query, writer = start_distribution(spark, config, lake, settings)
    await_query(query)
    return DistributionSummary(time.perf_counter() - started, writer.reports)
