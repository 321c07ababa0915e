"""Per-object light curves: every point lenga has seen of an object, de-duplicated (ALeRCE's *aggregation*).

An object's light curve is every point lenga has seen for it: detections (from the alert itself and
from the history of every later alert), upper limits and forced photometry. The same point reaches
lenga many times and in any order (replays, late alerts, a night re-sent), so a curve is a *set*:

- a detection is identified by its ``candid`` (ZTF candid, LSST diaSourceId),
- an upper limit / forced point by ``(kind, band, mjd)`` (they have no id; the table keys of
  ``non_detections`` in :mod:`lenga.schema` are the same),

and :func:`merge_curves` returns the same rows, in the same (mjd) order, whatever the order, the
repetitions and the splitting of its inputs. When two copies of a point differ (they should not),
the smallest row in a total order over all columns wins, so the choice never depends on arrival.

The ``objects`` statistics of a curve are in :mod:`lenga.curves.magstats`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lenga.healpix import NO_PIXEL, neighbour_block
from lenga.schema import FORCED, UPPER_LIMIT

#: ``kind`` of a detection in a curve (non-detections keep their table's ``kind``).
DETECTION = "detection"
KINDS = (DETECTION, UPPER_LIMIT, FORCED)

OBJECT_KEY = ["survey", "objectId"]
#: ALeRCE's correction of a ZTF detection (lenga.curves.correction, lenga.schema.DETECTIONS): null
#: for LSST, non-detections and detections stored before lenga had it; points that come without
#: these columns (simulated and labelled curves) get them null.
CORRECTION_COLUMNS = ["corrected", "stellar", "magpsf_corr"]
#: One point of a light curve; detections and non-detections share it (absent values are null).
CURVE_COLUMNS = ["kind", "candid", "mjd", "band", "magpsf", "sigmapsf", "psfFlux", "psfFluxErr",
                 "isdiffpos", "diffmaglim", "ra", "dec", *CORRECTION_COLUMNS]
CURVE_DTYPES = {"kind": object, "candid": "Int64", "mjd": "float64", "band": object, "magpsf": "float64",
                "sigmapsf": "float64", "psfFlux": "float64", "psfFluxErr": "float64", "isdiffpos": "boolean",
                "diffmaglim": "float64", "ra": "float64", "dec": "float64", "corrected": "boolean",
                "stellar": "boolean", "magpsf_corr": "float64"}

#: Reference-source context of an object, from its latest alert (ZTF: PS1 star/galaxy score of the
#: closest source, its distance and r magnitude, Tachibana & Miller 2018, PASP 130, 128001; LSST:
#: the diaSource extendedness). The other survey's columns are null.
CONTEXT_COLUMNS = ["sgscore1", "distpsnr1", "srmag1", "extendedness"]

#: Bands of both surveys (ZTF g/r/i, LSST u..y): one set of per-band columns each.
BANDS = ("u", "g", "r", "i", "z", "y")
#: Per-band magnitude statistics, in column order (``<stat>_<band>``).
BAND_STATS = ("ndet", "firstmjd", "lastmjd", "magfirst", "maglast", "magmean", "magmedian", "magmin",
              "magmax", "magstd", "magrate")
#: HEALPix order of the ``objects`` partition column ``hpx`` (192 pixels of ~15 deg, see
#: lenga.stream.aggregate for why this bounds the files a MERGE rewrites).
OBJECTS_HPX_ORDER = 2
#: The candid of a point that has none (non-detections) wherever a null cannot be used: in the
#: de-duplication key, and in int64 columns crossing pandas (an int column with nulls becomes float64
#: there, and ZTF candids exceed 2**53). Never compared with a real candid: keys include the kind.
NO_CANDID = -1
# The band of a detection in the de-duplication key (its candid alone identifies it).
_NO_BAND = ""


def empty_curve() -> pd.DataFrame:
    """A curve with no points, with the curve dtypes and the object key."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in
                         {"survey": object, "objectId": object, **CURVE_DTYPES}.items()})


def _typed(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The parts' points in one frame with the curve dtypes, or a clear error for bad input."""
    columns = OBJECT_KEY + CURVE_COLUMNS
    parts = [part.assign(**{c: None for c in CORRECTION_COLUMNS if c not in part.columns}) for part in parts]
    for part in parts:
        missing = [c for c in columns if c not in part.columns]
        if missing:
            raise ValueError(f"light-curve points lack column(s) {missing}; expected {columns}")
    frame = pd.concat([p[columns] for p in parts], ignore_index=True) if len(parts) > 1 else parts[0][columns]
    frame = frame.astype({c: t for c, t in CURVE_DTYPES.items() if frame[c].dtype != t})
    kind = frame["kind"].to_numpy()
    bad_kind = ~np.isin(kind, KINDS)
    if bad_kind.any():
        raise ValueError(f"unknown point kind(s) {sorted(set(kind[bad_kind].astype(str)))}; expected one of {KINDS}")
    if frame["candid"].isna().to_numpy()[kind == DETECTION].any():
        raise ValueError("a detection without candid cannot be de-duplicated")
    if frame["mjd"].isna().any() or frame["band"].isna().any():
        raise ValueError("every light-curve point needs mjd and band")
    return frame.reset_index(drop=True)


def _codes(values: pd.Series) -> np.ndarray:
    """Integer codes that sort like the values (strings), for np.lexsort."""
    return pd.factorize(values, sort=True)[0]


def merge_curves(*parts: pd.DataFrame) -> pd.DataFrame:
    """The union of light-curve points of many objects, de-duplicated and sorted by
    (survey, objectId, mjd, kind, band, candid); the index is reset.

    Each part has the :data:`OBJECT_KEY` and :data:`CURVE_COLUMNS` columns (e.g. an object's stored
    curve and this batch's new detections and non-detections). The result does not depend on the
    order of the parts, the order of rows inside them, repeated rows, or how rows are split between
    calls: ``merge_curves(merge_curves(a, b), c) == merge_curves(c, b, a)``.
    """
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_curve()
    points = _typed(parts)
    detection = (points["kind"] == DETECTION).to_numpy()
    candid = points["candid"].to_numpy(dtype=np.int64, na_value=NO_CANDID)
    key = pd.DataFrame({
        "survey": points["survey"], "objectId": points["objectId"], "kind": points["kind"],
        "key_candid": np.where(detection, candid, NO_CANDID),
        "key_band": np.where(detection, _NO_BAND, points["band"]),
        "key_mjd": np.where(detection, 0.0, points["mjd"]),
    })
    repeated = key.duplicated(keep=False).to_numpy()
    if repeated.any():
        # Among copies of a point, the first in a total order on every value column is kept, so the
        # choice never depends on arrival order (copies normally are identical).
        copies = pd.concat([key[repeated], points.loc[repeated, CURVE_COLUMNS].add_prefix("v_")], axis=1)
        copies = copies.sort_values(list(copies.columns), kind="mergesort", na_position="last")
        points = points.drop(index=copies.index[copies.duplicated(subset=list(key.columns)).to_numpy()])
        candid = points["candid"].to_numpy(dtype=np.int64, na_value=NO_CANDID)
    order = np.lexsort((candid, _codes(points["band"]), _codes(points["kind"]), points["mjd"].to_numpy(),
                        _codes(points["objectId"]), _codes(points["survey"])))
    return points.iloc[order].reset_index(drop=True)


def latest_context(alerts: pd.DataFrame) -> pd.DataFrame:
    """Per (survey, objectId), the mjd, candid and :data:`CONTEXT_COLUMNS` of its latest alert
    (largest (mjd, candid), whatever the arrival order): the reference sources of the most recent
    template."""
    missing = [c for c in [*OBJECT_KEY, "mjd", "candid", *CONTEXT_COLUMNS] if c not in alerts.columns]
    if missing:
        raise ValueError(f"alert context lacks column(s) {missing}")
    latest = alerts.sort_values([*OBJECT_KEY, "mjd", "candid"], kind="mergesort").drop_duplicates(
        OBJECT_KEY, keep="last")
    return latest[[*OBJECT_KEY, "mjd", "candid", *CONTEXT_COLUMNS]].reset_index(drop=True)


def target_pixels(hpx: list[int]) -> list[int]:
    """Pixels a MERGE must read for rows now in ``hpx``: those, their neighbours (a row whose mean
    position crossed a border is still in its old pixel) and -1 (objects that had no detection)."""
    pixels = np.asarray([p for p in hpx if p != NO_PIXEL], dtype=np.int64)
    block = neighbour_block(pixels, OBJECTS_HPX_ORDER) if pixels.size else np.empty(0, dtype=np.int64)
    return sorted({int(p) for p in np.ravel(block) if p != NO_PIXEL} | {NO_PIXEL})
