"""Feature rows of light curves: the ``features`` table's rows, from the aggregation's curve rows.

The aggregation emits one row per touched object holding its whole de-duplicated light curve as
arrays (``udfs.curves.CURVES_SCHEMA``). :func:`curve_features` flattens a block of thousands of
them to points once and hands them to :func:`lenga.features.extract_features` in one call, so the
feature families run vectorised over all its curves (no per-object Python). The stream
(``udfs.features``, the aggregation's single pass) and the training sets
(:mod:`lenga.lc_classifier.trainingset`) both use these functions, so a model is trained on exactly
the features the stream computes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lenga.curves.points import CONTEXT_COLUMNS, CURVE_COLUMNS, CURVE_DTYPES, DETECTION, OBJECT_KEY
from lenga.decode import SURVEYS
from lenga.features.config import FeatureConfig
from lenga.features.extract import extract_features, feature_schema
from lenga.night import night_from_mjd
from lenga.schema import PARTITION_COLUMN, UPPER_LIMIT
from lenga.schema import described_field as _field
from lenga.tables import FEATURES_TABLE, OBJECTS_TABLE, TableSpec

TABLE = FEATURES_TABLE
KEYS = ("survey", "objectId", "feature_version")
#: Partition column (see the module docstring), filled from the batch's ``objects`` rows.
HPX = "hpx"


def udf_schema(config: FeatureConfig) -> pa.Schema:
    """What the ``mapInArrow`` returns: the feature columns plus the curve summary."""
    features = feature_schema(config)
    keys = [features.field(k) for k in KEYS]
    return pa.schema([
        *keys,
        _field(PARTITION_COLUMN, pa.int32(), "observing night (yyyymmdd, lenga.night) of the last detection"),
        _field("lastmjd", pa.float64(), "MJD of the last detection"),
        _field("ndet", pa.int64(), "detections of the object, all bands (as in objects.ndet)"),
        *[f for f in features if f.name not in KEYS],
    ])


def features_spec(config: FeatureConfig) -> TableSpec:
    """The ``features`` table for ``config``: the UDF's columns plus ``hpx`` and ``last_batch_id``."""
    columns = udf_schema(config)
    index = columns.get_field_index("ndet") + 1
    columns = columns.insert(index, _field(HPX, pa.int64(), "nested HEALPix order-2 pixel of the mean position "
                                                            "(as in objects.hpx); partition column"))
    columns = columns.insert(index + 1, _field("last_batch_id", pa.int64(),
                                               "aggregation micro-batch that last updated the row"))
    return TableSpec(TABLE, columns, keys=KEYS, partition_by=(HPX,))


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


def curves_table(surveys: list[str], object_ids: list[str], curves: list[dict[str, np.ndarray]]) -> pa.Table:
    """Curves of many objects as ``CURVES_SCHEMA`` rows (one row per object, one list per curve column),
    from one dict of ``CURVE_COLUMNS`` arrays per object; the context columns are null (simulated and
    labelled real curves have no alert context)."""
    offsets = pa.array(np.r_[0, np.cumsum([c["mjd"].size for c in curves])].astype(np.int32))
    types = {"kind": pa.string(), "candid": pa.int64(), "band": pa.string(),
             **{c: pa.bool_() for c in CURVE_COLUMNS if CURVE_DTYPES[c] == "boolean"}}
    columns = {"survey": pa.array(surveys, pa.string()), "objectId": pa.array(object_ids, pa.string())}
    for c in CURVE_COLUMNS:
        values = pa.array(np.concatenate([curve[c] for curve in curves]), type=types.get(c, pa.float64()),
                          from_pandas=True)
        columns[c] = pa.ListArray.from_arrays(offsets, values)
    columns.update({c: pa.nulls(len(curves), pa.float64()) for c in CONTEXT_COLUMNS})
    return pa.table(columns)


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
    (:func:`lenga.stream.steps.features.udf_schema`)."""
    frame = curve_features(curves, config)
    if frame.empty:
        return schema.empty_table()
    frame["night"] = frame["night"].astype(np.int32)
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)


def located_features(config: FeatureConfig, schema: pa.Schema, curves: pa.Table, rows: dict[str, pa.Table]
                     ) -> pa.Table:
    """The features step's function in the aggregation's single pass (``udfs.curves.object_row_batches``):
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
