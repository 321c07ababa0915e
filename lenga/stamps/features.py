"""Alert metadata -> the feature vector the stamp classifier concatenates to its image features.

Carrasco-Davis et al. (2021, Table 2) feed the network about twenty alert fields that the cutouts
alone do not carry: the PSF magnitude, its error and the image depth (brightness and
significance), the sign of the difference, the shape of the difference-image source (``fwhm``,
``elong``, SExtractor ``classtar``, bad pixels ``nbad``), the nearest Pan-STARRS source
(``sgscore1``: star or galaxy, ``distpsnr1``, and ``magpsf - srmag1``, the difference flux
relative to that source's brightness), the nearest reference-image source's DAOPhot
``chinr``/``sharpnr``, how often the position was detected and covered (``ndethist``,
``ncovhist``) and the ecliptic and galactic latitudes (asteroids crowd the ecliptic, variable
stars the Galactic plane). The same :func:`metadata_features` runs on simulated alerts for
training and on the stream's ``alerts`` table for inference: one definition, no drift.

Every feature is bounded (clipped to a documented range) and has a fill value for null, NaN and
ZTF's -999 "no match" sentinel, so a real alert never produces a NaN input. LSST alerts carry
neither the PS1 nor the SExtractor fields: their vector is the photometry and the sky position.
Two image features follow them (:data:`CONTRAST_FEATURES`, from
:func:`lenga.stamps.preprocess.contrast`): how bright the science and template crops are next to
the difference, which per-image normalisation hides. :func:`model_inputs` builds both, with the
images, for training and inference alike. Standardisation (mean, std of the training set) is
part of the model (:mod:`lenga.stamps.model`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from astropy import units as u
from astropy.coordinates import BarycentricMeanEcliptic, SkyCoord

from lenga.photometry import AB_ZEROPOINT_NJY
from lenga.stamps.preprocess import CUTOUT_COLUMNS, stamp_batch

# ZTF writes -999 (and sometimes -99) where a catalogue field has no match.
SENTINEL_BELOW = -98.0


@dataclass(frozen=True)
class Feature:
    """One input: how to compute it from the alert columns, its fill value and its valid range."""

    name: str
    compute: Callable[[Callable[[str], np.ndarray]], np.ndarray]
    fill: float
    lo: float
    hi: float


def _col(name: str) -> Callable[[Callable[[str], np.ndarray]], np.ndarray]:
    return lambda get: get(name)


def _log1p(name: str) -> Callable[[Callable[[str], np.ndarray]], np.ndarray]:
    return lambda get: np.log10(1.0 + np.maximum(get(name), 0.0))


def _ecliptic_latitude(get) -> np.ndarray:
    coords = SkyCoord(get("ra") * u.deg, get("dec") * u.deg)
    return np.abs(coords.transform_to(BarycentricMeanEcliptic()).lat.deg)


def _galactic_latitude(get) -> np.ndarray:
    return np.abs(SkyCoord(get("ra") * u.deg, get("dec") * u.deg).galactic.b.deg)


def _lsst_mag(get) -> np.ndarray:
    return AB_ZEROPOINT_NJY - 2.5 * np.log10(np.abs(get("psfFlux")))


def _lsst_snr(get) -> np.ndarray:
    return np.log10(np.abs(get("psfFlux")) / get("psfFluxErr"))


_SKY = [
    Feature("ecliptic_latitude", _ecliptic_latitude, 30.0, 0.0, 90.0),
    Feature("galactic_latitude", _galactic_latitude, 30.0, 0.0, 90.0),
]

#: ZTF features (alerts-table columns named as in the ZTF schema), in input order.
ZTF_FEATURES = (
    Feature("isdiffpos", _col("isdiffpos"), 1.0, 0.0, 1.0),
    Feature("magpsf", _col("magpsf"), 19.0, 12.0, 23.0),
    Feature("sigmapsf", _col("sigmapsf"), 0.1, 0.0, 1.0),
    Feature("diffmaglim", _col("diffmaglim"), 20.0, 15.0, 23.0),
    Feature("mag_above_limit", lambda get: get("diffmaglim") - get("magpsf"), 1.0, -1.0, 8.0),
    Feature("fwhm", _col("fwhm"), 2.5, 0.0, 10.0),
    Feature("elong", _col("elong"), 1.2, 1.0, 6.0),
    Feature("classtar", _col("classtar"), 0.5, 0.0, 1.0),
    Feature("nbad", _col("nbad"), 0.0, 0.0, 25.0),
    # How bright the difference is next to the catalogued source: ~5 mag fainter for the
    # per-cent subtraction residuals of a constant star, 0-3 mag for a variable star.
    Feature("magpsf_minus_srmag1", lambda get: get("magpsf") - get("srmag1"), 3.0, -5.0, 10.0),
    Feature("sgscore1", _col("sgscore1"), 0.5, 0.0, 1.0),
    Feature("distpsnr1", _col("distpsnr1"), 30.0, 0.0, 30.0),
    Feature("chinr", _log1p("chinr"), 0.3, 0.0, 2.0),
    Feature("sharpnr", _col("sharpnr"), 0.0, -1.0, 1.0),
    Feature("ndethist", _log1p("ndethist"), 0.3, 0.0, 4.0),
    Feature("ncovhist", _log1p("ncovhist"), 1.0, 0.0, 4.0),
    *_SKY,
)

#: LSST features: the diaSource photometry (no catalogue or SExtractor fields in Rubin alerts).
LSST_FEATURES = (
    Feature("isdiffpos", lambda get: (get("psfFlux") > 0).astype(float), 1.0, 0.0, 1.0),
    Feature("magpsf", _lsst_mag, 23.0, 14.0, 27.0),
    Feature("log_snr", _lsst_snr, 1.0, 0.5, 3.0),
    *_SKY,
)

FEATURES = {"ztf": ZTF_FEATURES, "lsst": LSST_FEATURES}

#: log10 of the science and template crop scales over the difference's (computed from the images).
CONTRAST_FEATURES = (
    Feature("science_contrast", None, 1.0, -3.0, 5.0),
    Feature("template_contrast", None, 1.0, -3.0, 5.0),
)


def feature_names(survey: str) -> list[str]:
    """Names of the network's feature vector for ``survey``: metadata, then image contrast."""
    return [f.name for f in (*_features(survey), *CONTRAST_FEATURES)]


def _features(survey: str) -> tuple[Feature, ...]:
    if survey not in FEATURES:
        raise ValueError(f"no stamp features for survey {survey!r}; known: {sorted(FEATURES)}")
    return FEATURES[survey]


def _column_getter(table: pa.Table | pa.RecordBatch) -> Callable[[str], np.ndarray]:
    """Column as float64 numpy: nulls and ZTF's -999 sentinels become NaN."""
    cache: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        if name not in cache:
            if name not in table.schema.names:
                raise KeyError(f"stamp features need column {name!r}, absent from the table")
            values = pc.cast(table[name], pa.float64()).to_numpy(zero_copy_only=False).astype(float)
            values[values < SENTINEL_BELOW] = np.nan
            cache[name] = values
        return cache[name]

    return get


def metadata_features(table: pa.Table | pa.RecordBatch, survey: str) -> np.ndarray:
    """(N, n_features) float32 of the alerts in ``table`` (columns of lenga.schema.ALERTS)."""
    get = _column_getter(table)
    out = np.empty((table.num_rows, len(_features(survey))), dtype=np.float32)
    with np.errstate(all="ignore"):
        for k, feature in enumerate(_features(survey)):
            out[:, k] = _bounded(feature.compute(get), feature)
    return out


def _bounded(values, feature: Feature) -> np.ndarray:
    """Missing values filled, everything clipped to the feature's range."""
    values = np.asarray(values, dtype=float)
    return np.clip(np.where(np.isfinite(values), values, feature.fill), feature.lo, feature.hi)


@dataclass
class ModelInputs:
    """What the network takes for N alerts: ``images`` (N, 3, 21, 21), ``features`` (N, F) in the
    order of :func:`feature_names`, and per alert None or the reason it cannot be classified."""

    images: np.ndarray
    features: np.ndarray
    reasons: list[str | None]


def model_inputs(table: pa.Table | pa.RecordBatch, survey: str) -> ModelInputs:
    """Images and features of the alerts in ``table`` (columns of lenga.schema.ALERTS)."""
    stamps = stamp_batch([table.column(c).to_pylist() for c in CUTOUT_COLUMNS])
    contrast = np.column_stack([_bounded(stamps.contrast[:, k], f) for k, f in enumerate(CONTRAST_FEATURES)])
    features = np.hstack([metadata_features(table, survey), contrast.astype(np.float32)])
    return ModelInputs(stamps.images, features, stamps.reasons)
