"""Survey-specific mapping of decoded Avro alert records to lenga's common rows.

Each survey module (:mod:`lenga.survey.ztf`, :mod:`lenga.survey.lsst`) exposes ``SURVEY``,
``SITE_LONGITUDE_DEG`` and ``extract(record, schemavsn) -> Extracted`` (one record as fastavro
returns it; rows are plain dicts keyed by :mod:`lenga.schema` column names). ZTF also maps whole
Arrow batches of records (``extract_batch -> ExtractedBatch``), which is how :mod:`lenga.decode`
reads it. Columns the survey does not send stay null and are derived batch-wise by
:mod:`lenga.decode` (jd <-> mjd, flux <-> magnitude, night).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Plausible observation times, MJD 33282 (1950-01-01) to 88069 (2100-01-01): anything outside is
#: a corrupt or synthetic packet (alert_packet's v7 sample alerts carry MJD 1.48e9), and would
#: otherwise land in a nonsense night partition.
MJD_RANGE = (33282.0, 88069.0)


class InvalidAlert(ValueError):
    """The record is an alert of a known survey but cannot be stored; the message is the reason."""


class Extracted(NamedTuple):
    alert: dict
    detections: list[dict]
    non_detections: list[dict]


class ExtractedBatch(NamedTuple):
    """The rows of a batch of records, columnar.

    ``alerts`` has one :data:`lenga.schema.ALERTS` row per record; a record with a quarantine
    reason in ``reasons`` has only ``survey`` set and no history rows. History rows
    (:data:`lenga.schema.DETECTIONS`, :data:`lenga.schema.NON_DETECTIONS`) are grouped by record,
    in record order, and ``*_owner`` holds the index of each row's record.
    """

    alerts: pa.Table
    reasons: list[str | None]
    detections: pa.Table
    detection_owner: np.ndarray
    non_detections: pa.Table
    non_detection_owner: np.ndarray

    def single(self) -> Extracted:
        """The dict rows of a batch of one record; raises InvalidAlert with its quarantine reason."""
        if self.reasons[0] is not None:
            raise InvalidAlert(self.reasons[0])
        return Extracted(self.alerts.to_pylist()[0], self.detections.to_pylist(), self.non_detections.to_pylist())


def rows_table(columns: dict[str, pa.Array], schema: pa.Schema, n_rows: int) -> pa.Table:
    """A table of ``schema`` from the given columns (cast to the schema's types); absent columns are null."""
    return pa.table([pc.cast(columns[f.name], f.type) if f.name in columns else pa.nulls(n_rows, f.type)
                     for f in schema], schema=schema)


def position_and_time_reasons(ra: pa.Array, dec: pa.Array, mjd: pa.Array) -> list[str | None]:
    """:func:`require_position_and_time` on columns: its reason for each rejected row, else None.

    The checks run on whole columns; only rejected rows (rare) go through the scalar function, so
    that both paths give the same messages.
    """
    ra_, dec_, mjd_ = (pc.cast(c, pa.float64()).to_numpy(zero_copy_only=False) for c in (ra, dec, mjd))
    with np.errstate(invalid="ignore"):
        ok = (np.isfinite(ra_) & np.isfinite(dec_) & (ra_ >= 0.0) & (ra_ < 360.0) & (np.abs(dec_) <= 90.0)
              & (mjd_ >= MJD_RANGE[0]) & (mjd_ <= MJD_RANGE[1]))
    reasons: list[str | None] = [None] * len(ok)
    for i in np.flatnonzero(~ok):
        try:
            require_position_and_time(ra[i].as_py(), dec[i].as_py(), mjd[i].as_py())
        except InvalidAlert as exc:
            reasons[i] = str(exc)
    return reasons


def finite(value) -> bool:
    """True for a real, finite number (None and NaN are not)."""
    return value is not None and math.isfinite(value)


def plausible_mjd(value) -> bool:
    """True for an observation time (MJD) inside MJD_RANGE (None and NaN are not)."""
    return finite(value) and MJD_RANGE[0] <= value <= MJD_RANGE[1]


def plausible_mjds(mjd: np.ndarray) -> np.ndarray:
    """:func:`plausible_mjd` of each value of a float array (NaN for null)."""
    return (mjd >= MJD_RANGE[0]) & (mjd <= MJD_RANGE[1])


def require_position_and_time(ra, dec, mjd) -> None:
    """Reject an alert whose own position or time (MJD) is missing, NaN or out of range."""
    if not (finite(ra) and finite(dec)):
        raise InvalidAlert(f"NaN coordinates: ra={ra}, dec={dec}")
    if not (0.0 <= ra < 360.0 and -90.0 <= dec <= 90.0):
        raise InvalidAlert(f"coordinates out of range: ra={ra}, dec={dec}")
    if not finite(mjd):
        raise InvalidAlert(f"NaN time: mjd={mjd}")
    if not MJD_RANGE[0] <= mjd <= MJD_RANGE[1]:
        raise InvalidAlert(f"time out of range: mjd={mjd}")
