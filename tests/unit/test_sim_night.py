"""The simulator end to end: packets valid against the schemas, deterministic, growing histories,
upper limits, cutouts, broken messages, truth counts, files, and the decoder round trip."""

import io
import json
import re
import time
from collections import Counter, defaultdict

import fastavro
import numpy as np
import pyarrow as pa
import pytest

from lenga.sim import cutouts, lsst, ztf
from lenga.sim.night import CORRUPT_KINDS, SimConfig, expected_counts, file_name, simulate, write_directory

CONFIG = SimConfig(seed=7, n_objects=40, n_nights=4, corrupt_fraction=0.1, lsst_schema="10.0")


@pytest.fixture(scope="module")
def alerts():
    return list(simulate(CONFIG))


@pytest.fixture(scope="module")
def valid(alerts):
    return [a for a in alerts if a.corrupt is None]


def _ztf(alert):
    records = list(fastavro.reader(io.BytesIO(alert.value)))
    assert len(records) == 1
    return records[0]


def _lsst(alert, version="10.0"):
    assert alert.value[0] == 0
    assert int.from_bytes(alert.value[1:5], "big") == lsst.schema_id(version)
    stream = io.BytesIO(alert.value[5:])
    record = fastavro.schemaless_reader(stream, lsst.schema(version))
    assert stream.read() == b""  # the record spans the whole payload
    return record


def test_both_surveys_and_classes_present(valid):
    surveys = Counter(a.survey for a in valid)
    assert surveys["ztf"] > 20 and surveys["lsst"] > 3
    assert {a.class_name for a in valid if a.survey == "ztf"} >= {"SNIa", "RRL", "asteroid"}
    assert [a.mjd for a in valid] == sorted(a.mjd for a in valid)
    window = (CONFIG.start_mjd, CONFIG.start_mjd + CONFIG.n_nights)
    assert all(window[0] <= a.mjd < window[1] for a in valid)
    assert {a.topic for a in valid} == {"ztf_alerts", "lsst_alerts"}


def test_ztf_packets_valid_and_consistent(valid):
    candids = []
    for a in (a for a in valid if a.survey == "ztf"):
        r = _ztf(a)
        assert fastavro.validate(r, ztf.schema())
        c = r["candidate"]
        assert r["schemavsn"] == "4.02" and r["candid"] == c["candid"] == a.candid
        assert re.fullmatch(r"ZTF\d{2}[a-z]{7}", r["objectId"]) and a.key == r["objectId"].encode()
        assert len(str(c["candid"])) == 19 and c["candid"] // 10**6 == c["pid"]
        assert c["jd"] - 2400000.5 == pytest.approx(a.mjd, abs=1e-9)
        assert c["isdiffpos"] in ("t", "f") and c["programid"] == 1 and c["fid"] in (1, 2, 3)
        assert c["magpsf"] < c["diffmaglim"] + 0.5 and 0 < c["sigmapsf"] <= 1.0857 / 5 + 1e-6
        assert c["ndethist"] >= 1 + sum(p["candid"] is not None for p in r["prv_candidates"])
        assert c["jdstarthist"] <= c["jd"] and c["ncovhist"] >= c["ndethist"]
        if a.class_name == "asteroid":
            assert c["ssdistnr"] >= 0 and c["ssnamenr"] != "null"
            assert all(p["candid"] is None for p in r["prv_candidates"])  # no history of detections
        else:
            assert c["ssdistnr"] == -999.0
        for p in r["prv_candidates"] + r["fp_hists"]:
            assert c["jd"] - 30 <= p["jd"] < c["jd"]
        candids.append((c["jd"], c["candid"]))
    candids.sort()
    assert [c for _, c in candids] == sorted(c for _, c in candids)  # candid grows with time
    assert len({c for _, c in candids}) == len(candids)


def test_lsst_packets_valid_and_consistent(valid):
    source_ids = []
    for a in (a for a in valid if a.survey == "lsst"):
        r = _lsst(a)
        assert fastavro.validate(r, lsst.schema("10.0"))
        s = r["diaSource"]
        assert r["diaSourceId"] == s["diaSourceId"] == a.candid
        assert s["band"] in "ugrizy" and s["midpointMjdTai"] == pytest.approx(a.mjd)
        assert abs(s["psfFlux"]) >= 5 * s["psfFluxErr"]
        if a.class_name == "asteroid":
            assert s["diaObjectId"] == 0 and r["diaObject"] is None and r["ssSource"]["ssObjectId"] == s["ssObjectId"]
        else:
            obj = r["diaObject"]
            assert obj["diaObjectId"] == s["diaObjectId"] == int(a.object_id)
            assert obj["nDiaSources"] == len(r["prvDiaSources"]) + 1
            assert all(s["midpointMjdTai"] - 365 <= p["midpointMjdTai"] < s["midpointMjdTai"] for p in r["prvDiaSources"])
        for name in ("cutoutScience", "cutoutTemplate", "cutoutDifference"):
            assert r[name][:6] == b"SIMPLE"  # plain FITS, not gzipped
        source_ids.append((s["midpointMjdTai"], s["diaSourceId"]))
    source_ids.sort()
    assert [i for _, i in source_ids] == sorted(i for _, i in source_ids)


def test_lsst_v9_packets_validate():
    config = SimConfig(seed=3, n_objects=30, n_nights=3, surveys=("lsst",), lsst_schema="9.0")
    alerts = list(simulate(config))
    assert alerts
    for a in alerts:
        assert fastavro.validate(_lsst(a, "9.0"), lsst.schema("9.0"))


def test_same_seed_same_bytes_other_seed_differs(alerts):
    again = list(simulate(CONFIG))
    assert [(a.topic, a.key, a.value) for a in again] == [(a.topic, a.key, a.value) for a in alerts]
    other = list(simulate(SimConfig(seed=8, n_objects=40, n_nights=4)))
    assert {a.value for a in other}.isdisjoint({a.value for a in alerts})


def test_history_grows_night_after_night(valid):
    by_object = defaultdict(list)
    for a in valid:
        if a.survey == "ztf":
            by_object[a.object_id].append(_ztf(a))
    multi = {k: v for k, v in by_object.items() if len({int(r["candidate"]["jd"] - 0.5) for r in v}) >= 3}
    assert multi, "some object should alert on three nights or more"
    for records in multi.values():
        ndet = [r["candidate"]["ndethist"] for r in records]
        assert ndet == sorted(ndet) and ndet[-1] > ndet[0]
        first, last = records[0], records[-1]
        seen = {p["candid"] for p in last["prv_candidates"] if p["candid"] is not None}
        if last["candidate"]["jd"] - first["candidate"]["jd"] < 30:
            assert first["candid"] in seen  # the first alert's detection is in the last one's history


def test_upper_limits_have_null_candid(valid):
    limits = [
        p for a in valid if a.survey == "ztf" for p in _ztf(a)["prv_candidates"] if p["candid"] is None
    ]
    assert len(limits) > 20
    for p in limits:
        assert p["magpsf"] is None and p["isdiffpos"] is None and 18.0 < p["diffmaglim"] < 23.0


def test_cutouts_show_the_transient_at_the_centre(valid):
    bright = 0
    for a in valid:
        if a.survey == "ztf":
            r = _ztf(a)
            snr = 1.0857 / r["candidate"]["sigmapsf"]
            stamps = {k: r[k]["stampData"] for k in ("cutoutScience", "cutoutTemplate", "cutoutDifference")}
            sign = 1.0 if r["candidate"]["isdiffpos"] == "t" else -1.0
        else:
            r = _lsst(a)
            snr = r["diaSource"]["snr"]
            stamps = {k: r[k] for k in ("cutoutScience", "cutoutTemplate", "cutoutDifference")}
            sign = np.sign(r["diaSource"]["psfFlux"])
        images = {k: cutouts.read_fits_image(v) for k, v in stamps.items()}
        assert all(img.shape == (63, 63) and img.dtype == float for img in images.values())
        if snr < 30:
            continue
        diff = images["cutoutDifference"] * sign
        noise = 1.4826 * np.median(np.abs(diff - np.median(diff)))
        assert diff[30:33, 30:33].max() > 5 * noise, (a.object_id, a.class_name)
        peak = np.unravel_index(np.argmax(diff), diff.shape)
        assert abs(peak[0] - 31) <= 1 and abs(peak[1] - 31) <= 1
        bright += 1
    assert bright >= 5


def test_corrupt_messages_tagged(alerts, valid):
    broken = [a for a in alerts if a.corrupt]
    assert len(broken) == round(CONFIG.corrupt_fraction * len(valid))
    assert {a.corrupt for a in broken} == set(CORRUPT_KINDS)
    originals = {(a.survey, a.candid): a for a in valid}
    for b in broken:
        assert b.value != originals[(b.survey, b.candid)].value and not b.detections
    assert not any(a.corrupt for a in simulate(SimConfig(seed=7, n_objects=10, n_nights=2)))


def test_expected_counts_match_the_packets(alerts, valid):
    counts = expected_counts(alerts)
    det, ul, fp = set(), set(), set()
    for a in valid:
        if a.survey == "ztf":
            r = _ztf(a)
            det.add(("ztf", r["candid"]))
            for p in r["prv_candidates"]:
                if p["candid"] is None:
                    ul.add((r["objectId"], p["jd"], p["fid"]))
                else:
                    det.add(("ztf", p["candid"]))
            fp.update(("ztf", r["objectId"], p["jd"], p["fid"]) for p in r["fp_hists"])
        else:
            r = _lsst(a)
            det.update(("lsst", s["diaSourceId"]) for s in [r["diaSource"], *(r["prvDiaSources"] or [])])
            fp.update(("lsst", f["diaForcedSourceId"]) for f in r["prvDiaForcedSources"] or [])
    assert counts["detections"] == len(det)
    assert counts["upper_limits"] == len(ul) > 0
    assert counts["forced_photometry"] == len(fp)
    assert counts["alerts"] == len(valid) and counts["corrupt"] == len(alerts) - len(valid)
    assert counts["objects"] == len({(a.survey, a.object_id) for a in valid})
    assert counts["detections"] > counts["alerts"]  # histories add earlier detections
    assert sum(s["alerts"] for s in counts["by_survey"].values()) == counts["alerts"]


def test_write_directory(tmp_path, alerts):
    n = write_directory(alerts, tmp_path / "night")
    files = sorted(p.name for p in (tmp_path / "night").iterdir())
    assert n == len(alerts) == len(files)
    a = next(a for a in alerts if a.survey == "ztf" and not a.corrupt)
    assert f"ztf_{a.object_id}_{a.candid}.avro" in files
    assert (tmp_path / "night" / file_name(a)).read_bytes() == a.value


def test_decoder_round_trip(alerts):
    decode = pytest.importorskip("lenga.decode")
    batch = pa.RecordBatch.from_pydict({"value": pa.array([a.value for a in alerts], pa.binary())})
    out = decode.decode_record_batch(batch).to_pydict()
    for a, reason in zip(alerts, out["quarantine_reason"], strict=True):
        assert (reason is None) == (a.corrupt is None), (a.corrupt, reason)
    det, ul, fp = set(), set(), set()
    for dets, nondets in zip(out["detections"], out["non_detections"], strict=True):
        det.update((d["survey"], d["candid"]) for d in dets or [])
        for n in nondets or []:
            key = (n["survey"], n["objectId"], n["band"], n["mjd"])
            (ul if n["kind"] == "upper_limit" else fp).add(key)
    counts = expected_counts(alerts)
    assert (len(det), len(ul), len(fp)) == (
        counts["detections"],
        counts["upper_limits"],
        counts["forced_photometry"],
    )


def test_config_from_dict_and_errors():
    config = SimConfig.from_dict({"seed": 1, "n_objects": 5, "surveys": ["ztf"], "lsst_schema": 9.0})
    assert config.surveys == ("ztf",) and config.lsst_schema == "9.0"
    assert SimConfig(surveys="ztf,lsst").surveys == ("ztf", "lsst")
    with pytest.raises(ValueError, match="unknown simulate settings"):
        SimConfig.from_dict({"n_object": 5})
    with pytest.raises(ValueError, match="surveys"):
        SimConfig(surveys=("ztf", "panstarrs"))
    with pytest.raises(ValueError, match="corrupt_fraction"):
        SimConfig(corrupt_fraction=1.5)
    with pytest.raises(ValueError, match="unknown classes"):
        SimConfig(class_mix={"Kilonova": 1.0})


def test_throughput_is_reported(capsys):
    """Measured, not asserted: the CPU is shared. Prints ZTF alerts/s for the whole simulator."""
    start = time.process_time()
    n = sum(1 for _ in simulate(SimConfig(seed=11, n_objects=60, n_nights=3, surveys=("ztf",))))
    elapsed = time.process_time() - start
    with capsys.disabled():
        print(f"\n[sim throughput] {json.dumps({'ztf_alerts': n, 'cpu_s': round(elapsed, 2), 'per_s': round(n / elapsed)})}")
    assert n > 0
