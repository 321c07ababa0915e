"""ZTF alert records (schemas 3.x and 4.02, https://zwickytransientfacility.github.io/ztf-avro-alert/)
to lenga rows, on whole Arrow columns (:func:`extract_batch`).

* the alert's ``candidate`` -> the alert row and one detection (``from_history`` false);
* ``prv_candidates`` with a ``candid`` -> history detections; without one -> upper limits (ZTF
  writes a non-detection as a prv_candidate with null candid and only jd/fid/diffmaglim set);
* ``fp_hists`` (4.02) -> forced photometry, ``forcediffimflux`` (DN) converted to nJy with the
  image zero point ``magzpsci`` (:func:`lenga.photometry.zeropoint_flux_to_njy`). Schema 3.5 of
  ZTF's forced-photometry development branch carried these fp_hist records inside
  ``prv_candidates`` (no ``candid`` field): a ``prv_candidates`` item type with
  ``forcediffimflux`` is recognised as such, and its points are treated as forced photometry too.

History points without a plausible time (lenga.survey.MJD_RANGE), a known filter or valid
photometry are dropped and counted
(``n_dropped_points``): ZTF nulls several fields of other programs' private points.
ZTF sentinels (``ssdistnr`` -999, ``ssnamenr`` 'null') are kept as ZTF wrote them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lenga import schema
from lenga.curves.correction import corrected_magnitudes, is_corrected, is_stellar
from lenga.night import JD_MINUS_MJD, PALOMAR_LONGITUDE_DEG
from lenga.photometry import ISDIFFPOS, zeropoint_flux_to_njy
from lenga.survey import Extracted, ExtractedBatch, plausible_mjds, position_and_time_reasons, rows_table

SURVEY = "ztf"
SITE_LONGITUDE_DEG = PALOMAR_LONGITUDE_DEG
#: Full name of the writer schema of every ZTF alert version.
SCHEMA_NAME = "ztf.alert"
#: ZTF filter ids (``fid``) to band names.
FID_TO_BAND = {1: "g", 2: "r", 3: "i"}
#: fp_hists value meaning "no measurement" (ZTF forced-photometry docs: -99999 when procstatus != 0).
FORCED_FLUX_MISSING = -99999.0

#: Field that marks a forced-photometry (fp_hist) record.
FORCED_FLUX_FIELD = "forcediffimflux"

#: Candidate fields copied to the alert row unchanged (schema.ALERTS documents them).
CONTEXT_COLUMNS = (*schema.ZTF_CONTEXT_COLUMNS, "rb", "diffmaglim")
#: Candidate fields copied to every detection row unchanged.
DETECTION_COLUMNS = ("candid", "jd", "fid", "ra", "dec", "magpsf", "sigmapsf", "diffmaglim", "rb", "drb", "programid",
                     "magnr", "sigmagnr", "distnr")
#: Candidate fields that decide whether a detection is of a star (lenga.curves.correction.is_stellar);
#: prv_candidates have no PS1 fields (null).
STELLAR_COLUMNS = ("distnr", "distpsnr1", "sgscore1", "chinr", "sharpnr")

_FIDS = pa.array(list(FID_TO_BAND), pa.int32())
_BANDS = pa.array(list(FID_TO_BAND.values()), pa.string())
_SIGN_CODES = pa.array(list(ISDIFFPOS), pa.string())
_SIGNS = pa.array(list(ISDIFFPOS.values()), pa.bool_())


class _Points(NamedTuple):
    """Records of a list<struct> column flattened over the batch, with each point's alert index."""

    values: pa.Array
    owner: np.ndarray


def _field(struct: pa.Array, name: str) -> pa.Array:
    """Field ``name`` of a struct array, null where the struct is null; all null when this schema
    version has no such field (``record.get(name)``)."""
    if not pa.types.is_struct(struct.type) or struct.type.get_field_index(name) < 0:
        return pa.nulls(len(struct))
    return pc.struct_field(struct, name)


def _floats(values: pa.Array) -> np.ndarray:
    return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)


def _finite(values: pa.Array) -> np.ndarray:
    return pc.fill_null(pc.is_finite(pc.cast(values, pa.float64())), False).to_numpy(zero_copy_only=False)


def _plausible_jd(jd: pa.Array) -> np.ndarray:
    """A time inside lenga.survey.MJD_RANGE: a huge or negative jd would make a nonsense night."""
    return plausible_mjds(_floats(jd) - JD_MINUS_MJD)


def _known(values: pa.Array) -> np.ndarray:
    return values.is_valid().to_numpy(zero_copy_only=False)


def _band(fid: pa.Array) -> pa.Array:
    """Band of each fid (FID_TO_BAND), null for an unknown filter."""
    return pc.take(_BANDS, pc.index_in(pc.cast(fid, pa.int32()), value_set=_FIDS))


def _sign(isdiffpos: pa.Array) -> pa.Array:
    """Sign of the difference flux (lenga.photometry.ISDIFFPOS), null for any other value."""
    return pc.take(_SIGNS, pc.index_in(pc.cast(isdiffpos, pa.string()), value_set=_SIGN_CODES))


def _points(lists: pa.Array) -> _Points:
    if not pa.types.is_list(lists.type):  # a field this schema version does not have
        return _Points(pa.nulls(0), np.zeros(0, np.int64))
    return _Points(pc.list_flatten(lists), pc.list_parent_indices(lists).to_numpy(zero_copy_only=False))


def _count(owner: np.ndarray, n_records: int) -> np.ndarray:
    return np.bincount(owner, minlength=n_records)


def _history_columns(records: pa.StructArray, points: _Points) -> dict[str, pa.Array]:
    """Columns every history row takes from its alert, and the point's own time and filter."""
    index = pa.array(points.owner, pa.int64())
    fid = _field(points.values, "fid")
    return {"survey": pa.repeat(pa.scalar(SURVEY), len(index)), "objectId": pc.take(records.field("objectId"), index),
            "alert_candid": pc.take(records.field("candid"), index), "jd": _field(points.values, "jd"), "fid": fid,
            "band": _band(fid)}


def _corrections(columns: dict[str, pa.Array], points: pa.Array) -> dict[str, pa.Array]:
    """ALeRCE's magnitude correction of each detection (lenga.curves.correction), from its own
    fields (``points``: its candidate or prv_candidate): ``corrected``, the corrected magnitude and
    errors (null unless corrected) and ``stellar``."""
    corrected = is_corrected(_floats(columns["distnr"]))
    sign = np.where(pc.fill_null(columns["isdiffpos"], True).to_numpy(zero_copy_only=False), 1.0, -1.0)
    magnitudes = corrected_magnitudes(*(_floats(columns[name]) for name in ("magpsf", "sigmapsf")), sign,
                                      *(_floats(columns[name]) for name in ("magnr", "sigmagnr")), corrected)
    return {"corrected": pa.array(corrected),
            "stellar": pa.array(is_stellar(*(_floats(_field(points, name)) for name in STELLAR_COLUMNS))),
            **{name: pa.array(values, mask=np.isnan(values)) for name, values in
               zip(("magpsf_corr", "sigmapsf_corr", "sigmapsf_corr_ext"), magnitudes, strict=True)}}


def _detections(records: pa.StructArray, points: _Points, from_history: bool) -> tuple[pa.Table, np.ndarray]:
    """Detection rows of candidates or prv_candidates, corrected with their reference source, and
    which of them are usable: known filter and isdiffpos, finite jd and magpsf."""
    columns = {name: _field(points.values, name) for name in DETECTION_COLUMNS}
    columns.update(_history_columns(records, points), isdiffpos=_sign(_field(points.values, "isdiffpos")),
                   from_history=pa.repeat(pa.scalar(from_history), len(points.owner)))
    columns.update(_corrections(columns, points.values))
    usable = (_known(columns["isdiffpos"]) & _known(columns["band"]) & _plausible_jd(columns["jd"])
              & _finite(columns["magpsf"]))
    return rows_table(columns, schema.DETECTIONS, len(points.owner)), usable


def _upper_limits(records: pa.StructArray, points: _Points) -> tuple[pa.Table, np.ndarray]:
    """Upper-limit rows of prv_candidates without candid; usable with a known filter, finite jd
    and diffmaglim."""
    columns = _history_columns(records, points)
    columns.update(kind=pa.repeat(pa.scalar(schema.UPPER_LIMIT), len(points.owner)),
                   diffmaglim=_field(points.values, "diffmaglim"))
    usable = _known(columns["band"]) & _plausible_jd(columns["jd"]) & _finite(columns["diffmaglim"])
    return rows_table(columns, schema.NON_DETECTIONS, len(points.owner)), usable


def _forced(records: pa.StructArray, points: _Points) -> tuple[pa.Table, np.ndarray]:
    """Forced-photometry rows with fluxes in nJy; usable with a known filter, finite jd, a measured
    flux (not FORCED_FLUX_MISSING), its error and the zero point."""
    columns = _history_columns(records, points)
    flux, flux_err, zeropoint = (_field(points.values, name) for name in
                                 (FORCED_FLUX_FIELD, "forcediffimfluxunc", "magzpsci"))
    flux_values = _floats(flux)
    zeropoint_values = _floats(zeropoint)
    columns.update(
        kind=pa.repeat(pa.scalar(schema.FORCED), len(points.owner)),
        diffmaglim=_field(points.values, "diffmaglim"),
        psfFlux=pa.array(zeropoint_flux_to_njy(flux_values, zeropoint_values)),
        psfFluxErr=pa.array(zeropoint_flux_to_njy(
            _floats(flux_err), zeropoint_values)),
    )
    usable = (_known(columns["band"]) & _plausible_jd(columns["jd"]) & _finite(flux)
              & (flux_values != FORCED_FLUX_MISSING)
              & _finite(flux_err) & _finite(zeropoint))
    return rows_table(columns, schema.NON_DETECTIONS, len(points.owner)), usable


def _grouped(parts: list[tuple[pa.Table, np.ndarray, np.ndarray]], keep: np.ndarray, schema_: pa.Schema
             ) -> tuple[pa.Table, np.ndarray]:
    """The usable rows of (rows, usable, owner) parts whose alert is kept, grouped by alert; within
    an alert, parts keep their order (own candidate first, prv_candidates, then fp_hists)."""
    tables, owners = [], []
    for table, usable, owner in parts:
        chosen = usable & keep[owner]
        tables.append(table.filter(pa.array(chosen)))
        owners.append(owner[chosen])
    owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
    order = np.argsort(owner, kind="stable")
    table = pa.concat_tables(tables) if tables else schema_.empty_table()
    return table.take(pa.array(order)), owner[order]


def _without_rejected(alerts: pa.Table, keep: np.ndarray) -> pa.Table:
    """Rejected alerts keep only their survey, like every quarantined message."""
    if keep.all():
        return alerts
    mask = pa.array(keep)
    return pa.table([column if field.name == "survey" else pc.if_else(mask, column, pa.scalar(None, field.type))
                     for field, column in zip(alerts.schema, alerts.columns, strict=True)], schema=alerts.schema)


def extract_batch(records: pa.RecordBatch, schemavsn: str | None = None) -> ExtractedBatch:
    """Map a batch of ZTF alert records (top-level fields as columns) to lenga rows, column-wise.

    An alert whose own candidate cannot be stored (NaN or out-of-range position or time, unknown
    filter, invalid isdiffpos or magnitude) gets a quarantine reason instead of rows. ``schemavsn``
    is used only when the records have no ``schemavsn`` field.
    """
    n = records.num_rows
    alerts = pa.StructArray.from_arrays(records.columns, fields=list(records.schema))
    candidate = alerts.field("candidate")
    own, own_usable = _detections(alerts, _Points(candidate, np.arange(n)), from_history=False)
    jd = pc.cast(_field(candidate, "jd"), pa.float64())
    reasons = position_and_time_reasons(_field(candidate, "ra"), _field(candidate, "dec"),
                                        pc.subtract(jd, JD_MINUS_MJD))
    for i in np.flatnonzero(~own_usable):
        if reasons[i] is None:
            fid, isdiffpos, magpsf = (_field(candidate, name)[i].as_py() for name in ("fid", "isdiffpos", "magpsf"))
            reasons[i] = f"invalid ZTF candidate photometry: fid={fid}, isdiffpos={isdiffpos!r}, magpsf={magpsf}"
    keep = np.array([reason is None for reason in reasons], dtype=bool)

    prv, forced_sources = _points(_field(alerts, "prv_candidates")), [_points(_field(alerts, "fp_hists"))]
    if pa.types.is_struct(prv.values.type) and prv.values.type.get_field_index(FORCED_FLUX_FIELD) >= 0:
        forced_sources.append(prv)  # ZTF 3.5: fp_hist records in prv_candidates
        prv = _Points(prv.values.slice(0, 0), prv.owner[:0])
    has_candid = _known(_field(prv.values, "candid"))
    history, history_usable = _detections(alerts, prv, from_history=True)
    limits, limits_usable = _upper_limits(alerts, prv)
    history_usable &= has_candid
    limits_usable &= ~has_candid
    forced = [(*_forced(alerts, source), source.owner) for source in forced_sources]

    n_prv_detections = _count(prv.owner[has_candid], n)
    n_forced = sum(_count(source.owner, n) for source in forced_sources)
    n_kept = (_count(prv.owner[history_usable], n) + _count(prv.owner[limits_usable], n)
              + sum(_count(owner[usable], n) for _, usable, owner in forced))
    columns = {name: _field(candidate, name) for name in CONTEXT_COLUMNS}
    columns.update(
        {name: _field(_field(alerts, name), "stampData") for name in schema.CUTOUT_COLUMNS},
        survey=pa.repeat(pa.scalar(SURVEY), n),
        objectId=alerts.field("objectId"),
        candid=alerts.field("candid"),
        alertId=alerts.field("candid"),
        schemavsn=(alerts.field("schemavsn") if "schemavsn" in records.schema.names
                   else pa.repeat(pa.scalar(schemavsn, pa.string()), n)),
        jd=jd,
        band=own["band"],
        isdiffpos=own["isdiffpos"],
        **{name: _field(candidate, name) for name in ("fid", "ra", "dec", "magpsf", "sigmapsf")},
        n_prv_detections=n_prv_detections,
        n_prv_non_detections=_count(prv.owner, n) - n_prv_detections,
        n_forced=n_forced,
        n_dropped_points=_count(prv.owner, n) + n_forced - n_kept,
    )
    detections, detection_owner = _grouped(
        [(own, own_usable, np.arange(n)), (history, history_usable, prv.owner)], keep, schema.DETECTIONS)
    non_detections, non_detection_owner = _grouped(
        [(limits, limits_usable, prv.owner), *forced], keep, schema.NON_DETECTIONS)
    return ExtractedBatch(_without_rejected(rows_table(columns, schema.ALERTS, n), keep), reasons,
                          detections, detection_owner, non_detections, non_detection_owner)


def extract(record: dict, schemavsn: str | None = None) -> Extracted:
    """Map one ZTF alert record as fastavro returns it (the stamp classifier's simulated training
    sets) with :func:`extract_batch`; raises InvalidAlert where that gives a quarantine reason."""
    return extract_batch(pa.RecordBatch.from_pylist([record]), schemavsn).single()
