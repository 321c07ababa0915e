"""The objects of a micro-batch: one position per object from its alerts, with the alert-context flags.

An object is matched once, at the mean direction of the alerts it has in the batch that first sees
it: the normalised sum of their unit vectors (Fisher, Lewis & Embleton 1987, Statistical Analysis of
Spherical Data, sect. 3.2.1).  Unlike an average of RA it is right across RA=0/360 and near the
poles, and for one alert it is that alert's position.  ``night`` is the object's first night in the
batch; a flag (``lenga.xmatch.context``) is set when any of its alerts sets it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lenga.xmatch.catalog import float_column
from lenga.xmatch.context import alert_flags

OBJECT_KEYS = ("survey", "objectId")
# The alerts-table columns the flags read (null for the other survey's alerts).
FLAG_INPUTS = ("ssdistnr", "ssmagnr", "ssObjectId", "sgscore1", "distpsnr1")
ALERT_COLUMNS = (*OBJECT_KEYS, "ra", "dec", "night", *FLAG_INPUTS)

OBJECTS_SCHEMA = pa.schema([
    ("survey", pa.string()),
    ("objectId", pa.string()),
    ("ra", pa.float64()),
    ("dec", pa.float64()),
    ("night", pa.int32()),
    ("known_sso", pa.bool_()),
    ("probable_star", pa.bool_()),
])


def alert_objects(alerts: pa.Table) -> pa.Table:
    """One row per (survey, objectId) of ``alerts`` (columns ``ALERT_COLUMNS``), ``OBJECTS_SCHEMA``.

    Alerts with a NaN or null coordinate give their object a NaN position, which matches nothing.
    """
    missing = [c for c in ALERT_COLUMNS if c not in alerts.column_names]
    if missing:
        raise ValueError(f"alerts lack the columns {missing} the cross-match reads; have {alerts.column_names}")
    ra = np.radians(float_column(alerts, "ra", "alerts"))
    dec = np.radians(float_column(alerts, "dec", "alerts"))
    known_sso, star = alert_flags(*(alerts.column(c).to_pandas() for c in FLAG_INPUTS))
    per_alert = pa.table({
        "survey": alerts.column("survey"),
        "objectId": alerts.column("objectId").cast(pa.string()),
        "x": np.cos(dec) * np.cos(ra),
        "y": np.cos(dec) * np.sin(ra),
        "z": np.sin(dec),
        "night": alerts.column("night").cast(pa.int32()),
        "known_sso": known_sso,
        "probable_star": star,
    })
    grouped = per_alert.group_by(list(OBJECT_KEYS), use_threads=False).aggregate([
        ("x", "sum"), ("y", "sum"), ("z", "sum"), ("night", "min"), ("known_sso", "any"), ("probable_star", "any"),
    ])
    x, y, z = (grouped.column(f"{axis}_sum").to_numpy(zero_copy_only=False) for axis in "xyz")
    return pa.table({
        "survey": grouped.column("survey"),
        "objectId": grouped.column("objectId"),
        "ra": np.mod(np.degrees(np.arctan2(y, x)), 360.0),
        "dec": np.degrees(np.arctan2(z, np.hypot(x, y))),
        "night": grouped.column("night_min"),
        "known_sso": pc.fill_null(grouped.column("known_sso_any"), False),
        "probable_star": pc.fill_null(grouped.column("probable_star_any"), False),
    }, schema=OBJECTS_SCHEMA)
