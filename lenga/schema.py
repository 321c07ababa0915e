"""lenga's common tables: one schema for ZTF and LSST alerts, documented column by column.

Column names follow the survey schemas (ZTF Avro alert schema, Rubin ``lsst.vX_Y.alert``); where
the surveys disagree, the mapping is defined here once:

* ``objectId`` (string) is the survey object: ZTF ``objectId``; LSST the decimal string of
  ``diaObjectId``, or ``sso:<ssObjectId>`` for a solar-system alert without a diaObject.
* ``candid`` (int64) is the detection: ZTF ``candid``; LSST ``diaSource.diaSourceId`` (the id
  that the same detection keeps in later alerts' ``prvDiaSources``, so detections de-duplicate).
  ``alertId`` is the packet id: ZTF candid, LSST v7 ``alertId``, v8+ top-level ``diaSourceId``
  (equal to ``diaSource.diaSourceId`` in real packets, not in alert_packet's synthetic samples).
* ``band`` is the cross-survey filter (ZTF g/r/i, LSST u/g/r/i/z/y). ``fid`` is ZTF's own filter
  id (1=g, 2=r, 3=i) and is null for LSST: LSST has no fid, and numbering u..y would give the same
  integer two meanings.
* Every detection carries both magnitudes (``magpsf``/``sigmapsf``, AB, of |difference flux|, with
  the sign in ``isdiffpos``) and signed fluxes (``psfFlux``/``psfFluxErr``, nJy); whichever the
  survey did not send is derived with :mod:`lenga.photometry`.
* ZTF ``rb``/``drb`` and LSST ``reliability`` stay separate columns: they are different models on
  different scales, and one merged column would let a cut silently mean two things.
* Times: ``mjd`` is the survey's own clock (ZTF ``jd`` - 2400000.5, UTC; LSST ``midpointMjdTai``,
  TAI, 37 s ahead of UTC); ``jd`` = ``mjd`` + 2400000.5.
* ``night`` (int32 yyyymmdd, :mod:`lenga.night`) partitions every table.

Each field has a ``description`` in its metadata; :func:`column_descriptions` returns them.
"""

from __future__ import annotations

import pyarrow as pa

PARTITION_COLUMN = "night"

_DESCRIPTION = b"description"


def described_field(name: str, type_: pa.DataType, description: str, nullable: bool = True) -> pa.Field:
    """An Arrow field carrying its description as field metadata: every lenga table documents its
    columns this way, and the Delta schema keeps it for readers (notebooks, duckdb)."""
    return pa.field(name, type_, nullable=nullable, metadata={_DESCRIPTION: description.encode()})


_f = described_field


_SURVEY = _f("survey", pa.string(), "'ztf' or 'lsst'")
_OBJECT_ID = _f(
    "objectId", pa.string(), "ZTF objectId; LSST decimal diaObjectId, or 'sso:<ssObjectId>' without one"
)
_DIA_OBJECT_ID = _f("diaObjectId", pa.int64(), "LSST diaObjectId (null for ZTF and for solar-system alerts)")
_CANDID = _f("candid", pa.int64(), "detection id: ZTF candid, LSST diaSource.diaSourceId")
_NIGHT = _f(PARTITION_COLUMN, pa.int32(), "observing night yyyymmdd at the site, evening date (lenga.night)")
_MJD = _f("mjd", pa.float64(), "MJD of the exposure midpoint: ZTF jd - 2400000.5 (UTC), LSST midpointMjdTai")
_JD = _f("jd", pa.float64(), "Julian date, mjd + 2400000.5")
_BAND = _f("band", pa.string(), "filter: ZTF g/r/i, LSST u/g/r/i/z/y")
_FID = _f("fid", pa.int32(), "ZTF filter id 1=g 2=r 3=i; null for LSST")
_RA = _f("ra", pa.float64(), "right ascension, degrees (ICRS)")
_DEC = _f("dec", pa.float64(), "declination, degrees (ICRS)")
_MAGPSF = _f("magpsf", pa.float64(), "AB magnitude of |PSF difference flux| (LSST: from psfFlux)")
_SIGMAPSF = _f("sigmapsf", pa.float64(), "1-sigma error of magpsf (LSST: 1.0857 psfFluxErr/|psfFlux|)")
_PSF_FLUX = _f("psfFlux", pa.float64(), "signed PSF difference flux, nJy (ZTF: from magpsf and isdiffpos)")
_PSF_FLUX_ERR = _f("psfFluxErr", pa.float64(), "1-sigma error of psfFlux, nJy")
_ISDIFFPOS = _f("isdiffpos", pa.bool_(), "difference flux positive (science brighter than template)")
_DIFFMAGLIM = _f("diffmaglim", pa.float64(), "5-sigma limiting AB magnitude of the difference image")
_RB = _f("rb", pa.float32(), "ZTF RealBogus score (0 bogus .. 1 real); null for LSST")
_DRB = _f("drb", pa.float32(), "ZTF deep-learning RealBogus score; null for LSST")
_RELIABILITY = _f("reliability", pa.float32(), "LSST diaSource reliability score; null for ZTF")
_PROGRAMID = _f("programid", pa.int32(), "ZTF program id (1 public, 2 partnership, 3 Caltech)")
_ALERT_CANDID = _f("alert_candid", pa.int64(), "candid of the alert packet that carried this row")

_PROVENANCE = [
    _f("topic", pa.string(), "Kafka topic"),
    _f("partition", pa.int32(), "Kafka partition"),
    _f("offset", pa.int64(), "Kafka offset"),
    _f("kafka_timestamp", pa.timestamp("us", tz="UTC"), "Kafka message timestamp"),
    _f("ingest_batch_id", pa.int64(), "streaming micro-batch that ingested the message"),
]

_ZTF_CONTEXT = [
    _DRB,
    _f("sgscore1", pa.float32(), "ZTF star/galaxy score of the closest PS1 source (1 = star)"),
    _f("distpsnr1", pa.float32(), "ZTF distance to the closest PS1 source, arcsec"),
    _f("srmag1", pa.float32(), "ZTF PS1 r magnitude of the closest PS1 source"),
    _f("sgmag1", pa.float32(), "ZTF PS1 g magnitude of the closest PS1 source"),
    _f("objectidps1", pa.int64(), "ZTF PS1 objid of the closest PS1 source"),
    _f("ssdistnr", pa.float32(), "ZTF distance to the nearest known solar-system object, arcsec (-999: none)"),
    _f("ssnamenr", pa.string(), "ZTF name of the nearest known solar-system object ('null': none)"),
    _f("ssmagnr", pa.float32(), "ZTF V magnitude of the nearest known solar-system object (-999: none)"),
    _f("ndethist", pa.int32(), "ZTF number of spatially coincident detections (3-sigma) in history"),
    _f("ncovhist", pa.int32(), "ZTF number of times the position was covered by ZTF"),
    _f("jdstarthist", pa.float64(), "ZTF jd of the first detection in history"),
    _f("fwhm", pa.float32(), "ZTF full width at half maximum (SExtractor), pixels"),
    _f("elong", pa.float32(), "ZTF aimage / bimage"),
    _f("nbad", pa.int32(), "ZTF number of bad pixels in a 5x5 box"),
    _f("chinr", pa.float32(), "ZTF DAOPhot chi of the nearest reference-image source"),
    _f("sharpnr", pa.float32(), "ZTF DAOPhot sharp of the nearest reference-image source"),
    _f("classtar", pa.float32(), "ZTF SExtractor star/galaxy score"),
    _PROGRAMID,
    _f("field", pa.int32(), "ZTF field id"),
    _f("rcid", pa.int32(), "ZTF readout channel id (0..63)"),
]

_LSST_CONTEXT = [
    _RELIABILITY,
    _f("snr", pa.float32(), "LSST diaSource signal-to-noise ratio"),
    _f("extendedness", pa.float32(), "LSST diaSource extendedness (0 point-like .. 1 extended)"),
    _f("isDipole", pa.bool_(), "LSST diaSource flagged as a dipole (v8+)"),
    _f("ssObjectId", pa.int64(), "LSST solar-system object id associated with the diaSource"),
    _f("visit", pa.int64(), "LSST visit id"),
    _f("detector", pa.int32(), "LSST detector (CCD) id"),
    _f("pixelFlags", pa.bool_(), "LSST: any pixel flag set in the diaSource footprint"),
]

#: Survey context columns of the alerts table, named as in each survey's schema.
ZTF_CONTEXT_COLUMNS = tuple(field.name for field in _ZTF_CONTEXT)
LSST_CONTEXT_COLUMNS = tuple(field.name for field in _LSST_CONTEXT)

#: Who was detected: shared by alerts and detections.
_IDENTITY = [_SURVEY, _OBJECT_ID, _DIA_OBJECT_ID, _CANDID]
#: When, where and how bright: shared by alerts and detections.
_OBSERVATION = [_MJD, _JD, _NIGHT, _BAND, _FID, _RA, _DEC, _MAGPSF, _SIGMAPSF, _PSF_FLUX, _PSF_FLUX_ERR,
                _ISDIFFPOS, _DIFFMAGLIM]

#: The alerts columns holding image stamps: most of an alert's bytes.
CUTOUT_COLUMNS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")

#: One row per valid alert.
ALERTS = pa.schema(
    [
        *_IDENTITY,
        _f("alertId", pa.int64(), "alert id: ZTF candid; LSST alertId (v7) or diaSourceId (v8+)"),
        _f("schemavsn", pa.string(), "alert schema version, e.g. ZTF '4.02', LSST '9.0'"),
        *_OBSERVATION,
        _f("n_prv_detections", pa.int32(), "history detections in the packet (before sanitising)"),
        _f("n_prv_non_detections", pa.int32(), "history upper limits in the packet (before sanitising)"),
        _f("n_forced", pa.int32(), "forced-photometry points in the packet (before sanitising)"),
        _f("n_dropped_points", pa.int32(), "history/forced points dropped as invalid (NaN/missing time, band, photometry)"),
        _RB,
        *_ZTF_CONTEXT,
        *_LSST_CONTEXT,
        _f("cutoutScience", pa.binary(), "science stamp, original bytes (ZTF gzipped FITS, LSST FITS)"),
        _f("cutoutTemplate", pa.binary(), "template stamp, original bytes"),
        _f("cutoutDifference", pa.binary(), "difference stamp, original bytes"),
        *_PROVENANCE,
    ]
)

#: ZTF's nearest source in the reference image, which ALeRCE's magnitude correction adds back.
_REFERENCE_SOURCE = [
    _f("magnr", pa.float64(), "ZTF magnitude of the nearest source in the reference image PSF catalog; null for LSST"),
    _f("sigmagnr", pa.float64(), "ZTF 1-sigma error of magnr; null for LSST"),
    _f("distnr", pa.float64(), "ZTF distance to the nearest source in the reference image PSF catalog, as ZTF "
       "writes it (its schema says pixels, of 1.01 arcsec; ALeRCE compares it with 1.4 arcsec as is); null for LSST"),
]

#: ALeRCE's magnitude correction of ZTF detections (lenga.curves.correction), computed at ingest
#: from the detection's own fields; null for LSST.
_CORRECTION = [
    _f("corrected", pa.bool_(), "ZTF: distnr < 1.4, the detection is on a reference source and has corrected "
       "magnitudes (ALeRCE); null for LSST"),
    _f("magpsf_corr", pa.float64(), "apparent AB magnitude -2.5 log10(10^(-0.4 magnr) +- 10^(-0.4 magpsf)), sign "
       "of isdiffpos; 100 when the total flux is <= 0 (ALeRCE); null unless corrected"),
    _f("sigmapsf_corr", pa.float64(), "1-sigma error of magpsf_corr for a point source, reference error "
       "subtracted; 100 when not measurable (ALeRCE); null unless corrected"),
    _f("sigmapsf_corr_ext", pa.float64(), "1-sigma error of magpsf_corr for an extended source; 100 when not "
       "measurable (ALeRCE); null unless corrected"),
    _f("stellar", pa.bool_(), "ZTF: likely a star (ALeRCE): corrected, and a PS1 star within 1.4 arcsec "
       "(sgscore1 > 0.4) or no PS1 source there and a point-like reference source (chinr < 2, "
       "-0.13 < sharpnr < 0.1; history detections have no PS1 fields); null for LSST"),
]

#: One row per detection: the alert's own candidate/diaSource and every valid history detection.
DETECTIONS = pa.schema(
    [
        *_IDENTITY,
        *_OBSERVATION,
        _RB,
        _DRB,
        _RELIABILITY,
        _PROGRAMID,
        _f("from_history", pa.bool_(), "false for the alert's own detection, true for prv_candidates/prvDiaSources"),
        _ALERT_CANDID,
        *_REFERENCE_SOURCE,
        *_CORRECTION,
    ]
)

#: Kinds of non-detection rows.
UPPER_LIMIT = "upper_limit"
FORCED = "forced"

#: One row per upper limit or forced-photometry point.
NON_DETECTIONS = pa.schema(
    [
        _SURVEY,
        _OBJECT_ID,
        _DIA_OBJECT_ID,
        _f("kind", pa.string(), f"'{UPPER_LIMIT}' (ZTF prv_candidates without candid, LSST v7 "
           f"prvDiaNondetectionLimits) or '{FORCED}' (ZTF fp_hists, LSST prvDiaForcedSources)"),
        _MJD,
        _JD,
        _NIGHT,
        _BAND,
        _FID,
        _DIFFMAGLIM,
        _f("psfFlux", pa.float64(), "forced PSF difference flux, nJy (null for upper limits)"),
        _f("psfFluxErr", pa.float64(), "1-sigma flux error, nJy (upper limits: 1-sigma noise, diffmaglim / 5)"),
        _f("magpsf", pa.float64(), "AB magnitude of a positive forced flux (null otherwise)"),
        _f("sigmapsf", pa.float64(), "1-sigma error of magpsf"),
        _ALERT_CANDID,
    ]
)

#: One row per message that could not be decoded into a valid alert.
QUARANTINE = pa.schema(
    [
        _f("reason", pa.string(), "why the message was rejected, e.g. 'truncated Avro: ...'"),
        _f("stage", pa.string(), "pipeline step that rejected it ('decode')"),
        _f("survey", pa.string(), "survey when it could be recognised, else null"),
        _f("raw", pa.binary(), "the original Kafka value"),
        _f("key", pa.binary(), "the original Kafka key"),
        *_PROVENANCE[:4],
        _f(PARTITION_COLUMN, pa.int32(), "night of the Kafka timestamp at longitude 0 (date of the preceding noon UTC)"),
        _PROVENANCE[4],
    ]
)

#: Output of :func:`lenga.decode.decode_record_batch`: one row per Kafka message. Valid alerts have
#: every ALERTS column plus their detections/non_detections; a rejected message has a
#: ``quarantine_reason``, its ``raw`` bytes, provenance and ``night`` from the Kafka timestamp.
DECODED = pa.schema(
    [
        *ALERTS,
        _f("key", pa.binary(), "the original Kafka key"),
        _f("detections", pa.list_(pa.struct(list(DETECTIONS))), "rows of the detections table"),
        _f("non_detections", pa.list_(pa.struct(list(NON_DETECTIONS))), "rows of the non_detections table"),
        _f("quarantine_reason", pa.string(), "null for a valid alert, else the quarantine reason"),
        _f("raw", pa.binary(), "original Kafka value, only set when quarantined"),
    ]
)

#: Columns identifying a row, for de-duplication of replays and repeated history.
TABLE_KEYS = {
    "alerts": ["survey", "candid"],
    "detections": ["survey", "candid"],
    "non_detections": ["survey", "objectId", "kind", "band", "mjd"],
    "quarantine": ["topic", "partition", "offset"],
}

TABLES = {"alerts": ALERTS, "detections": DETECTIONS, "non_detections": NON_DETECTIONS, "quarantine": QUARANTINE}

#: Nullable columns added to a table after lake format 1 was fixed: a lake whose table lacks only
#: these gets them added at start-up (lenga.stream.preflight), and its older rows read them as null.
ADDED_COLUMNS = {"detections": tuple(field.name for field in [*_REFERENCE_SOURCE, *_CORRECTION])}


def column_descriptions(schema: pa.Schema) -> dict[str, str]:
    """Column name -> description, in schema order (for the README and notebooks)."""
    return {field.name: field.metadata[_DESCRIPTION].decode() for field in schema}
