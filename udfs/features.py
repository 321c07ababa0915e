"""Spark wrappers of :mod:`lenga.features` for ``applyInPandas`` (the only pyspark import of features).

Usage (the lead's stream, one group = many objects' de-duplicated light curves)::

    fn = features_fn(config)
    detections.groupBy("bucket").applyInPandas(fn, spark_schema(config))
    detections.groupBy("bucket").cogroup(non_detections.groupBy("bucket")).applyInPandas(
        cogrouped_features_fn(config), spark_schema(config))

Context columns (``config.context_columns``) are taken from the detections rows when present.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import StructType

from lenga.features import FeatureConfig, extract_features, feature_schema


def spark_schema(config: FeatureConfig) -> StructType:
    """Spark schema of the features frame."""
    return from_arrow_schema(feature_schema(config))


def _context(detections: pd.DataFrame, config: FeatureConfig) -> pd.DataFrame | None:
    present = [c for c in config.context_columns if c in detections.columns]
    if not present:
        return None
    return detections[["survey", "objectId", *present]].drop_duplicates(["survey", "objectId"], keep="last")


def features_fn(config: FeatureConfig) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """``applyInPandas`` function: detections of a group -> one feature row per object."""

    def apply(detections: pd.DataFrame) -> pd.DataFrame:
        return extract_features(detections, None, config, _context(detections, config))

    return apply


def cogrouped_features_fn(config: FeatureConfig) -> Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]:
    """Cogrouped ``applyInPandas`` function: (detections, non_detections) -> feature rows."""

    def apply(detections: pd.DataFrame, non_detections: pd.DataFrame) -> pd.DataFrame:
        return extract_features(detections, non_detections, config, _context(detections, config))

    return apply
