"""Survey-specific mapping of one decoded Avro alert record to lenga's common rows.

Each survey module (:mod:`lenga.survey.ztf`, :mod:`lenga.survey.lsst`) exposes ``SURVEY``,
``SITE_LONGITUDE_DEG`` and ``extract(record, schemavsn) -> Extracted``. Rows are plain dicts keyed
by :mod:`lenga.schema` column names; columns the survey does not send stay absent (null) and are
derived batch-wise by :mod:`lenga.decode` (jd <-> mjd, flux <-> magnitude, night).
"""

from __future__ import annotations

import math
from typing import NamedTuple

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


def finite(value) -> bool:
    """True for a real, finite number (None and NaN are not)."""
    return value is not None and math.isfinite(value)


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
