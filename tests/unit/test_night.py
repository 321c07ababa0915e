"""Observing-night partition key (lenga.night)."""

import numpy as np
import pytest
from astropy.time import Time

from lenga import night


def _mjd(iso: str) -> float:
    return Time(iso, scale="utc").mjd


def test_ztf_morning_utc_is_previous_evening_at_palomar():
    # 2025-03-02 10:00 UTC is 02:13 local mean time at Palomar: the night of 2025-03-01.
    jd = Time("2025-03-02T10:00:00", scale="utc").jd
    assert night.night_from_mjd(night.mjd_from_jd(jd), night.PALOMAR_LONGITUDE_DEG) == 20250301


def test_whole_night_maps_to_one_value():
    # Palomar, dusk 2025-03-01 ~02:00 UTC (Mar 2) to dawn ~14:00 UTC (Mar 2): one night.
    mjds = _mjd("2025-03-02T02:00:00") + np.linspace(0, 0.5, 13)
    assert set(night.night_from_mjd(mjds, night.PALOMAR_LONGITUDE_DEG).tolist()) == {20250301}
    # Local noon (~19:47 UTC) is where the night changes.
    around_noon = [_mjd("2025-03-02T19:40:00"), _mjd("2025-03-02T19:55:00")]
    assert night.night_from_mjd(around_noon, night.PALOMAR_LONGITUDE_DEG).tolist() == [20250301, 20250302]


def test_cerro_pachon_and_greenwich():
    # 2026-01-01 05:00 UTC is 00:17 local mean time at Cerro Pachón: night of 2025-12-31.
    assert night.night_from_mjd(_mjd("2026-01-01T05:00:00"), night.CERRO_PACHON_LONGITUDE_DEG) == 20251231
    # Greenwich: the date changes at 12:00 UTC.
    g = night.night_from_mjd([_mjd("2024-02-29T11:59:00"), _mjd("2024-02-29T12:01:00")], night.GREENWICH_LONGITUDE_DEG)
    assert g.tolist() == [20240228, 20240229]
    assert g.dtype == np.int32


def test_per_row_longitudes_and_unix_time():
    mjd = night.mjd_from_unix_seconds([0.0, 86400.0 * 365])
    assert mjd.tolist() == [40587.0, 40587.0 + 365]
    out = night.night_from_mjd([60000.3, 60000.3], [night.PALOMAR_LONGITUDE_DEG, 100.0])
    assert out.tolist() == [20230224, 20230225]  # MJD 60000 is 2023-02-25


def test_jd_mjd_round_trip():
    assert night.jd_from_mjd(night.mjd_from_jd(2460736.6771181)) == pytest.approx(2460736.6771181, abs=1e-9)


def test_nan_time_raises():
    with pytest.raises(ValueError, match="NaN"):
        night.night_from_mjd([60000.0, np.nan], 0.0)
