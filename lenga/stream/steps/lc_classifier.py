"""The aggregation's light-curve classifier step: ``tables["features"]`` → ``lc_classifications``.

Runs after the features step (``lenga.stream.aggregate`` object steps): the features rows of this
micro-batch are exactly the objects whose light curve changed, so each is classified once per batch
in which it changed. The model is read once, when the step is built, and broadcast to the executors
at the first batch. In the stream the step is a ``lenga.stream.aggregate.PassStep``: the aggregation's
single Python pass classifies the features rows it has just computed for the same curves
(``udfs.lc_classifier.classified_rows``); otherwise (lenga.stream.reclassify) one ``mapInArrow``
(``udfs.lc_classifier.classify_batches``) classifies ``tables["features"]``, thousands of objects
per call. Rows are appended with ``Lake.append_new`` on keys (survey, objectId, classifier,
classifier_version, level, class_name, lastmjd, ndet): a replayed batch, or a re-run over the same
light curve, writes nothing new; partitioned by ``night`` of the last detection.
"""

from __future__ import annotations

import logging
from functools import partial

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from lenga.config import Config, ConfigError
from lenga.features import FEATURE_VERSION
from lenga.io.lake import Lake
from lenga.lc_classifier.inference import OBJECT_COLUMNS, ROWS_SCHEMA, SPEC
from lenga.lc_classifier.model import HierarchicalClassifier
from lenga.lc_classifier.settings import LCClassifierSettings
from lenga.stream.steps.base import ObjectBatchContext, RowFunction
from lenga.tables import FEATURES_TABLE, WriteResult
from lenga.tables import LC_CLASSIFICATIONS_TABLE as TABLE
from udfs.lc_classifier import classified_rows, classify_batches

log = logging.getLogger(__name__)


class LCClassifierStep:
    """``ObjectStep`` classifying the objects whose features this micro-batch recomputed."""

    name = TABLE

    def __init__(self, settings: LCClassifierSettings, model: HierarchicalClassifier):
        self.settings = settings
        self.model = model
        self._broadcast = None
        #: What it computes in the aggregation's single pass (``lenga.stream.aggregate.PassStep``).
        self.row_schema = ROWS_SCHEMA

    def _columns(self) -> list[str]:
        counts = [f"n_det_{b}" for b in self.settings.detection_bands]
        return list(dict.fromkeys([*OBJECT_COLUMNS, "feature_version", *counts, *self.model.features]))

    def _model_broadcast(self, spark: SparkSession):
        if self._broadcast is None:
            self._broadcast = spark.sparkContext.broadcast((self.model.to_bytes(), self.model.metadata))
        return self._broadcast

    def row_function(self, spark: SparkSession) -> RowFunction:
        """Classification rows of the features rows computed in the same pass (``lenga.stream.aggregate.PassStep``)."""

        return partial(classified_rows, self._model_broadcast(spark), self.settings.min_detections,
                       tuple(self.settings.detection_bands), FEATURES_TABLE)

    def __call__(self, batch: ObjectBatchContext) -> dict[str, WriteResult]:

        if FEATURES_TABLE not in batch.tables:
            raise RuntimeError(f"the {TABLE} step needs this batch's {FEATURES_TABLE!r} rows: run the features "
                               "step before it")
        features = batch.tables[FEATURES_TABLE]
        if self.name in batch.computed:  # classified in the aggregation's pass
            rows = batch.computed[self.name]
        else:
            version = self.model.metadata["feature_version"]
            rows = (features.where(F.col("feature_version") == version).select(*self._columns())
                    .mapInArrow(classify_batches(self._model_broadcast(batch.spark), self.settings.min_detections,
                                                 tuple(self.settings.detection_bands)), from_arrow_schema(ROWS_SCHEMA)))
        rows = rows.withColumn("batch_id", F.lit(batch.batch_id).cast("long"))
        batch.tables[TABLE] = rows
        # A classified object's night is its features row's: the nights come from the (persisted)
        # features rows, so the classification runs once, in the write, not again to list nights.
        nights = features.agg(F.collect_set("night")).first()[0]
        return {TABLE: batch.lake.append_new(SPEC, rows, batch.app_id, batch.batch_id, nights=nights)}


def build_object_step(config: Config, lake: Lake) -> LCClassifierStep | None:
    """The classifier step configured by the ``lc_classifier`` section (None when disabled)."""
    settings = LCClassifierSettings.from_config(config)
    if not settings.enabled:
        return None
    try:
        model = HierarchicalClassifier.load(settings.model_path)
    except FileNotFoundError as error:
        raise ConfigError(f"config.lc_classifier.model_dir: {error}") from error

    if model.metadata.get("feature_version") != FEATURE_VERSION:
        log.warning("lc_classifier %s was trained on features %s, the stream computes %s: objects get no "
                    "classification until the model is retrained", model.metadata.get("classifier_version"),
                    model.metadata.get("feature_version"), FEATURE_VERSION)
    return LCClassifierStep(settings, model)
