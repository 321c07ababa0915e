"""The stream's stamp-classification step: ``alerts`` of a micro-batch -> ``stamp_classifications``.

Runs after the core tables (``lenga.stream.ingest.BatchStep``, after the cross-match). Which alerts:

* ``mode: first_detection`` (default, as ALeRCE's fast classifier): the alerts of *new* objects,
  i.e. whose packet carries no earlier detection of the object (``n_prv_detections == 0``: none
  in ZTF's 30 days or LSST's 12 months of history) and, for ZTF, at most ``max_ndethist`` raw
  3-sigma detections at the position over the survey's life (``ndethist``: a variable star that
  was quiet for a month is not new). Decided from the alert alone: no lake read per batch.
* ``mode: every_alert``: every alert.

Each survey goes to its own model (``models.ztf``, ``models.lsst``: trained model directories):
LSST cutouts (0.2"/px, nJy, plain FITS) are never fed to the ZTF network (1.01"/px, DN). A survey
whose model is not configured or not trained is skipped with the reason logged at start-up and
reported in the write result's ``extra`` of every batch.

The models are read on the driver once per step instance and broadcast (``udfs.stamp``); the
rows are appended with ``lake.append_new`` (one Delta transaction tagged (app id, batch id),
de-duplicated on (survey, candid, classifier, classifier_version, class_name)), and the batch's
rows are left in ``batch.tables["stamp_classifications"]`` for later steps (cached until the next
micro-batch).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from pyspark import Broadcast, StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lenga.config import PROJECT_ROOT, Config, ConfigError
from lenga.io.lake import Lake
from lenga.stamps.inference import REQUIRED, STAMP_CLASSIFICATIONS, read_model_files
from lenga.stream.steps.base import BatchContext
from lenga.tables import TableSpec, WriteResult
from udfs.stamp import classify_batches, spark_schema

log = logging.getLogger(__name__)

SECTION = "stamp_classifier"
MODES = ("first_detection", "every_alert")
#: Settings of the ``stamp_classifier:`` section and their defaults.
DEFAULTS = {
    "enabled": True,
    "mode": "first_detection",
    "max_ndethist": 3,
    "torch_threads": 1,
    "models": {"ztf": "models/stamp_classifier", "lsst": "models/stamp_classifier_lsst"},
}

STAMP_TABLE = TableSpec(
    "stamp_classifications",
    STAMP_CLASSIFICATIONS,
    keys=("survey", "candid", "classifier", "classifier_version", "class_name"),
)


@dataclass
class StampSettings:
    """The validated ``stamp_classifier:`` section."""

    enabled: bool = True
    mode: str = "first_detection"
    max_ndethist: int = 3
    torch_threads: int = 1
    models: dict[str, str | None] = field(default_factory=lambda: dict(DEFAULTS["models"]))

    @classmethod
    def from_config(cls, config: Config) -> StampSettings:
        values = config.section(SECTION)
        unknown = sorted(set(values) - set(DEFAULTS))
        if unknown:
            raise ConfigError(f"{SECTION}: unknown key(s) {unknown}; known: {sorted(DEFAULTS)}")
        settings = cls(**{**DEFAULTS, **values})
        if not isinstance(settings.enabled, bool):
            raise ConfigError(f"{SECTION}.enabled: expected true or false, got {settings.enabled!r}")
        if settings.mode not in MODES:
            raise ConfigError(f"{SECTION}.mode: must be one of {MODES}, not {settings.mode!r}")
        for key in ("max_ndethist", "torch_threads"):
            value = getattr(settings, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{SECTION}.{key}: expected an integer >= 1, got {value!r}")
        if not isinstance(settings.models, dict) or set(settings.models) - set(REQUIRED):
            raise ConfigError(f"{SECTION}.models: expected a mapping of surveys {sorted(REQUIRED)} to model "
                              f"directories, got {settings.models!r}")
        return settings


def select_alerts(alerts: DataFrame, mode: str, max_ndethist: int, surveys: list[str]) -> DataFrame:
    """The alerts to classify (see the module docstring for ``first_detection``)."""
    chosen = F.col("survey").isin(surveys)
    if mode == "first_detection":
        chosen = chosen & (F.col("n_prv_detections") == 0) & (
            F.col("ndethist").isNull() | (F.col("ndethist") <= max_ndethist))
    return alerts.where(chosen)


class StampStep:
    """``BatchStep`` classifying the selected alerts of each micro-batch with each survey's model."""

    name = "stamp_classifier"

    def __init__(self, models: dict[str, tuple[bytes, dict]], settings: StampSettings,
                 unclassified: dict[str, str] | None = None):
        if not models:
            raise ValueError("StampStep needs at least one trained model")
        self.models = models
        self.settings = settings
        self.unclassified = dict(unclassified or {})
        self._broadcast: Broadcast | None = None
        self._previous: DataFrame | None = None

    def broadcast(self, spark: SparkSession) -> Broadcast:
        if self._broadcast is None:
            self._broadcast = spark.sparkContext.broadcast(self.models)
        return self._broadcast

    def classify(self, spark: SparkSession, alerts: DataFrame) -> DataFrame:
        """``stamp_classifications`` rows of the selected alerts (lazy)."""
        surveys = sorted(self.models)
        columns = list(dict.fromkeys(c for s in surveys for c in REQUIRED[s]))
        selected = select_alerts(alerts, self.settings.mode, self.settings.max_ndethist, surveys)
        return selected.select(*columns).mapInArrow(
            classify_batches(self.broadcast(spark), self.settings.torch_threads), spark_schema())

    def __call__(self, batch: BatchContext) -> dict[str, WriteResult]:
        extra = {"unclassified_surveys": self.unclassified} if self.unclassified else {}
        if batch.lake.replayed(STAMP_TABLE, batch.app_id, batch.batch_id):
            return {STAMP_TABLE.name: WriteResult(STAMP_TABLE.name, skipped=True, extra=extra)}
        if self._previous is not None:
            self._previous.unpersist()
        rows = self.classify(batch.spark, batch.tables["alerts"]).persist(StorageLevel.MEMORY_AND_DISK)
        self._previous = rows
        result = batch.lake.append_new(STAMP_TABLE, rows, batch.app_id, batch.batch_id)
        result.extra.update(extra)
        batch.tables[STAMP_TABLE.name] = rows
        return {STAMP_TABLE.name: result}


def load_models(settings: StampSettings) -> tuple[dict[str, tuple[bytes, dict]], dict[str, str]]:
    """The configured models that exist, and for every other survey the reason it is skipped."""
    models, unclassified = {}, {}
    for survey in sorted(REQUIRED):
        directory = settings.models.get(survey)
        if directory is None:
            unclassified[survey] = f"no {survey} stamp model configured ({SECTION}.models.{survey} is null)"
            continue
        path = Path(directory) if Path(directory).is_absolute() else PROJECT_ROOT / directory
        try:
            weights, meta = read_model_files(path)
        except FileNotFoundError as exc:
            unclassified[survey] = str(exc)
            continue
        if meta["survey"] != survey:
            raise ConfigError(f"{SECTION}.models.{survey}: {path} holds a model trained for {meta['survey']!r}")
        models[survey] = (weights, meta)
    return models, unclassified


def build_step(config: Config, lake: Lake) -> StampStep | None:
    """The stamp-classification step, or None when disabled or no model is trained."""
    settings = StampSettings.from_config(config)
    if not settings.enabled:
        log.info("%s: disabled in the configuration", SECTION)
        return None
    models, unclassified = load_models(settings)
    for survey, reason in unclassified.items():
        log.warning("%s: %s alerts are not stamp-classified: %s", SECTION, survey, reason)
    if not models:
        return None
    lake.ensure(STAMP_TABLE)
    return StampStep(models, settings, unclassified)
