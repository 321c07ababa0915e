"""Per-object light curves and the ``objects`` statistics (ALeRCE's *aggregation* / magstats step).

An object's light curve is every point lenga has seen for it: detections (from the alert itself and
from the history of every later alert), upper limits and forced photometry. The same point reaches
lenga many times and in any order (replays, late alerts, a night re-sent), so a curve is a *set*:

- a detection is identified by its ``candid`` (ZTF candid, LSST diaSourceId),
- an upper limit / forced point by ``(kind, band, mjd)`` (they have no id; the table keys of
  ``non_detections`` in :mod:`lenga.schema` are the same),

and :func:`merge_curves` returns the same rows, in the same (mjd) order, whatever the order, the
repetitions and the splitting of its inputs. When two copies of a point differ (they should not),
the smallest row in a total order over all columns wins, so the choice never depends on arrival.

:func:`object_statistics` computes the ``objects`` row of many objects at once (one pandas groupby,
no per-object Python), following ALeRCE's magnitude statistics (Förster et al. 2021, AJ 161, 242,
sec. 3.3, "magstats"): per band first/last/mean/median/min/max/std magnitude, first/last MJD, and
the rate of change since the first detection; plus the weighted mean position and its scatter.
Everything is a function of the de-duplicated, mjd-sorted set, hence order-independent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lenga.healpix import NO_PIXEL, hpx_index, neighbour_block
from lenga.schema import FORCED, UPPER_LIMIT

#: ``kind`` of a detection in a curve (non-detections keep their table's ``kind``).
DETECTION = "detection"
KINDS = (DETECTION, UPPER_LIMIT, FORCED)

OBJECT_KEY = ["survey", "objectId"]
#: One point of a light curve; detections and non-detections share it (absent values are null).
CURVE_COLUMNS = ["kind", "candid", "mjd", "band", "magpsf", "sigmapsf", "psfFlux", "psfFluxErr",
                 "isdiffpos", "diffmaglim", "ra", "dec"]
CURVE_DTYPES = {"kind": object, "candid": "Int64", "mjd": "float64", "band": object, "magpsf": "float64",
                "sigmapsf": "float64", "psfFlux": "float64", "psfFluxErr": "float64", "isdiffpos": "boolean",
                "diffmaglim": "float64", "ra": "float64", "dec": "float64"}

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
ARCSEC_PER_DEG = 3600.0
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


def statistics_columns() -> list[str]:
    """Columns of :func:`object_statistics`, in order."""
    per_band = [f"{stat}_{band}" for band in BANDS for stat in BAND_STATS]
    return [*OBJECT_KEY, "ndet", "n_upper_limits", "n_forced", "firstmjd", "lastmjd",
            "meanra", "meandec", "sigmara", "sigmadec", "hpx", *per_band]


def _weighted_position(det: pd.DataFrame, group: pd.Series) -> pd.DataFrame:
    """Weighted mean RA/Dec (deg) and weighted scatter (arcsec) of each object's detections.

    Weights are 1/sigmapsf^2: a centroid's error scales as FWHM/SNR (e.g. King 1983, PASP 95, 163)
    and SNR = 2.5/ln(10)/sigmapsf, so brighter detections count more. The mean is taken on unit
    vectors (no RA wrap at 0/360 deg); scatter is the weighted RMS offset along RA (times cos Dec)
    and Dec from that mean, in arcsec.
    """
    sigma = det["sigmapsf"].to_numpy(dtype=float)
    ra = np.radians(det["ra"].to_numpy(dtype=float))
    dec = np.radians(det["dec"].to_numpy(dtype=float))
    usable = np.isfinite(sigma) & (sigma > 0) & np.isfinite(ra) & np.isfinite(dec)
    w = np.where(usable, 1.0 / np.where(usable, sigma, 1.0) ** 2, 0.0)
    ra0, dec0 = np.where(usable, ra, 0.0), np.where(usable, dec, 0.0)
    xyz = pd.DataFrame({"w": w, "x": w * np.cos(dec0) * np.cos(ra0), "y": w * np.cos(dec0) * np.sin(ra0),
                        "z": w * np.sin(dec0)}).groupby(group.to_numpy(), sort=False).sum()
    mean_ra = np.degrees(np.arctan2(xyz["y"], xyz["x"])) % 360.0
    mean_ra = mean_ra.where(mean_ra < 360.0, 0.0)  # -1e-20 % 360 rounds to 360.0
    mean_dec = np.degrees(np.arctan2(xyz["z"], np.hypot(xyz["x"], xyz["y"])))
    index = pd.Index(group.to_numpy())
    ra_at = np.radians(mean_ra.reindex(index).to_numpy())
    dec_at = np.radians(mean_dec.reindex(index).to_numpy())
    dra = (np.angle(np.exp(1j * (ra0 - ra_at))) * np.cos(dec_at))  # wrapped to (-pi, pi]
    ddec = dec0 - dec_at
    spread = pd.DataFrame({"ra2": w * dra ** 2, "dec2": w * ddec ** 2}).groupby(group.to_numpy(), sort=False).sum()
    weight = xyz["w"].where(xyz["w"] > 0)
    to_arcsec = np.degrees(1.0) * ARCSEC_PER_DEG
    return pd.DataFrame({
        "meanra": mean_ra.where(weight.notna()), "meandec": mean_dec.where(weight.notna()),
        "sigmara": np.sqrt(spread["ra2"] / weight) * to_arcsec,
        "sigmadec": np.sqrt(spread["dec2"] / weight) * to_arcsec,
    })


def _band_statistics(det: pd.DataFrame, group: np.ndarray) -> pd.DataFrame:
    """Per object and band: detections, first/last MJD and magnitude statistics.

    Magnitudes come from positive detections only (``isdiffpos``): the magpsf of a negative
    difference is the magnitude of |flux| of a source that faded below its template, on another
    scale, and mixing both would make the mean meaningless. ``magstd`` is the sample standard
    deviation (null for one point); ``magrate`` = (maglast - magfirst) / (lastmjd - firstmjd) in
    mag/day, null when the positive detections span no time.
    """
    by = [group, det["band"].to_numpy()]
    counts = det.groupby(by, sort=False).agg(ndet=("mjd", "size"))
    positive = det["isdiffpos"].fillna(False).to_numpy(dtype=bool) & np.isfinite(det["magpsf"].to_numpy(dtype=float))
    pos = det.loc[positive]
    pos_by = [group[positive], pos["band"].to_numpy()]
    mags = pos.groupby(pos_by, sort=False).agg(
        firstmjd=("mjd", "first"), lastmjd=("mjd", "last"), magfirst=("magpsf", "first"),
        maglast=("magpsf", "last"), magmean=("magpsf", "mean"), magmedian=("magpsf", "median"),
        magmin=("magpsf", "min"), magmax=("magpsf", "max"), magstd=("magpsf", "std"))
    span = mags["lastmjd"] - mags["firstmjd"]
    mags["magrate"] = ((mags["maglast"] - mags["magfirst"]) / span).where(span > 0)
    table = counts.join(mags, how="left")
    table.index.names = ["group", "band"]
    unknown = set(table.index.get_level_values("band")) - set(BANDS)
    if unknown:
        raise ValueError(f"unknown band(s) {sorted(unknown)}; lenga knows {BANDS}")
    wide = table.unstack("band")
    wide.columns = [f"{stat}_{band}" for stat, band in wide.columns]
    return wide


def object_statistics(curves: pd.DataFrame) -> pd.DataFrame:
    """One ``objects`` row per (survey, objectId) of ``curves`` (the output of :func:`merge_curves`,
    many objects at once), with the columns of :func:`statistics_columns`.

    ``ndet``/``firstmjd``/``lastmjd`` count every detection; ``n_upper_limits``/``n_forced`` the
    non-detections; an object with no detection yet (forced photometry only) has null magnitudes
    and position. ``hpx`` is the nested HEALPix pixel at :data:`OBJECTS_HPX_ORDER` of the mean
    position (the partition of the ``objects`` table), -1 without a position.
    """
    curves = merge_curves(curves)
    columns = statistics_columns()
    if curves.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c in OBJECT_KEY else "float64") for c in columns})
    keys = curves[OBJECT_KEY].drop_duplicates().reset_index(drop=True)
    group = curves.groupby(OBJECT_KEY, sort=False).ngroup().to_numpy()
    kind = curves["kind"].to_numpy()
    out = keys.copy()
    for column, counted in (("ndet", DETECTION), ("n_upper_limits", UPPER_LIMIT), ("n_forced", FORCED)):
        out[column] = np.bincount(group[kind == counted], minlength=len(out))
    is_det = kind == DETECTION
    det = curves.loc[is_det]
    det_group = group[is_det]
    span = det.groupby(det_group, sort=False)["mjd"].agg(["min", "max"]).reindex(out.index)
    out["firstmjd"], out["lastmjd"] = span["min"].to_numpy(), span["max"].to_numpy()
    position = _weighted_position(det, pd.Series(det_group)).reindex(out.index)
    out = out.join(position)
    has_position = out["meanra"].notna().to_numpy()
    hpx = np.full(len(out), -1, dtype=np.int64)
    hpx[has_position] = hpx_index(out.loc[has_position, "meanra"].to_numpy(),
                                  out.loc[has_position, "meandec"].to_numpy(), OBJECTS_HPX_ORDER)
    out["hpx"] = hpx
    bands = _band_statistics(det, det_group).reindex(out.index)
    out = out.join(bands)
    for column in columns:
        if column not in out.columns:
            out[column] = 0 if column.startswith("ndet_") else np.nan
    ndet_bands = [f"ndet_{b}" for b in BANDS]
    out[ndet_bands] = out[ndet_bands].fillna(0).astype(np.int64)
    return out[columns]


def target_pixels(hpx: list[int]) -> list[int]:
    """Pixels a MERGE must read for rows now in ``hpx``: those, their neighbours (a row whose mean
    position crossed a border is still in its old pixel) and -1 (objects that had no detection)."""
    pixels = np.asarray([p for p in hpx if p != NO_PIXEL], dtype=np.int64)
    block = neighbour_block(pixels, OBJECTS_HPX_ORDER) if pixels.size else np.empty(0, dtype=np.int64)
    return sorted({int(p) for p in np.ravel(block) if p != NO_PIXEL} | {NO_PIXEL})
