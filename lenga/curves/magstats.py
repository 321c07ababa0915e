"""The ``objects`` table: per-object statistics of a light curve (ALeRCE's *magstats* step).

:func:`object_statistics` computes the ``objects`` row of many objects at once (one pandas groupby,
no per-object Python), following ALeRCE's magnitude statistics (Förster et al. 2021, AJ 161, 242,
sec. 3.3): per band first/last/mean/median/min/max/std magnitude, first/last MJD, and the rate of
change since the first detection; plus the weighted mean position and its scatter; and ALeRCE's
magnitude-correction flags (:mod:`lenga.curves.correction`): the object's ``corrected`` and
``stellar`` are those of its first detection, ``ndubious_<band>`` counts the dubious detections,
and the corrected magnitudes have their mean, median and std per band. Everything is a function of
the de-duplicated, mjd-sorted curve (:func:`lenga.curves.points.merge_curves`), hence
order-independent. :data:`OBJECTS` is the table's schema, every column described.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from lenga.curves.correction import NOT_MEASURABLE_MAG, first_corrected, is_dubious
from lenga.curves.points import (
    BAND_STATS,
    BANDS,
    CONTEXT_COLUMNS,
    DETECTION,
    OBJECT_KEY,
    OBJECTS_HPX_ORDER,
    merge_curves,
)
from lenga.healpix import hpx_index
from lenga.schema import FORCED, UPPER_LIMIT
from lenga.schema import described_field as _field
from lenga.tables import OBJECTS_TABLE, TableSpec

ARCSEC_PER_DEG = 3600.0
#: Per-band statistics of ALeRCE's magnitude correction, in column order (``<stat>_<band>``).
CORRECTION_BAND_STATS = ("ndubious", "magmean_corr", "magmedian_corr", "magstd_corr")
#: The correction columns of ``objects`` (object flags, then per band), added after its first version.
CORRECTION_COLUMNS = ["corrected", "stellar", *[f"{stat}_{band}" for band in BANDS for stat in CORRECTION_BAND_STATS]]


def statistics_columns() -> list[str]:
    """Columns of :func:`object_statistics`, in order."""
    per_band = [f"{stat}_{band}" for band in BANDS for stat in BAND_STATS]
    return [*OBJECT_KEY, "ndet", "n_upper_limits", "n_forced", "firstmjd", "lastmjd",
            "meanra", "meandec", "sigmara", "sigmadec", "hpx", *per_band, *CORRECTION_COLUMNS]


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
    return _wide(table)


def _wide(table: pd.DataFrame) -> pd.DataFrame:
    """(group, band) rows → one row per group, ``<stat>_<band>`` columns."""
    wide = table.unstack("band")
    wide.columns = [f"{stat}_{band}" for stat, band in wide.columns]
    return wide


def _correction_statistics(det: pd.DataFrame, group: np.ndarray) -> pd.DataFrame:
    """ALeRCE's correction flags and corrected magnitudes per object (``det``: its detections,
    sorted by object then mjd as :func:`merge_curves` leaves them; ``group``: each one's object).

    ``corrected``/``stellar`` are the first detection's (null when unknown: LSST, or stored before
    lenga corrected). ``ndubious_<band>`` is null unless every detection of the band has a known
    ``corrected``. The corrected magnitudes' statistics leave out the values ALeRCE marks as not
    measurable (:data:`NOT_MEASURABLE_MAG`), which would swamp a mean.
    """
    first = np.r_[True, group[1:] != group[:-1]] if len(group) else np.zeros(0, bool)
    flags = pd.DataFrame({"corrected": det["corrected"].array[first], "stellar": det["stellar"].array[first]},
                         index=group[first])
    band = det["band"].to_numpy()
    corrected = det["corrected"].fillna(False).to_numpy(dtype=bool)
    negative = det["isdiffpos"].eq(False).fillna(False).to_numpy(dtype=bool)
    object_band = pd.DataFrame({"group": group, "band": band}).groupby(["group", "band"], sort=False).ngroup()
    dubious = is_dubious(corrected, negative, first_corrected(object_band.to_numpy(), det["mjd"], corrected))
    by = [group, band]
    counts = pd.DataFrame({"ndubious": dubious, "known": det["corrected"].notna().to_numpy()}).groupby(by).agg(
        ndubious=("ndubious", "sum"), known=("known", "all"))
    counts["ndubious"] = counts["ndubious"].astype("Int64").where(counts["known"])
    mag_corr = det["magpsf_corr"].to_numpy(dtype=float)
    measured = corrected & np.isfinite(mag_corr) & (mag_corr < NOT_MEASURABLE_MAG)
    mags = pd.DataFrame({"mag": mag_corr[measured]}).groupby([group[measured], band[measured]]).agg(
        magmean_corr=("mag", "mean"), magmedian_corr=("mag", "median"), magstd_corr=("mag", "std"))
    table = counts[["ndubious"]].join(mags, how="left")
    table.index.names = ["group", "band"]
    return flags.join(_wide(table), how="left")


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
    out = out.join(_correction_statistics(det, det_group).reindex(out.index))
    for column in columns:
        if column not in out.columns:
            out[column] = 0 if column.startswith("ndet_") else pd.NA if column.startswith("ndubious_") else np.nan
    ndet_bands = [f"ndet_{b}" for b in BANDS]
    out[ndet_bands] = out[ndet_bands].fillna(0).astype(np.int64)
    return out[columns]


_DESCRIPTIONS = {
    "survey": "'ztf' or 'lsst'",
    "objectId": "survey object id (lenga.schema)",
    "ndet": "detections (positive and negative differences), all bands",
    "n_upper_limits": "upper limits stored for the object",
    "n_forced": "forced-photometry points stored for the object",
    "firstmjd": "MJD of the first detection",
    "lastmjd": "MJD of the last detection",
    "meanra": "mean RA of the detections weighted by 1/sigmapsf^2, degrees",
    "meandec": "mean Dec of the detections weighted by 1/sigmapsf^2, degrees",
    "sigmara": "weighted RMS of RA*cos(Dec) offsets from meanra, arcsec",
    "sigmadec": "weighted RMS of Dec offsets from meandec, arcsec",
    "hpx": f"nested HEALPix order {OBJECTS_HPX_ORDER} pixel of (meanra, meandec); -1 without detections; "
           "partition column",
    "last_batch_id": "aggregation micro-batch that last updated the row",
    "sgscore1": "ZTF star/galaxy score of the closest PS1 source, from the latest alert (1 = star)",
    "distpsnr1": "ZTF distance to the closest PS1 source, arcsec, from the latest alert",
    "srmag1": "ZTF PS1 r magnitude of the closest PS1 source, from the latest alert",
    "extendedness": "LSST diaSource extendedness of the latest alert (0 point-like .. 1 extended)",
    "corrected": "ZTF: the first detection is on a reference-image source (distnr < 1.4), so its magnitudes "
                 "are corrected (ALeRCE's object flag); null for LSST and when the first detection was stored "
                 "before lenga corrected",
    "stellar": "ZTF: the first detection is likely of a star (ALeRCE's stellar flag, lenga.curves.correction); "
               "null as corrected",
}

_CORRECTION_BAND_DESCRIPTIONS = {
    "ndubious": "detections in band {b} whose correction is dubious (ALeRCE): a negative difference off any "
                "reference source, or corrected unlike the band's first detection; null unless every detection "
                "of the band has a known corrected",
    "magmean_corr": "mean magpsf_corr of the corrected detections in band {b} (not-measurable 100s left out)",
    "magmedian_corr": "median magpsf_corr of the corrected detections in band {b}",
    "magstd_corr": "sample standard deviation of magpsf_corr in band {b} (null for one point)",
}


_BAND_DESCRIPTIONS = {
    "ndet": "detections in band {b}",
    "firstmjd": "MJD of the first positive detection in band {b}",
    "lastmjd": "MJD of the last positive detection in band {b}",
    "magfirst": "magpsf of the first positive detection in band {b}",
    "maglast": "magpsf of the last positive detection in band {b}",
    "magmean": "mean magpsf of positive detections in band {b}",
    "magmedian": "median magpsf of positive detections in band {b}",
    "magmin": "brightest magpsf in band {b}",
    "magmax": "faintest magpsf in band {b}",
    "magstd": "sample standard deviation of magpsf in band {b} (null for one point)",
    "magrate": "(maglast - magfirst) / (lastmjd - firstmjd) in band {b}, mag/day",
}


def _objects_schema() -> pa.Schema:
    fields = [_field(k, pa.string(), _DESCRIPTIONS[k]) for k in OBJECT_KEY]
    fields += [_field(k, pa.int64(), _DESCRIPTIONS[k]) for k in ("ndet", "n_upper_limits", "n_forced")]
    fields += [_field(k, pa.float64(), _DESCRIPTIONS[k])
               for k in ("firstmjd", "lastmjd", "meanra", "meandec", "sigmara", "sigmadec")]
    fields.append(_field("hpx", pa.int64(), _DESCRIPTIONS["hpx"]))
    fields += [_field(k, pa.float64(), _DESCRIPTIONS[k]) for k in CONTEXT_COLUMNS]
    for band in BANDS:
        fields += [_field(f"{stat}_{band}", pa.int64() if stat == "ndet" else pa.float64(),
                          _BAND_DESCRIPTIONS[stat].format(b=band)) for stat in BAND_STATS]
    fields.append(_field("last_batch_id", pa.int64(), _DESCRIPTIONS["last_batch_id"]))
    # added after the table's first version: last, so that a table evolved from it keeps this order
    fields += [_field(k, pa.bool_(), _DESCRIPTIONS[k]) for k in ("corrected", "stellar")]
    for band in BANDS:
        fields += [_field(f"{stat}_{band}", pa.int64() if stat == "ndubious" else pa.float64(),
                          _CORRECTION_BAND_DESCRIPTIONS[stat].format(b=band)) for stat in CORRECTION_BAND_STATS]
    return pa.schema(fields)


#: The ``objects`` table: one row per (survey, objectId), upserted every micro-batch.
OBJECTS = _objects_schema()


OBJECTS_SPEC = TableSpec(OBJECTS_TABLE, OBJECTS, keys=tuple(OBJECT_KEY), partition_by=("hpx",),
                         added_columns=tuple(CORRECTION_COLUMNS))
