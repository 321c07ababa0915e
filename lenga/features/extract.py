"""One wide feature row per object from its de-duplicated light curve: the families put together.

Rows of many objects arrive in one pandas frame (a Spark ``applyInPandas`` group). They are packed
once into flat per-(object, band) curves (:mod:`lenga.features.curves`); every family then runs on
all curves at once, and the results are scattered into ``<feature>_<band>`` and multiband columns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from lenga.features import colour, nondetections, period, sign, stochastic, transient, variability
from lenga.features.config import FeatureConfig
from lenga.features.curves import Curves, pack
from lenga.photometry import difference_flux, magnitudes

#: Bump when any feature's definition or computation changes; stored with every row.
FEATURE_VERSION = "1.3.0"  # 1.3.0: positive_fraction (sign of the difference flux, lenga.features.sign)

KEY_COLUMNS = ["objectId", "survey", "feature_version"]
REQUIRED_DETECTION_COLUMNS = ["survey", "objectId", "mjd", "band"]
REQUIRED_NON_DETECTION_COLUMNS = ["survey", "objectId", "mjd", "band", "diffmaglim"]
#: Values of a string ``isdiffpos`` column meaning a positive difference (ZTF writes 't'/'f').
POSITIVE_DIFF = {"t", "true", "1"}


@dataclass(frozen=True)
class Prepared:
    """Packed curves of one batch. Curve arrays ``*_object``/``*_band`` index objects and bands."""

    config: FeatureConfig
    bands: tuple[str, ...]
    object_id: np.ndarray
    survey: np.ndarray
    n_det: np.ndarray  # (n_objects, n_bands)
    first_mjd: np.ndarray
    first_mag: np.ndarray
    brightest: np.ndarray
    mean_mag: np.ndarray
    n_signed: np.ndarray  # (n_objects, n_bands) detections with a finite signed difference flux
    n_positive: np.ndarray  # (n_objects, n_bands) of them with a positive one
    mag: Curves
    mag_object: np.ndarray
    mag_band: np.ndarray
    flux: Curves
    flux_object: np.ndarray
    flux_band: np.ndarray
    non_detections: pd.DataFrame | None

    @property
    def n_objects(self) -> int:
        return len(self.object_id)


def _band_columns(names: list[str], bands: tuple[str, ...]) -> list[str]:
    return [f"{name}_{band}" for name in names for band in bands]


def _band_families(config: FeatureConfig) -> list[tuple[list[str], list[str]]]:
    return [
        (variability.names(), variability.descriptions()),
        (stochastic.NAMES, stochastic.DESCRIPTIONS),
        (period.band_names(config.n_harmonics), period.band_descriptions(config.n_harmonics)),
        (transient.names(), transient.descriptions()),
        (nondetections.NAMES, nondetections.DESCRIPTIONS),
        (sign.NAMES, sign.DESCRIPTIONS),
    ]


def family_columns(config: FeatureConfig) -> dict[str, list[str]]:
    """Output columns of each entry of :data:`FAMILIES`, in that order (for reports and profiles)."""
    bands = config.output_bands
    return {
        "variability": _band_columns(variability.names(), bands),
        "stochastic": _band_columns(stochastic.NAMES, bands),
        "period": _band_columns(period.band_names(config.n_harmonics), bands) + list(period.MULTIBAND_NAMES),
        "transient": _band_columns(transient.names(), bands),
        "colour": colour.names(config.colour_pairs),
        "nondetections": _band_columns(nondetections.NAMES, bands),
        "sign": _band_columns(sign.NAMES, bands) + list(sign.MULTIBAND_NAMES),
    }


def feature_descriptions(config: FeatureConfig) -> dict[str, str]:
    """Every output column -> what it means, in output order."""
    bands = config.output_bands
    out = {"objectId": "survey object identifier (ZTF objectId, LSST diaObjectId as string)",
           "survey": "'ztf' or 'lsst'",
           "feature_version": "lenga.features.FEATURE_VERSION that computed the row"}
    out.update({f"n_det_{b}": f"de-duplicated detections in band {b}" for b in bands})
    for names, texts in _band_families(config):
        for name, text in zip(names, texts, strict=True):
            out.update({f"{name}_{b}": f"{text} (band {b})" for b in bands})
    out.update(zip(period.MULTIBAND_NAMES, period.MULTIBAND_DESCRIPTIONS, strict=True))
    out.update(zip(sign.MULTIBAND_NAMES, sign.MULTIBAND_DESCRIPTIONS, strict=True))
    out.update(zip(colour.names(config.colour_pairs), colour.descriptions(config.colour_pairs), strict=True))
    out.update({c: f"context passed through from the objects table: {c}" for c in config.context_columns})
    return out


def feature_schema(config: FeatureConfig) -> pa.Schema:
    """Arrow schema of :func:`extract_features`' output for ``config``."""
    descriptions = feature_descriptions(config)

    def kind(name: str) -> pa.DataType:
        if name in KEY_COLUMNS:
            return pa.string()
        return pa.int32() if name.startswith("n_det_") else pa.float64()

    return pa.schema([pa.field(name, kind(name), nullable=name not in KEY_COLUMNS,
                               metadata={"description": text}) for name, text in descriptions.items()])


def prepare(detections: pd.DataFrame, non_detections: pd.DataFrame | None, config: FeatureConfig) -> Prepared:
    """Validate, convert photometry, de-duplicate and pack the detections of many objects."""
    _require(detections, REQUIRED_DETECTION_COLUMNS, "detections")
    if non_detections is not None:
        _require(non_detections, REQUIRED_NON_DETECTION_COLUMNS, "non_detections")
    bands = config.output_bands
    # string work on the few distinct surveys, bands and ids only, not on every point
    survey_code, survey_names = pd.factorize(detections["survey"])
    survey_names = np.array([str(s).lower() for s in survey_names], dtype=object)
    if (survey_code < 0).any():
        raise ValueError("detections with a null survey")
    unknown = sorted(set(survey_names) - set(config.bands))
    if unknown:
        raise ValueError(f"detections from surveys {unknown} have no bands configured; configured: "
                         f"{sorted(config.bands)}")
    band_code, band_names = pd.factorize(detections["band"])
    band_index = np.array([bands.index(str(b)) if str(b) in bands else -1 for b in band_names] + [-1])
    allowed = np.array([[str(b) in config.bands[s] for b in band_names] + [False] for s in survey_names])
    mjd = detections["mjd"].to_numpy(dtype=float)
    keep = allowed[survey_code, band_code] & np.isfinite(mjd)  # code -1 (null band) hits the False column
    det = detections.loc[keep]
    survey_code = survey_code[keep]
    id_code, id_names = pd.factorize(det["objectId"])
    obj = pd.factorize(survey_code * (len(id_names) + 1) + id_code)[0]  # numbered by first appearance
    firsts = np.unique(obj, return_index=True)[1]
    n_objects = len(firsts)
    band = band_index[band_code[keep]].astype(np.int64)
    group = obj * len(bands) + band
    mjd = det["mjd"].to_numpy(dtype=float)
    nan = np.full(len(det), np.nan)

    def column(name: str) -> np.ndarray:
        return det[name].to_numpy(dtype=float) if name in det else nan

    mag, mag_err = magnitudes(column("magpsf"), column("sigmapsf"), column("psfFlux"), column("psfFluxErr"))
    flux, flux_err = difference_flux(column("psfFlux"), column("psfFluxErr"), column("magpsf"), column("sigmapsf"),
                                     _isdiffpos(det))
    # sort once (stable, so duplicates keep their order): the three packs below then skip sorting
    order = np.lexsort((mjd, group))
    group, mjd, mag, mag_err, flux, flux_err = (a[order] for a in (group, mjd, mag, mag_err, flux, flux_err))
    all_points, all_group = pack(group, mjd, nan, nan)
    n_det = _per_band(all_group, all_points.lengths, n_objects, len(bands), 0).astype(np.int32)
    first_mjd = _per_band(all_group, all_points.t[all_points.offsets[:-1]], n_objects, len(bands), np.nan)
    good_mag = np.isfinite(mag) & (mag_err > 0)
    mag_curves, mag_group = pack(group[good_mag], mjd[good_mag], mag[good_mag], mag_err[good_mag])
    first_mag = _per_band(mag_group, mag_curves.y[mag_curves.offsets[:-1]] if len(mag_curves) else [],
                          n_objects, len(bands), np.nan)
    brightest = _per_band(mag_group, mag_curves.reduce(np.minimum, mag_curves.y) if len(mag_curves) else [],
                          n_objects, len(bands), np.nan)
    mean_mag = _per_band(mag_group, mag_curves.reduce(np.add, mag_curves.y) / np.maximum(mag_curves.lengths, 1)
                         if len(mag_curves) else [], n_objects, len(bands), np.nan)
    good_flux = np.isfinite(flux) & (flux_err > 0)
    flux_curves, flux_group = pack(group[good_flux], mjd[good_flux], flux[good_flux], flux_err[good_flux])
    n_signed = _per_band(flux_group, flux_curves.lengths, n_objects, len(bands), 0)
    positive = (flux_curves.y > 0).astype(np.int64)
    n_positive = _per_band(flux_group, flux_curves.reduce(np.add, positive) if len(flux_curves) else [],
                           n_objects, len(bands), 0)
    eligible_mag = np.flatnonzero(mag_curves.lengths >= config.min_points_per_band)
    eligible_flux = np.flatnonzero(flux_curves.lengths >= config.min_points_per_band)
    return Prepared(
        config=config, bands=bands,
        object_id=np.asarray(id_names, dtype=object)[id_code[firsts]].astype(str).astype(object),
        survey=survey_names[survey_code[firsts]],
        n_det=n_det, first_mjd=first_mjd, first_mag=first_mag, brightest=brightest, mean_mag=mean_mag,
        n_signed=n_signed, n_positive=n_positive,
        mag=mag_curves.subset(eligible_mag), mag_object=mag_group[eligible_mag] // len(bands),
        mag_band=mag_group[eligible_mag] % len(bands),
        flux=flux_curves.subset(eligible_flux), flux_object=flux_group[eligible_flux] // len(bands),
        flux_band=flux_group[eligible_flux] % len(bands),
        non_detections=non_detections,
    )


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; it has {list(frame.columns)}")


def _isdiffpos(det: pd.DataFrame) -> np.ndarray:
    if "isdiffpos" not in det:
        return np.ones(len(det), dtype=bool)
    values = det["isdiffpos"]
    if values.dtype == object:
        return values.astype(str).str.lower().isin(POSITIVE_DIFF).to_numpy()
    return values.to_numpy(dtype=bool)


def _per_band(group: np.ndarray, values, n_objects: int, n_bands: int, fill) -> np.ndarray:
    out = np.full(n_objects * n_bands, fill, dtype=float)
    out[group] = values
    return out.reshape(n_objects, n_bands)


def _scatter(values: np.ndarray, obj: np.ndarray, band: np.ndarray, names: list[str], p: Prepared
             ) -> dict[str, np.ndarray]:
    cube = np.full((p.n_objects, len(p.bands), len(names)), np.nan)
    cube[obj, band] = values
    return _cube_columns(cube, names, p.bands)


def _cube_columns(cube: np.ndarray, names: list[str], bands: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {f"{name}_{band}": cube[:, j, k] for k, name in enumerate(names) for j, band in enumerate(bands)}


def _variability(p: Prepared) -> dict[str, np.ndarray]:
    values = variability.variability_features(p.mag, p.config.n_jobs)
    return _scatter(values, p.mag_object, p.mag_band, variability.names(), p)


def _stochastic(p: Prepared) -> dict[str, np.ndarray]:
    values = stochastic.stochastic_features(p.mag, tuple(p.config.mhps_timescales_days))
    return _scatter(values, p.mag_object, p.mag_band, stochastic.NAMES, p)


def _period(p: Prepared) -> dict[str, np.ndarray]:
    c = p.config
    multiband, per_band = period.period_features(p.mag, p.mag_object, p.mag_band, p.n_objects, p.bands,
                                                 c.period_min_days, c.period_oversampling, c.n_harmonics, c.n_jobs)
    out = _scatter(per_band, p.mag_object, p.mag_band, period.band_names(c.n_harmonics), p)
    out.update({name: multiband[:, k] for k, name in enumerate(period.MULTIBAND_NAMES)})
    return out


def _transient(p: Prepared) -> dict[str, np.ndarray]:
    c = p.config
    values = transient.supernova_fit(p.flux, c.sn_lmsder_niter, c.sn_retry_chi2, c.n_jobs)
    return _scatter(values, p.flux_object, p.flux_band, transient.names(), p)


def _colour(p: Prepared) -> dict[str, np.ndarray]:
    values = colour.colours(p.brightest, p.mean_mag, p.bands, p.config.colour_pairs)
    return {name: values[:, k] for k, name in enumerate(colour.names(p.config.colour_pairs))}


def _nondetections(p: Prepared) -> dict[str, np.ndarray]:
    nd = p.non_detections
    if nd is None:  # unknown, unlike an empty frame (known to hold no non-detection: zero counts)
        return {name: np.full(p.n_objects, np.nan) for name in _band_columns(nondetections.NAMES, p.bands)}
    if nd.empty:
        obj = band = np.zeros(0, dtype=np.int64)
        mjd = lim = np.zeros(0)
    else:
        index = pd.MultiIndex.from_arrays([p.survey, p.object_id])
        obj = index.get_indexer(pd.MultiIndex.from_arrays([nd["survey"].astype(str).str.lower(),
                                                           nd["objectId"].astype(str)]))
        band = pd.Categorical(nd["band"].astype(str), categories=list(p.bands)).codes.astype(np.int64)
        mjd, lim = nd["mjd"].to_numpy(dtype=float), nd["diffmaglim"].to_numpy(dtype=float)
    cube = nondetections.nondetection_features(obj, band, mjd, lim, p.first_mjd, p.first_mag, p.brightest)
    return _cube_columns(cube, nondetections.NAMES, p.bands)


def _sign(p: Prepared) -> dict[str, np.ndarray]:
    per_band, all_bands = sign.positive_fraction(p.n_positive, p.n_signed)
    out = _cube_columns(per_band[:, :, None], sign.NAMES, p.bands)
    out.update({name: all_bands for name in sign.MULTIBAND_NAMES})
    return out


#: Feature families in output order; each maps prepared curves to named columns (one value per object).
FAMILIES: dict[str, Callable[[Prepared], dict[str, np.ndarray]]] = {
    "variability": _variability,
    "stochastic": _stochastic,
    "period": _period,
    "transient": _transient,
    "colour": _colour,
    "nondetections": _nondetections,
    "sign": _sign,
}


def extract_features(detections: pd.DataFrame, non_detections: pd.DataFrame | None, config: FeatureConfig,
                     context: pd.DataFrame | None = None) -> pd.DataFrame:
    """Features of every object with at least ``min_points_per_band`` detections in some band.

    ``detections``: the ``detections`` table rows of many objects (``survey, objectId, mjd, band``
    and the photometry ``magpsf, sigmapsf`` and/or ``psfFlux, psfFluxErr`` (+ ``isdiffpos``)).
    ``non_detections``: their ``non_detections`` rows, or None. ``context``: optional per-object
    frame with ``objectId`` (and optionally ``survey``) plus ``config.context_columns``.
    Returns one row per object with the columns of :func:`feature_schema` (none for no detections:
    a block of curves may hold only non-detections, or none long enough).
    """
    if detections.empty:
        return feature_schema(config).empty_table().to_pandas()
    prepared = prepare(detections, non_detections, config)
    columns: dict[str, np.ndarray] = {}
    for family in FAMILIES.values():
        columns.update(family(prepared))
    return _assemble(prepared, columns, context)


def _assemble(p: Prepared, columns: dict[str, np.ndarray], context: pd.DataFrame | None) -> pd.DataFrame:
    schema = feature_schema(p.config)
    columns = dict(columns)
    columns.update({"objectId": p.object_id, "survey": p.survey,
                    "feature_version": np.full(p.n_objects, FEATURE_VERSION, dtype=object)})
    columns.update({f"n_det_{b}": p.n_det[:, j] for j, b in enumerate(p.bands)})
    columns.update(_context(p, context))
    frame = pd.DataFrame({name: columns[name] for name in schema.names})
    enough = (p.n_det >= p.config.min_points_per_band).any(axis=1)
    frame = frame.loc[enough].reset_index(drop=True)
    return frame.astype({f.name: "int32" for f in schema if pa.types.is_int32(f.type)})


def _context(p: Prepared, context: pd.DataFrame | None) -> dict[str, np.ndarray]:
    wanted = p.config.context_columns
    if context is None:
        return {c: np.full(p.n_objects, np.nan) for c in wanted}
    _require(context, ["objectId"], "context")
    keys = ["survey", "objectId"] if "survey" in context else ["objectId"]
    ctx = context.assign(objectId=context["objectId"].astype(str))
    if "survey" in ctx:
        ctx = ctx.assign(survey=ctx["survey"].astype(str).str.lower())
    ctx = ctx.drop_duplicates(keys, keep="last").set_index(keys)
    here = pd.MultiIndex.from_arrays([p.survey, p.object_id]) if len(keys) == 2 else pd.Index(p.object_id)
    rows = ctx.reindex(here)
    return {c: rows[c].to_numpy(dtype=float) if c in rows else np.full(p.n_objects, np.nan) for c in wanted}


def profile(detections: pd.DataFrame, non_detections: pd.DataFrame | None, config: FeatureConfig
            ) -> dict[str, dict[str, float]]:
    """Objects (light curves) per second of each stage, timed separately, by CPU and by wall clock.

    Stages: ``prepare`` (validation, photometry, packing), every entry of ``FAMILIES``, ``assemble``
    (the output frame) and ``total``. Returns stage -> {"cpu": objects per CPU second of this
    process, "wall": objects per wall-clock second}; on a shared machine the CPU rate is the one
    that does not depend on the neighbours' load.
    """
    seconds: dict[str, tuple[float, float]] = {}

    def timed(name: str, func: Callable[[], Any]) -> Any:
        cpu, wall = time.process_time(), time.perf_counter()
        result = func()
        seconds[name] = (time.process_time() - cpu, time.perf_counter() - wall)
        return result

    prepared = timed("prepare", lambda: prepare(detections, non_detections, config))
    columns: dict[str, np.ndarray] = {}
    for name, family in FAMILIES.items():
        columns.update(timed(name, lambda family=family: family(prepared)))
    timed("assemble", lambda: _assemble(prepared, columns, None))
    seconds["total"] = (sum(cpu for cpu, _ in seconds.values()), sum(wall for _, wall in seconds.values()))
    return {name: {"cpu": prepared.n_objects / max(cpu, 1e-9), "wall": prepared.n_objects / max(wall, 1e-9)}
            for name, (cpu, wall) in seconds.items()}
