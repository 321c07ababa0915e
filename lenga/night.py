"""Observing night: the partition key of every lenga table.

A night is the integer yyyymmdd of the *local calendar date at the observatory when the night
starts* (the evening date). Using local mean solar time shifted by half a day means a whole night,
dusk to dawn, maps to one value, so one Delta partition holds one night of one site.

    night = date(floor(mjd + longitude / 360 - 0.5))

``mjd + longitude/360`` is the local mean solar time in days (east longitude positive; the MJD
day starts at Greenwich midnight); subtracting half a day moves the date change to local noon.
MJD 40587 is 1970-01-01 (the Unix epoch), which turns the day count into a calendar date.
"""

from __future__ import annotations

import numpy as np

#: Palomar Observatory (ZTF, Samuel Oschin 48-inch), east longitude in degrees
#: (astropy-data ``coordinates/sites.json``, "Palomar").
PALOMAR_LONGITUDE_DEG = -116.8650
#: Cerro Pachón (Vera C. Rubin Observatory), east longitude in degrees (astropy-data
#: ``coordinates/sites.json``, "Rubin Observatory").
CERRO_PACHON_LONGITUDE_DEG = -70.7494
#: Greenwich: used when only a UTC clock is known (Kafka timestamps of quarantined messages).
GREENWICH_LONGITUDE_DEG = 0.0

#: MJD = JD - 2400000.5 (IAU 1997 resolution B1).
JD_MINUS_MJD = 2400000.5
#: MJD of 1970-01-01T00:00 UTC, the Unix epoch.
MJD_UNIX_EPOCH = 40587.0
SECONDS_PER_DAY = 86400.0


def mjd_from_jd(jd) -> np.ndarray:
    """Julian date to modified Julian date."""
    return np.asarray(jd, dtype=np.float64) - JD_MINUS_MJD


def jd_from_mjd(mjd) -> np.ndarray:
    """Modified Julian date to Julian date."""
    return np.asarray(mjd, dtype=np.float64) + JD_MINUS_MJD


def mjd_from_unix_seconds(seconds) -> np.ndarray:
    """Unix time (seconds since 1970-01-01 UTC) to MJD (UTC, leap seconds ignored as Unix does)."""
    return np.asarray(seconds, dtype=np.float64) / SECONDS_PER_DAY + MJD_UNIX_EPOCH


def night_from_mjd(mjd, longitude_deg) -> np.ndarray:
    """Night id yyyymmdd (int32) of each MJD at the given site longitude(s) (degrees, east +).

    ``longitude_deg`` is a scalar or an array broadcast against ``mjd``. Raises ValueError for a
    NaN/infinite MJD or longitude: a night must never be silently invented.
    """
    mjd = np.asarray(mjd, dtype=np.float64)
    local_day = mjd + np.asarray(longitude_deg, dtype=np.float64) / 360.0 - 0.5
    if not np.all(np.isfinite(local_day)):
        raise ValueError("night_from_mjd: NaN or infinite MJD/longitude")
    days = np.floor(local_day - MJD_UNIX_EPOCH).astype("int64").astype("datetime64[D]")
    year = days.astype("datetime64[Y]").astype(np.int64) + 1970
    month = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (days - days.astype("datetime64[M]")).astype(np.int64) + 1
    return (year * 10000 + month * 100 + day).astype(np.int32)


def night_range(first: int, last: int) -> list[int]:
    """Every night id from ``first`` to ``last`` inclusive (yyyymmdd integers, calendar order)."""
    try:
        start, end = (np.datetime64(f"{n // 10000:04d}-{n // 100 % 100:02d}-{n % 100:02d}") for n in (first, last))
    except ValueError as error:
        raise ValueError(f"night_range: {first} .. {last} are not yyyymmdd nights ({error})") from None
    if end < start:
        raise ValueError(f"night_range: last night {last} is before the first {first}")
    days = np.arange(start, end + np.timedelta64(1, "D"))
    return [int(str(d).replace("-", "")) for d in days]
