"""The aggregation's features step without Spark: curve rows → feature rows, table layout, settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pyspark.sql.pandas.types import to_arrow_schema
from test_features import CONFIG, rich_object

from lenga.config import ConfigError, load_config
from lenga.curves.points import CONTEXT_COLUMNS, CURVE_COLUMNS, DETECTION, OBJECT_KEY, merge_curves
from lenga.features import FEATURE_SCHEMA, extract_features, load_feature_config
from lenga.features.curve_rows import curve_features, features_spec, udf_schema
from lenga.night import PALOMAR_LONGITUDE_DEG, night_from_mjd
from lenga.schema import FORCED
from lenga.stream.steps.features import build_step
from udfs.curves import CURVES_SCHEMA, curve_state
from udfs.features import curve_features_batches


def curve_rows(points: pd.DataFrame, context: pd.DataFrame) -> pa.Table:
    """Points of many objects as the aggregation emits them: one row of arrays per object."""
    merged = merge_curves(points.reindex(columns=[*OBJECT_KEY, *CURVE_COLUMNS]))
    rows = []
    for (survey, object_id), curve in merged.groupby(OBJECT_KEY, sort=False):
        ctx = context.set_index("objectId").reindex([object_id])
        rows.append({"survey": survey, "objectId": object_id,
                     **dict(zip(CURVE_COLUMNS, curve_state(curve), strict=True)),
                     **{c: float(ctx[c].iloc[0]) if c in ctx else None for c in CONTEXT_COLUMNS}})
    return pa.Table.from_pylist(rows, schema=to_arrow_schema(CURVES_SCHEMA))


def rich_points(rng) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    det, limits, context = rich_object(rng)
    # ZTF-sized candids: exact only as Int64 once concatenated with rows without candid
    det = det.assign(kind=DETECTION, candid=pd.array(np.arange(len(det)) + 10**18, dtype="Int64"), ra=10.0, dec=20.0)
    # forced photometry carries a limit too (ZTF fp_hists) but is no non-detection
    forced = limits.assign(kind=FORCED, mjd=limits["mjd"] + 0.5, diffmaglim=25.0, psfFlux=1.0, psfFluxErr=1.0)
    return pd.concat([det, limits, forced], ignore_index=True), limits, context


def test_curve_rows_give_the_features_of_their_detections_and_limits():
    points, limits, context = rich_points(np.random.default_rng(3))
    few = points[(points["kind"] == DETECTION) & (points["band"] == "g")].head(CONFIG.min_points_per_band - 1)
    points = pd.concat([points, few.assign(objectId="few", candid=few["candid"] + 1000)], ignore_index=True)
    out = curve_features(curve_rows(points, context), CONFIG)
    assert out["objectId"].tolist() == ["rich"]  # 'few' lacks min_points_per_band detections
    det = points[(points["kind"] == DETECTION) & (points["objectId"] == "rich")]
    expected = extract_features(det, limits, CONFIG, context).iloc[0]
    row = out.iloc[0]
    for name in FEATURE_SCHEMA.names:
        if isinstance(expected[name], str):
            assert row[name] == expected[name], name
        else:
            np.testing.assert_allclose(row[name], expected[name], rtol=1e-12, equal_nan=True, err_msg=name)
    assert row["n_non_det_before_g"] == 3  # the forced points are not counted as non-detections
    assert row["sgscore1"] == 0.2 and row["srmag1"] == 16.9
    assert row["lastmjd"] == det["mjd"].max() and row["ndet"] == len(det)
    assert row["night"] == night_from_mjd(det["mjd"].max(), PALOMAR_LONGITUDE_DEG)


def test_map_in_arrow_function_yields_the_udf_schema():
    points, _, context = rich_points(np.random.default_rng(4))
    curves = curve_rows(points, context)
    schema = udf_schema(CONFIG)
    batches = list(curve_features_batches(CONFIG, schema.serialize().to_pybytes())(iter(curves.to_batches())))
    table = pa.Table.from_batches(batches)
    assert table.schema.equals(schema) and table.num_rows == 1
    assert table["night"].type == pa.int32()
    # no rows at all for curves too short: the function yields nothing rather than an empty frame
    short = curve_rows(points.head(3), context)
    assert list(curve_features_batches(CONFIG, schema.serialize().to_pybytes())(iter(short.to_batches()))) == []


def test_table_layout():
    spec = features_spec(CONFIG)
    assert spec.keys == ("survey", "objectId", "feature_version") and spec.partition_by == ("hpx",)
    names = spec.schema.names
    assert names[:8] == ["survey", "objectId", "feature_version", "night", "lastmjd", "ndet", "hpx",
                         "last_batch_id"]
    assert set(FEATURE_SCHEMA.names) <= set(names) and len(names) == len(FEATURE_SCHEMA.names) + 5
    assert all(f.metadata and f.metadata[b"description"] for f in spec.schema)
    assert len({n.lower() for n in names}) == len(names)  # Spark resolves columns case-insensitively


def test_settings_from_the_yaml_and_the_config_section():
    assert load_feature_config() == CONFIG
    config = load_config(overrides=["features.min_points_per_band=4"])
    step = build_step(config, None)
    assert step.config.min_points_per_band == 4 and step.config.n_harmonics == CONFIG.n_harmonics
    with pytest.raises(ConfigError, match="min_points_per_band must be an integer >= 4"):
        build_step(load_config(overrides=["features.min_points_per_band=2"]), None)
    with pytest.raises(ConfigError, match=r"context_columns: \['sgscore2'\] are not kept"):
        build_step(load_config(overrides=["features.context_columns=[sgscore1, sgscore2]"]), None)


def test_curves_of_an_unknown_survey_are_refused():
    points, _, context = rich_points(np.random.default_rng(5))
    with pytest.raises(ValueError, match="no bands configured"):
        curve_features(curve_rows(points.assign(survey="atlas"), context), CONFIG)


def test_features_in_the_aggregation_pass_get_the_objects_pixel():
    from lenga.curves.magstats import OBJECTS
    from udfs.curves import object_row_batches, statistics_table

    points, _, context = rich_points(np.random.default_rng(5))
    few = points[(points["kind"] == DETECTION) & (points["band"] == "g")].head(CONFIG.min_points_per_band - 1)
    points = pd.concat([points, few.assign(objectId="few", candid=few["candid"] + 1000)], ignore_index=True)
    curves = curve_rows(points, context)
    step = build_step(load_config(extra={"features": {"min_points_per_band": CONFIG.min_points_per_band}}), None)
    objects_schema = pa.schema([f for f in OBJECTS if f.name != "last_batch_id"])
    # one Arrow batch per object: the pass regroups them into blocks
    out = pa.Table.from_batches(list(object_row_batches(objects_schema, [(step.name, step.row_schema,
                                                                          step.row_function(None))])(
        iter(curves.to_batches(max_chunksize=1)))))
    assert out.column_names == ["objects", step.name]
    objects = pa.Table.from_struct_array(out.filter(out["objects"].is_valid())["objects"].combine_chunks())
    features = pa.Table.from_struct_array(out.filter(out[step.name].is_valid())[step.name].combine_chunks())
    assert objects.equals(statistics_table(curves, objects_schema)) and objects.num_rows == 2
    assert features.schema.equals(step.row_schema, check_metadata=False)
    assert features["objectId"].to_pylist() == ["rich"]  # 'few' lacks min_points_per_band detections
    rich = objects.filter(pa.compute.equal(objects["objectId"], "rich"))
    assert features["hpx"].to_pylist() == rich["hpx"].to_pylist() and rich["hpx"][0].as_py() >= 0
    expected = curve_features(curve_rows(points[points["objectId"] == "rich"], context), step.config)
    for name in FEATURE_SCHEMA.names:
        np.testing.assert_array_equal(features[name].to_numpy(zero_copy_only=False), expected[name].to_numpy(), name)
