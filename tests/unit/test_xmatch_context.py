"""Alert context flags: ZTF/LSST known solar-system objects, ZTF probable stars."""

import fastavro
import numpy as np
import pytest

from lenga.xmatch.context import known_sso_lsst, known_sso_ztf, probable_star


def test_known_sso_ztf_rule_and_sentinels():
    ssdistnr = [-999.0, 0.0, 4.9, 5.0, 5.1, 2.0, None, 3.0]
    ssmagnr = [-999.0, 18.0, 19.0, 19.0, 19.0, -999.0, 18.0, None]
    np.testing.assert_array_equal(
        known_sso_ztf(ssdistnr, ssmagnr), [False, True, True, True, False, False, False, False]
    )
    assert known_sso_ztf([12.0], [18.0], max_distance_arcsec=15.0).tolist() == [True]
    with pytest.raises(ValueError, match="differ in shape"):
        known_sso_ztf([1.0, 2.0], [18.0])


def test_known_sso_lsst():
    np.testing.assert_array_equal(known_sso_lsst([None, 0, 21164719644750924, 1]), [False, False, True, True])


def test_probable_star():
    sgscore1 = [0.99, 0.99, 0.5, 0.51, -999.0, 0.9, None]
    distpsnr1 = [0.3, 1.0, 0.3, 0.99, 0.3, -999.0, 0.2]
    np.testing.assert_array_equal(
        probable_star(sgscore1, distpsnr1), [True, False, False, True, False, False, False]
    )
    with pytest.raises(ValueError, match="differ in shape"):
        probable_star([0.9], [0.1, 0.2])


def _records(paths):
    for path in sorted(paths):
        with open(path, "rb") as handle:
            yield from fastavro.reader(handle)


def test_real_lsst_alerts_flag_exactly_the_ssobject_sources(shared_data):
    """Real LSSTCam alerts (v9.0): the 4 with an ssSource are the known SSOs, although others carry 0."""
    alerts = list(_records((shared_data / "lsst" / "fink-broker-rubin-v9_0").glob("*.avro")))
    flags = known_sso_lsst([a["diaSource"]["ssObjectId"] for a in alerts])
    assert len(alerts) == 40
    assert flags.tolist() == [a["ssSource"] is not None for a in alerts]
    assert flags.sum() == 4


def test_real_ztf_alerts(shared_data):
    alerts = list(_records((shared_data / "ztf" / "fink-alert-simulator").glob("*.avro")))
    cand = [a["candidate"] for a in alerts]
    sso = known_sso_ztf([c["ssdistnr"] for c in cand], [c["ssmagnr"] for c in cand])
    star = probable_star([c["sgscore1"] for c in cand], [c["distpsnr1"] for c in cand])
    expected_sso = [c["ssdistnr"] is not None and 0 <= c["ssdistnr"] <= 5 and c["ssmagnr"] >= 0 for c in cand]
    expected_star = [c["sgscore1"] > 0.5 and 0 <= c["distpsnr1"] < 1 for c in cand]
    assert sso.tolist() == expected_sso
    assert star.tolist() == expected_star
    # This set mixes both outcomes of both flags (the rules are really exercised).
    assert 0 < sso.sum() < len(cand) and 0 < star.sum() < len(cand)
