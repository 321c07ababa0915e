"""Batch reclassification: light curves rebuilt from the lake, then the aggregation's object steps.

    detections ─────┐  (only the selected objects: a night range, or a list of object ids)
    non_detections ─┼─ union ─ groupBy(survey, objectId) ─ applyInPandas(curve_row)
    alerts (context)┘                                         └─ rows shaped like the stream's curves
                                                                  └─ features, classifiers (object steps)

The streaming aggregation keeps each curve in its state store; a scheduled job instead rebuilds the
curves it needs from the Delta tables, with the same pure functions (:func:`lenga.curves.points.merge_curves`,
:func:`lenga.curves.points.latest_context`), so a curve rebuilt here equals the one the stream saw once it
had every alert. The rows then go through the same object steps as the stream (features, light-curve
classifier) with the model version chosen by configuration, and every table those steps write is keyed
so that a second run over the same curves writes nothing new.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from lenga.config import Config
from lenga.curves.magstats import OBJECTS
from lenga.curves.points import CONTEXT_COLUMNS, CURVE_COLUMNS, OBJECT_KEY
from lenga.io.lake import Lake, open_lake, tagged_union
from lenga.stream.aggregate import POINT_READS, point_rows
from lenga.stream.steps.base import BatchContext, ObjectBatchContext
from lenga.stream.steps.features import build_step as build_features
from lenga.stream.steps.lc_classifier import build_object_step as build_lc_classifier
from lenga.stream.steps.stamps import build_step as build_stamp_classifier
from lenga.tables import TABLE_SPECS, WriteResult
from udfs.curves import CURVES_SCHEMA, statistics_batches, touch_object


def selected_objects(lake: Lake, nights: list[int] | None = None,
                     objects: list[tuple[str, str]] | None = None) -> DataFrame:
    """The (survey, objectId) keys to reclassify: given explicitly, or every object detected in
    ``nights`` (a partition filter: only those nights' files are read)."""
    spark = lake.spark
    if objects:
        return spark.createDataFrame(list(objects), "survey string, objectId string").distinct()
    if not nights:
        raise ValueError("reclassification needs nights or objects (refusing to rebuild the whole lake implicitly)")
    return lake.read(TABLE_SPECS["detections"], sorted(nights)).select(*OBJECT_KEY).distinct()


def curve_row(rows: pd.DataFrame) -> pd.DataFrame:
    """One object's points and alert-context rows → one row of its full curve and latest context,
    exactly as the aggregation emits it (:func:`udfs.curves.touch_object` on an empty state);
    empty when it has no points yet."""

    key = (rows["survey"].iloc[0], rows["objectId"].iloc[0])
    _, curve = touch_object(key, None, rows)
    return curve if curve is not None else pd.DataFrame(columns=[*OBJECT_KEY, *CURVE_COLUMNS, *CONTEXT_COLUMNS])


def lake_curves(lake: Lake, keys: DataFrame) -> DataFrame:
    """Full light curves (``udfs.curves.CURVES_SCHEMA``) of the objects in ``keys``, from every
    detection, non-detection and alert the lake holds for them."""

    keys = F.broadcast(keys)
    points = point_rows(tagged_union({
        name: lake.read(TABLE_SPECS[name]).select(*columns).join(keys, OBJECT_KEY, "left_semi")
        for name, columns in POINT_READS.items()}))
    return points.groupBy(*OBJECT_KEY).applyInPandas(curve_row, CURVES_SCHEMA)


#: Delta application id of reclassification commits (each run takes the next batch id).
APP_ID = "lenga-reclassify"


@dataclass
class ReclassifyReport:
    """What one reclassification run did."""

    objects: int
    batch_id: int
    tables: dict[str, WriteResult] = field(default_factory=dict)
    seconds: float = 0.0

    def written(self, table: str) -> int:
        result = self.tables.get(table)
        return result.rows if result is not None and not result.skipped else 0


def next_batch_id(lake: Lake, tables: list[str]) -> int:
    """One more than the last reclassification batch committed to any of ``tables``."""
    done = [lake.committed_batch(t, APP_ID) for t in tables]
    return max((d for d in done if d is not None), default=-1) + 1


def object_statistics_rows(curves: DataFrame) -> DataFrame:
    """The ``objects`` rows of rebuilt curves (what the features step needs: the sky pixel)."""

    stats = pa.schema([f for f in OBJECTS if f.name != "last_batch_id"])
    return curves.mapInArrow(statistics_batches(stats.serialize().to_pybytes()), from_arrow_schema(stats))


def reclassify(config: Config, spark: SparkSession, nights: list[int] | None = None,
               objects: list[tuple[str, str]] | None = None) -> ReclassifyReport:
    """Rebuild the selected objects' curves, recompute features (rows missing for the configured
    feature version only), classify them with the configured light-curve model and stamp-classify
    their alerts with the configured stamp models; append what is new."""

    started = time.perf_counter()
    lake = open_lake(spark, config.lake.root, config.lake.backend)
    keys = selected_objects(lake, nights, objects).persist(StorageLevel.MEMORY_AND_DISK)
    features_step = build_features(config, lake)
    lc_step = build_lc_classifier(config, lake)
    stamp_step = build_stamp_classifier(config, lake)
    written = [features_step.spec.name] + [s.name for s in (lc_step, stamp_step) if s is not None]
    batch_id = next_batch_id(lake, [t for t in written if lake.exists(t)])
    curves = lake_curves(lake, keys).persist(StorageLevel.MEMORY_AND_DISK)
    rows = object_statistics_rows(curves).persist(StorageLevel.MEMORY_AND_DISK)
    report = ReclassifyReport(objects=rows.count(), batch_id=batch_id)
    try:
        context = ObjectBatchContext(spark, lake, APP_ID, batch_id, curves, {"objects": rows}, config)
        report.tables.update(features_step.insert_missing(context))
        if lc_step is not None:
            report.tables.update(lc_step(context))
        if stamp_step is not None:
            alerts = lake.read(TABLE_SPECS["alerts"]).join(F.broadcast(keys), OBJECT_KEY, "left_semi")
            report.tables.update(stamp_step(BatchContext(spark, lake, APP_ID, batch_id, {"alerts": alerts}, config)))
    finally:
        for frame in (rows, curves, keys):
            frame.unpersist()
    report.seconds = time.perf_counter() - started
    return report
