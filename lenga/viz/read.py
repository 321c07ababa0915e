"""One object as stored in the lake, read with polars over delta-rs (no Spark, no JVM).

A plot needs a few hundred rows of one object, so Spark's start-up would cost more than the read:
polars' ``scan_delta`` prunes files on their Delta statistics and reads only the columns asked for.
Tables written by later stages (cross-match, features, classifiers) may be absent from a lake; the
readers return ``None`` for them, and plots say "no classification" rather than fail.

"Latest classification per object" follows the agreed rule (session-2 interfaces): the highest
``classifier_version`` (compared as a version, so 1.10 > 1.9), then the most recent light curve or
alert it was computed on. Older versions stay in the tables for reproducibility; Delta time travel
(``DeltaTable(path, version=N)``, ``pl.read_delta(path, version=N)``) gives the answer as of a past
commit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import polars as pl
from packaging.version import InvalidVersion, Version

from lenga.tables import LC_CLASSIFICATIONS_TABLE as LC_TABLE
from lenga.tables import STAMP_CLASSIFICATIONS_TABLE as STAMP_TABLE
from lenga.viz.cutouts import CUTOUT_COLUMNS

#: columns of the detections and non-detections read for a light curve.
DETECTION_COLUMNS = ("survey", "objectId", "candid", "mjd", "band", "magpsf", "sigmapsf", "psfFlux", "psfFluxErr",
                     "isdiffpos")
NON_DETECTION_COLUMNS = ("survey", "objectId", "kind", "mjd", "band", "diffmaglim", "psfFlux", "psfFluxErr", "magpsf",
                         "sigmapsf")
ALERT_COLUMNS = ("survey", "objectId", "candid", "mjd", "band", "ra", "dec", "magpsf", *CUTOUT_COLUMNS)
#: Which alert's cutouts to show: the object's most recent one, or its discovery alert.
ALERT_CHOICES = ("latest", "first")


def table_path(lake: str | os.PathLike, table: str) -> Path:
    return Path(lake) / table


def has_table(lake: str | os.PathLike, table: str) -> bool:
    """A Delta table exists (its log does), whether or not it has rows."""
    return (table_path(lake, table) / "_delta_log").is_dir()


def read_table(lake: str | os.PathLike, table: str, columns: tuple[str, ...] | None = None,
               where: pl.Expr | None = None) -> pl.DataFrame | None:
    """Rows of a lake table (``None`` when the table is absent), optionally filtered and projected."""
    if not has_table(lake, table):
        return None
    frame = pl.scan_delta(str(table_path(lake, table)))
    if where is not None:
        frame = frame.filter(where)
    if columns is not None:
        frame = frame.select(columns)
    return frame.collect()


def version_rank(versions: pl.Series) -> pl.Series:
    """Each classifier version's rank among the distinct ones (0 = oldest), ordered as versions
    (PEP 440: ``1.10.0`` after ``1.9.0``); a version that does not parse sorts first, as text."""
    def key(text: str):
        try:
            return (1, Version(text), "")
        except InvalidVersion:
            return (0, Version("0"), text)

    order = {v: i for i, v in enumerate(sorted(versions.unique().to_list(), key=key))}
    return versions.replace_strict(order, return_dtype=pl.Int64)


def latest_classification(rows: pl.DataFrame, recency: tuple[str, ...],
                          per: tuple[str, ...] = ("survey", "objectId", "classifier")) -> pl.DataFrame:
    """The rows of the latest classification of each ``per`` group (an object and a classifier):
    highest ``classifier_version``, then the largest ``recency`` columns (e.g. ``lastmjd``)."""
    if rows.is_empty():
        return rows
    newest = rows.with_columns(version_rank(rows["classifier_version"]).alias("_rank"))
    for column in ("_rank", *recency):
        newest = newest.filter(pl.col(column) == pl.col(column).max().over(per))
    return newest.drop("_rank").sort(*per, "ranking")


def table_rows(lake: str | os.PathLike) -> dict[str, int]:
    """Row count of every Delta table at the top of ``lake``."""
    from deltalake import DeltaTable

    return {path.name: DeltaTable(str(path)).to_pyarrow_dataset().count_rows()
            for path in sorted(Path(lake).iterdir()) if (path / "_delta_log").is_dir()}


@dataclass
class ObjectView:
    """Everything the object figure shows, as plain pandas frames.

    ``alert`` is the row of the alert whose cutouts are shown (``None`` when the alerts table has
    none for the object); ``stamp`` the stamp classifier's probabilities for that alert (or the
    object's latest classified alert); ``light_curve`` the light-curve classifier's latest
    probabilities, both levels. ``None`` for a classifier whose table is absent or has no row.
    """

    object_id: str
    survey: str
    detections: pd.DataFrame
    non_detections: pd.DataFrame
    alert: dict | None
    stamp: pd.DataFrame | None
    light_curve: pd.DataFrame | None


def load_object(lake: str | os.PathLike, object_id: str, alert: str = "latest") -> ObjectView:
    """Read one object's light curve, one alert's cutouts and its classifications from ``lake``."""
    if alert not in ALERT_CHOICES:
        raise ValueError(f"alert must be one of {ALERT_CHOICES}, got {alert!r}")
    if not has_table(lake, "detections"):
        raise FileNotFoundError(f"no detections table in {lake}: is it a lenga lake?")
    this = pl.col("objectId") == object_id
    detections = read_table(lake, "detections", DETECTION_COLUMNS, this).sort("mjd")
    if detections.is_empty():
        raise LookupError(f"object {object_id!r} has no detection in {lake}")
    survey = detections["survey"][0]
    non_detections = read_table(lake, "non_detections", NON_DETECTION_COLUMNS, this)
    non_detections = (non_detections if non_detections is not None
                      else pl.DataFrame(schema=dict.fromkeys(NON_DETECTION_COLUMNS))).sort("mjd")

    alerts = read_table(lake, "alerts", ALERT_COLUMNS, this)
    shown = None
    if alerts is not None and not alerts.is_empty():
        alerts = alerts.sort("mjd", "candid")
        shown = (alerts.row(-1, named=True) if alert == "latest" else alerts.row(0, named=True))

    stamp = _stamp_probabilities(lake, this, shown)
    lc = read_table(lake, LC_TABLE, where=this)
    light_curve = None
    if lc is not None and not lc.is_empty():
        light_curve = latest_classification(lc, ("lastmjd", "ndet", "batch_id")).to_pandas()
    return ObjectView(object_id, survey, detections.to_pandas(), non_detections.to_pandas(), shown, stamp,
                      light_curve)


def _stamp_probabilities(lake, this: pl.Expr, shown: dict | None) -> pd.DataFrame | None:
    """The stamp classifier's probabilities for the shown alert, else for the latest classified one."""
    rows = read_table(lake, STAMP_TABLE, where=this)
    if rows is None or rows.is_empty():
        return None
    if shown is not None and (rows["candid"] == shown["candid"]).any():
        rows = rows.filter(pl.col("candid") == shown["candid"])
    return latest_classification(rows, ("mjd", "candid")).to_pandas()
