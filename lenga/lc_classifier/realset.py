"""Labelled real light curves (the layout of ``../shared/data/real``) turned into the stream's features.

A labelled real set is a directory with ``labels.csv`` (one row per object: ``object_id``, ``label``
in ALeRCE's 15 light-curve classes or empty) and ``lightcurves.parquet`` (one row per epoch). Only
ZTF curves are used: other surveys' rows (SDSS Stripe 82) have another cadence, other bands and
apparent magnitudes, which the stream never sees. Each ZTF curve is shaped as the aggregation
stores it (detections with ``magpsf`` of the absolute difference flux, its sign and the signed flux;
upper limits with ``diffmaglim``), de-duplicated by :func:`lenga.curves.points.merge_curves` and
passed through the stream's own feature function (:func:`lenga.features.curve_rows.curve_features`),
so training, evaluation and the stream see the same features.

The sign of a detection is ``isdiffpos`` where the row has it, else the sign of the difference flux
(``flux_ujy``), else positive; the signed flux is ``flux_ujy`` where given, else computed from the
magnitude and that sign. Bad input raises :class:`RealSetError` with one line naming what is wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lenga.curves.points import CURVE_COLUMNS, DETECTION, NO_CANDID, merge_curves
from lenga.features import FeatureConfig
from lenga.features.curve_rows import curve_features, curves_table
from lenga.lc_classifier.model import LEAF_CLASSES
from lenga.photometry import ISDIFFPOS, difference_flux
from lenga.schema import UPPER_LIMIT

LABELS_FILE = "labels.csv"
LIGHTCURVES_FILE = "lightcurves.parquet"
LABEL_COLUMNS = ("object_id", "label")
LIGHTCURVE_COLUMNS = ("object_id", "survey", "mjd", "band", "mag", "mag_err", "is_detection")
#: The survey value of ZTF rows; the only survey whose curves are classified here.
ZTF = "ZTF"
#: Microjansky to nanojansky.
NJY_PER_UJY = 1000.0


class RealSetError(ValueError):
    """A labelled real set that cannot be read as documented (one line: what and where)."""


def _require(frame: pd.DataFrame, columns: tuple[str, ...], path: Path) -> None:
    if frame.empty:
        raise RealSetError(f"{path} has no rows")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise RealSetError(f"{path} lacks column(s) {', '.join(missing)}")


def read_labels(directory: str | Path) -> pd.DataFrame:
    """``labels.csv``: ids as strings; a non-empty ``label`` must be one of the 15 leaf classes."""
    path = Path(directory) / LABELS_FILE
    if not path.is_file():
        raise RealSetError(f"{path} does not exist")
    try:
        labels = pd.read_csv(path, dtype={"object_id": str, "label": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise RealSetError(f"{path} is not a readable CSV file ({type(error).__name__})") from None
    _require(labels, LABEL_COLUMNS, path)
    unknown = sorted(set(labels["label"].dropna()) - set(LEAF_CLASSES))
    if unknown:
        raise RealSetError(f"{path} has unknown light-curve label(s) {', '.join(unknown)} "
                           f"(expected one of {', '.join(LEAF_CLASSES)} or empty)")
    return labels


def read_lightcurves(directory: str | Path) -> pd.DataFrame | None:
    """``lightcurves.parquet``, or None when the set has none."""
    path = Path(directory) / LIGHTCURVES_FILE
    if not path.exists():
        return None
    try:
        curves = pd.read_parquet(path)
    except (OSError, ValueError) as error:
        raise RealSetError(f"{path} is not a readable Parquet file ({type(error).__name__})") from None
    _require(curves, LIGHTCURVE_COLUMNS, path)
    return curves


def _floats(frame: pd.DataFrame, column: str, scale: float = 1.0) -> np.ndarray:
    """``column`` as floats times ``scale``; NaN everywhere when the set has no such column."""
    return frame[column].to_numpy(dtype=float) * scale if column in frame else np.full(len(frame), np.nan)


def _signs(rows: pd.DataFrame) -> np.ndarray:
    """True where the difference flux is positive (see the module docstring)."""
    stated = rows["isdiffpos"].astype(str).str.lower().map(ISDIFFPOS).astype("boolean") if "isdiffpos" in rows else None
    flux = _floats(rows, "flux_ujy")
    from_flux = np.where(np.isfinite(flux), flux > 0, True)
    if stated is None:
        return from_flux
    return np.where(stated.notna().to_numpy(), stated.to_numpy(dtype=bool, na_value=True), from_flux)


def ztf_curve_points(curves: pd.DataFrame) -> pd.DataFrame:
    """The ZTF epochs as de-duplicated curve points (``OBJECT_KEY`` + ``CURVE_COLUMNS``): detections
    with a finite magnitude, upper limits with a finite ``diffmaglim``."""
    ztf = curves[curves["survey"] == ZTF]
    detected = ztf["is_detection"].astype(bool).to_numpy()
    limit = _floats(ztf, "diffmaglim")
    keep = (detected & np.isfinite(ztf["mag"].to_numpy(dtype=float))) | (~detected & np.isfinite(limit))
    ztf, detected, limit = ztf[keep], detected[keep], limit[keep]
    positive = _signs(ztf)
    magpsf, sigmapsf = ztf["mag"].to_numpy(dtype=float), ztf["mag_err"].to_numpy(dtype=float)
    flux, flux_err = difference_flux(_floats(ztf, "flux_ujy", NJY_PER_UJY), _floats(ztf, "flux_err_ujy", NJY_PER_UJY),
                                     magpsf, sigmapsf, positive)
    nan = np.full(len(ztf), np.nan)
    points = pd.DataFrame({
        "survey": "ztf", "objectId": ztf["object_id"].astype(str).to_numpy(),
        "kind": np.where(detected, DETECTION, UPPER_LIMIT).astype(object),
        # real rows have no usable candid for every epoch: the epoch's position in the file stands for it
        "candid": pd.array(np.where(detected, np.arange(len(ztf)), NO_CANDID), dtype="Int64"),
        "mjd": ztf["mjd"].to_numpy(dtype=float), "band": ztf["band"].astype(str).to_numpy(),
        "magpsf": np.where(detected, magpsf, nan), "sigmapsf": np.where(detected, sigmapsf, nan),
        "psfFlux": np.where(detected, flux, nan), "psfFluxErr": np.where(detected, flux_err, nan),
        "isdiffpos": pd.array(positive, dtype="boolean"),
        "diffmaglim": np.where(detected, nan, limit), "ra": nan, "dec": nan,
    })
    return merge_curves(points)


def labelled_features(labels: pd.DataFrame, curves: pd.DataFrame | None, config: FeatureConfig) -> pd.DataFrame:
    """Features of the labelled ZTF objects of a real set (:func:`read_labels`,
    :func:`read_lightcurves`), with ``class_name`` (empty frame when the set has no light curves).
    Objects whose curve gives no feature row (too few points) are left out; the caller applies the
    stream's classification rule (:func:`lenga.lc_classifier.inference.eligible`)."""
    labels = labels.dropna(subset=["label"])
    if curves is None:
        return pd.DataFrame()
    points = ztf_curve_points(curves[curves["object_id"].astype(str).isin(set(labels["object_id"]))])
    if points.empty:
        return pd.DataFrame()
    groups = points.groupby("objectId", sort=True)
    ids = list(groups.groups)
    rows = curves_table(["ztf"] * len(ids), ids,
                        [{c: group[c].to_numpy(dtype=object if c in ("kind", "band") else None) for c in CURVE_COLUMNS}
                         | {"candid": group["candid"].to_numpy(dtype=np.int64, na_value=NO_CANDID),
                            "isdiffpos": group["isdiffpos"].to_numpy(dtype=bool, na_value=True)}
                         for _, group in groups])
    features = curve_features(rows, config)
    label_of = labels.set_index("object_id")["label"]
    return features.assign(class_name=features["objectId"].map(label_of).to_numpy())
