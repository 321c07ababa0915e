"""Points packed per object (lenga.curves.packing): what the aggregation query's JVM collects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lenga.curves.packing import PACKED_SCHEMA, POINT_RECORD, pack_batches, pack_points, unpack_points
from lenga.curves.points import CONTEXT_COLUMNS, CURVE_COLUMNS, NO_CANDID, OBJECT_KEY
from udfs.curves import ALERT, packed_point_rows

ZTF_CANDID = 2_913_476_051_015_010_003  # > 2**53: must survive exactly


def tagged_rows() -> pa.Table:
    """Two objects' detections, non-detections and alerts as the aggregation's source reads them."""
    rows = [
        ("detections", "ztf", "ZTF1", ZTF_CANDID, 60001.5, "g", None, 18.1, 0.05, True, 20.5),
        ("detections", "ztf", "ZTF1", ZTF_CANDID + 1, 60000.5, "r", None, 18.4, 0.08, False, 20.1),
        ("non_detections", "ztf", "ZTF1", None, 59999.5, "g", "upper_limit", None, None, None, 19.9),
        ("non_detections", "ztf", "ZTF1", None, 59998.5, "r", "forced", 21.0, 0.3, None, 20.0),
        ("detections", "lsst", "170", 9, 60002.25, "y", None, 22.0, 0.2, None, float("nan")),
        ("alerts", "ztf", "ZTF1", ZTF_CANDID, 60001.5, "g", None, None, None, None, None),
        ("alerts", "ztf", "ZTF1", ZTF_CANDID + 1, 60000.5, "r", None, None, None, None, None),
        ("alerts", "lsst", "99", 12, 60003.0, "u", None, None, None, None, None),  # context, no point yet
    ]
    names = ["table", "survey", "objectId", "candid", "mjd", "band", "kind", "magpsf", "sigmapsf", "isdiffpos",
             "diffmaglim"]
    columns = {name: [row[i] for row in rows] for i, name in enumerate(names)}
    n = len(rows)
    columns.update(psfFlux=[float(i) for i in range(n)], psfFluxErr=[0.5] * n, ra=[10.0] * n, dec=[-5.0] * n,
                   sgscore1=[None] * 5 + [0.2, 0.9, None], distpsnr1=[None] * 5 + [1.0, 2.0, None],
                   srmag1=[None] * n, extendedness=[None] * 7 + [0.4],
                   corrected=[True, False] + [None] * 6, stellar=[False, False] + [None] * 6,
                   magpsf_corr=[17.5] + [None] * 7)
    types = {"candid": pa.int64(), "isdiffpos": pa.bool_(), "kind": pa.string(), "corrected": pa.bool_(),
             "stellar": pa.bool_(), "magpsf_corr": pa.float64()}
    return pa.table({k: pa.array(v, types.get(k)) for k, v in columns.items()})


def test_one_row_per_object_with_its_points_and_latest_context():
    packed = pack_points(tagged_rows()).sort_by([("survey", "ascending"), ("objectId", "ascending")])
    assert packed.schema == PACKED_SCHEMA
    rows = packed.to_pandas()
    assert list(zip(rows.survey, rows.objectId, strict=True)) == [("lsst", "170"), ("lsst", "99"), ("ztf", "ZTF1")]
    sizes = [None if v is None else len(v) // POINT_RECORD.itemsize - 1 for v in rows.points]  # - the header
    assert sizes == [1, None, 4]
    ztf = rows.iloc[2]
    # The latest alert by (mjd, candid), whatever the row order.
    assert ztf.alert_mjd == 60001.5 and ztf.alert_candid == ZTF_CANDID and ztf.sgscore1 == 0.2
    assert rows.iloc[1].extendedness == 0.4
    no_alert = rows.iloc[0]
    assert np.isnan(no_alert.alert_mjd) and no_alert.alert_candid == NO_CANDID


def test_unpacked_points_are_the_point_rows_exactly():
    packed = pack_points(tagged_rows())
    points = unpack_points(packed["survey"].to_numpy(zero_copy_only=False),
                           packed["objectId"].to_numpy(zero_copy_only=False), packed["points"].to_pylist())
    assert list(points.columns) == [*OBJECT_KEY, *CURVE_COLUMNS]
    points = points.sort_values("mjd").reset_index(drop=True)
    assert points.kind.tolist() == ["forced", "upper_limit", "detection", "detection", "detection"]
    assert points.candid.tolist() == [NO_CANDID, NO_CANDID, ZTF_CANDID + 1, ZTF_CANDID, 9]
    assert points.band.tolist() == ["r", "g", "r", "g", "y"]
    assert points.isdiffpos.tolist() == [pd.NA, pd.NA, False, True, pd.NA]
    assert points.corrected.tolist() == [pd.NA, pd.NA, False, True, pd.NA]
    assert points.stellar.tolist() == [pd.NA, pd.NA, False, False, pd.NA]
    assert points.magpsf_corr[3] == 17.5 and points.magpsf_corr.drop(index=3).isna().all()
    assert np.isnan(points.magpsf[1]) and points.magpsf[0] == 21.0 and np.isnan(points.diffmaglim[4])
    assert points.psfFlux.tolist() == [3.0, 2.0, 1.0, 0.0, 4.0]


def test_chunks_split_an_object_into_several_packed_rows_that_unpack_to_the_same_points():
    table = tagged_rows()
    whole = pack_points(table)
    chunks = pa.Table.from_batches(list(pack_batches(table.to_batches(max_chunksize=3), chunk_rows=3)))
    assert chunks.num_rows > whole.num_rows

    def points(packed):
        frame = unpack_points(packed["survey"].to_numpy(zero_copy_only=False),
                              packed["objectId"].to_numpy(zero_copy_only=False), packed["points"].to_pylist())
        return frame.sort_values(["objectId", "mjd"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(points(chunks), points(whole))


def test_packed_rows_become_the_point_and_alert_rows_of_the_expiring_operator():
    rows = packed_point_rows(pack_points(tagged_rows()).to_pandas())
    alerts = rows[rows.kind == ALERT]
    assert sorted(alerts.objectId) == ["99", "ZTF1"]
    assert alerts.set_index("objectId").loc["ZTF1", "candid"] == ZTF_CANDID
    assert len(rows) - len(alerts) == 5 and set(CONTEXT_COLUMNS) <= set(rows.columns)


@pytest.mark.parametrize(("column", "value", "message"), [
    ("band", "q", "unknown point band"),
    ("kind", "bogus", "unknown point kind"),
    ("mjd", None, "needs mjd and band"),
])
def test_bad_points_fail_with_a_clear_message(column, value, message):
    table = tagged_rows()
    values = table[column].to_pylist()
    values[2] = value
    table = table.set_column(table.schema.get_field_index(column), column, pa.array(values, table[column].type))
    with pytest.raises(ValueError, match=message):
        pack_points(table)


def test_points_packed_in_an_earlier_layout_are_refused_with_what_to_do():
    earlier = np.zeros(17, np.dtype([("mjd", "<f8"), ("rest", "V67")]))  # 17 records of 75 bytes = 15 of 85
    earlier["mjd"] = 60000.25
    with pytest.raises(ValueError, match="earlier lenga version; start the aggregation from a new checkpoint"):
        unpack_points(np.array(["ztf"]), np.array(["ZTF1"]), [earlier.tobytes()])
