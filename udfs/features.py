"""Spark wrapper of :mod:`lenga.features` over the aggregation's curve rows (the only pyspark side of features).

The aggregation query emits one row per touched object holding its whole de-duplicated light curve
as arrays (``udfs.aggregate.CURVES_SCHEMA``). :func:`curve_features_batches` is the ``mapInArrow``
function of the features step: each Arrow batch (thousands of objects) is flattened to points once
and handed to :func:`lenga.features.extract_features` in one call, so the feature families run
vectorised over all its curves; no per-object Python.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lenga.aggregate import DETECTION, OBJECT_KEY
from lenga.decode import SURVEYS
from lenga.features import FeatureConfig, extract_features
from lenga.features.step import HPX
from lenga.night import night_from_mjd
from lenga.schema import UPPER_LIMIT
from udfs.aggregate import OBJECTS_TABLE

#: Curve columns the features read (photometry of detections, limits of upper limits).
POINT_COLUMNS = ["kind", "mjd", "band", "magpsf", "sigmapsf", "psfFlux", "psfFluxErr", "isdiffpos", "diffmaglim"]
#: Per-object columns added beside the features: when the curve ends and how many detections it has.
SUMMARY_COLUMNS = ["night", "lastmjd", "ndet"]


def _points(curves: pa.Table) -> pa.Table:
    """The curve rows exploded to one row per point (object key repeated), ``POINT_COLUMNS`` only."""
    parent = pc.list_parent_indices(curves["mjd"])
    return pa.table({**{k: pc.take(curves[k], parent) for k in OBJECT_KEY},
                     **{c: pc.list_flatten(curves[c]) for c in POINT_COLUMNS}})


def _summary(detections: pd.DataFrame) -> pd.DataFrame:
    """Per object: MJD and night (at the survey's site) of the last detection, number of detections."""
    summary = detections.groupby(OBJECT_KEY, sort=False).agg(lastmjd=("mjd", "max"), ndet=("mjd", "size"))
    summary = summary.reset_index()
    longitude = summary["survey"].map({name: module.SITE_LONGITUDE_DEG for name, module in SURVEYS.items()})
    if longitude.isna().any():
        raise ValueError(f"curves of unknown surveys {sorted(set(summary['survey'][longitude.isna()]))}")
    summary["night"] = night_from_mjd(summary["lastmjd"].to_numpy(), longitude.to_numpy(dtype=float))
    return summary


def curve_features(curves: pa.Table, config: FeatureConfig) -> pd.DataFrame:
    """Feature rows of the objects of ``curves`` (``CURVES_SCHEMA`` rows) with enough detections.

    Detections feed every family; upper limits the non-detection family (forced photometry is
    neither: it is a measurement without a detection and without a limit). Context columns come
    from the curve rows (the object's latest alert). Adds :data:`SUMMARY_COLUMNS`.
    """
    points = _points(curves)
    kind = points["kind"]
    detections = points.filter(pc.equal(kind, DETECTION)).drop_columns(["kind", "diffmaglim"]).to_pandas()
    limits = points.filter(pc.equal(kind, UPPER_LIMIT)).select([*OBJECT_KEY, "mjd", "band", "diffmaglim"]).to_pandas()
    context = curves.select([*OBJECT_KEY, *config.context_columns]).to_pandas()
    features = extract_features(detections, limits, config, context)
    if features.empty:
        return features.assign(**{c: pd.Series(dtype=float) for c in SUMMARY_COLUMNS})
    return features.merge(_summary(detections), on=OBJECT_KEY, how="left", validate="one_to_one")


def feature_table(curves: pa.Table, config: FeatureConfig, schema: pa.Schema) -> pa.Table:
    """:func:`curve_features` of ``curves`` as an Arrow table of ``schema``
    (:func:`lenga.features.step.udf_schema`)."""
    frame = curve_features(curves, config)
    if frame.empty:
        return schema.empty_table()
    frame["night"] = frame["night"].astype(np.int32)
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)


def curve_features_batches(config: FeatureConfig, schema_bytes: bytes):
    """A ``mapInArrow`` function: curve rows → feature rows of the Arrow schema in ``schema_bytes``
    (:func:`lenga.features.step.udf_schema`)."""

    def compute(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        schema = pa.ipc.read_schema(pa.py_buffer(schema_bytes))
        for batch in batches:
            if batch.num_rows == 0:
                continue
            table = feature_table(pa.Table.from_batches([batch]), config, schema)
            if table.num_rows:
                yield from table.to_batches()

    return compute


def located_features(config: FeatureConfig, schema: pa.Schema, curves: pa.Table, rows: dict[str, pa.Table]
                     ) -> pa.Table:
    """The features step's function in the aggregation's single pass (``udfs.aggregate.object_row_batches``):
    features of the ``curves`` with at least ``min_points_per_band`` points (:func:`feature_table`,
    ``schema`` without ``hpx``), each with the ``hpx`` of its ``objects`` row in ``rows``."""
    enough = curves.filter(pc.greater_equal(pc.list_value_length(curves["mjd"]), config.min_points_per_band))
    features = feature_table(enough, config, pa.schema([f for f in schema if f.name != HPX]))
    objects = rows[OBJECTS_TABLE]
    at = pd.MultiIndex.from_arrays([objects[k].to_numpy() for k in OBJECT_KEY]).get_indexer(
        pd.MultiIndex.from_arrays([features[k].to_numpy() for k in OBJECT_KEY]))
    if (at < 0).any():
        raise ValueError("features of curves without an objects row in the same pass")
    return features.append_column(schema.field(HPX), objects[HPX].take(at))
