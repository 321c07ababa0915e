"""Columnar ZTF decoding (arrow-avro records mapped by lenga.survey.ztf.extract_batch) against fastavro.

Expectations are read from the packets with fastavro and mapped here with the ZTF schema's rules
(docs of ``candidate``, ``prv_candidate``, ``fp_hist``), never taken from lenga's decoder. Packets:
the simulator's ZTF alerts and every real ZTF alert under ../shared/data.
"""

from __future__ import annotations

import io
import math
import multiprocessing

import fastavro
import pyarrow as pa
import pytest
from fastavro.read import HEADER_SCHEMA

from lenga import schema
from lenga.decode import decode_message, decode_record_batch
from lenga.sim.night import SimConfig, simulate
from lenga.survey import ztf

HEADER = fastavro.parse_schema(HEADER_SCHEMA)
#: Seconds a batch decode may take in the hang test (it takes well under one).
DECODE_DEADLINE_S = 60
BANDS = {1: "g", 2: "r", 3: "i"}


def kafka_batch(values: list[bytes]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"value": pa.array(values, pa.binary())})


def same(a, b) -> bool:
    """Equality of decoded values where NaN equals NaN (ZTF sends NaN in several fields)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def finite(value) -> bool:
    return value is not None and math.isfinite(value)


def reframed(value: bytes, record_bytes: bytes) -> bytes:
    """The one-record container ``value`` with other record bytes, its framing kept valid."""
    stream = io.BytesIO(value)
    header = fastavro.schemaless_reader(stream, HEADER)
    out = io.BytesIO()
    out.write(value[: stream.tell()])
    fastavro.schemaless_writer(out, "long", 1)
    fastavro.schemaless_writer(out, "long", len(record_bytes))
    out.write(record_bytes)
    out.write(header["sync"])
    return out.getvalue()


def record_bytes(value: bytes) -> bytes:
    stream = io.BytesIO(value)
    fastavro.schemaless_reader(stream, HEADER)
    fastavro.schemaless_reader(stream, "long")
    return stream.read(fastavro.schemaless_reader(stream, "long"))


def re_encoded(value: bytes, edit) -> bytes:
    """``value`` with its record changed by ``edit``, written with the same writer schema bytes."""
    reader = fastavro.reader(io.BytesIO(value))
    record = next(reader)
    edit(record)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(reader.writer_schema), record)
    return reframed(value, body.getvalue())


@pytest.fixture(scope="module")
def ztf_values(shared_data) -> list[bytes]:
    """The simulator's ZTF alerts, then every real ZTF alert (schemas 3.2, 3.3, 3.5, 4.02)."""
    simulated = [a.value for a in simulate(SimConfig(seed=11, n_objects=60, n_nights=4, surveys=("ztf",)))]
    real = [p.read_bytes() for p in sorted((shared_data / "ztf").rglob("*.avro"))]
    assert len(simulated) > 50 and len(real) == 158
    return simulated + real


def expected_rows(record: dict) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """(detections, upper limits, forced points) of a ZTF record by the schema docs' rules."""
    forced_in_prv = [p for p in record["prv_candidates"] or [] if "forcediffimflux" in p]  # ZTF 3.5
    prv = [p for p in record["prv_candidates"] or [] if "forcediffimflux" not in p]
    fp = (record.get("fp_hists") or []) + forced_in_prv
    detections = [(p["candid"], p["jd"], p["fid"], p["magpsf"], p["sigmapsf"], p.get("diffmaglim"), p.get("rb"),
                   p.get("drb"), p.get("programid"), p["isdiffpos"] in ("t", "1"), p is not record["candidate"])
                  for p in [record["candidate"], *prv]
                  if (p is record["candidate"] or p["candid"] is not None) and p["fid"] in BANDS
                  and p["isdiffpos"] in ("t", "1", "f", "0") and finite(p["jd"]) and finite(p["magpsf"])]
    limits = [(p["jd"], p["fid"], p["diffmaglim"]) for p in prv
              if p["candid"] is None and p["fid"] in BANDS and finite(p["jd"]) and finite(p["diffmaglim"])]
    forced = [(p["jd"], p["fid"], p["forcediffimflux"] * 10 ** (-0.4 * (p["magzpsci"] - 31.4))) for p in fp
              if p["fid"] in BANDS and finite(p["jd"]) and finite(p["forcediffimflux"])
              and p["forcediffimflux"] != -99999.0 and finite(p["forcediffimfluxunc"]) and finite(p["magzpsci"])]
    return detections, limits, forced


def test_columnar_rows_equal_fastavro_records(ztf_values):
    rows = decode_record_batch(kafka_batch(ztf_values)).to_pylist()
    for value, row in zip(ztf_values, rows, strict=True):
        record = next(fastavro.reader(io.BytesIO(value)))
        candidate = record["candidate"]
        assert row["quarantine_reason"] is None
        assert (row["survey"], row["objectId"], row["candid"], row["alertId"], row["schemavsn"]) == (
            "ztf", record["objectId"], record["candid"], record["candid"], record["schemavsn"])
        for name in (*ztf.CONTEXT_COLUMNS, "jd", "fid", "ra", "dec", "magpsf", "sigmapsf"):
            expected = candidate.get(name)
            assert same(row[name], expected) or row[name] == pytest.approx(expected), name
        assert row["band"] == BANDS[candidate["fid"]] and row["isdiffpos"] == (candidate["isdiffpos"] in ("t", "1"))
        for name in schema.CUTOUT_COLUMNS:
            assert row[name] == (record[name] or {}).get("stampData")

        detections, limits, forced = expected_rows(record)
        assert same([(d["candid"], d["jd"], d["fid"], d["magpsf"], d["sigmapsf"], d["diffmaglim"], d["rb"], d["drb"],
                      d["programid"], d["isdiffpos"], d["from_history"]) for d in row["detections"]], detections)
        history = row["non_detections"]
        assert [(n["jd"], n["fid"], n["diffmaglim"]) for n in history if n["kind"] == schema.UPPER_LIMIT] == limits
        points = [n for n in history if n["kind"] == schema.FORCED]
        assert [(n["jd"], n["fid"]) for n in points] == [(jd, fid) for jd, fid, _ in forced]
        assert [n["psfFlux"] for n in points] == pytest.approx([flux for _, _, flux in forced], rel=1e-12)
        assert all(n["objectId"] == record["objectId"] and n["alert_candid"] == record["candid"]
                   for n in row["detections"] + history)
        n_prv = len([p for p in record["prv_candidates"] or [] if "forcediffimflux" not in p])
        n_forced = len(record.get("fp_hists") or []) + len(record["prv_candidates"] or []) - n_prv
        assert row["n_prv_detections"] + row["n_prv_non_detections"] == n_prv and row["n_forced"] == n_forced
        assert row["n_dropped_points"] == n_prv + n_forced - (len(detections) - 1) - len(limits) - len(forced)


def test_single_record_paths_use_the_same_mapping(ztf_values):
    """decode_message and ztf.extract (a fastavro record) give the rows the batch decoder gives."""
    for value in ztf_values[-158::10]:
        record = next(fastavro.reader(io.BytesIO(value)))
        from_message, from_record = decode_message(value), ztf.extract(record)
        assert same(from_message.alert, from_record.alert)
        assert same(from_message.detections, from_record.detections)
        assert same(from_message.non_detections, from_record.non_detections)
        assert from_message.alert["candid"] == record["candid"]
        assert len(from_message.detections) == 1 + sum(
            p.get("candid") is not None and finite(p["magpsf"]) for p in record["prv_candidates"] or [])


def _decode_in_child(values: list[bytes], conn) -> None:
    conn.send(decode_record_batch(kafka_batch(values)).to_pylist())


def decode_with_deadline(values: list[bytes]) -> list[dict]:
    """decode_record_batch in a forked process; fails the test if it has not answered in time."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_decode_in_child, args=(values, sender))
    child.start()
    try:
        if not receiver.poll(DECODE_DEADLINE_S):
            pytest.fail(f"decode_record_batch did not return within {DECODE_DEADLINE_S} s (arrow-avro hang?)")
        return receiver.recv()
    finally:
        child.kill()
        child.join()


def test_rejected_candidates_inside_a_decoded_group(ztf_values):
    """Alerts that decode but cannot be stored get their reason; the rest of the group is unchanged."""
    good = ztf_values[:3]
    values = [good[0], re_encoded(good[1], lambda r: r["candidate"].update(isdiffpos="x")), good[1],
              re_encoded(good[2], lambda r: r["candidate"].update(ra=float("nan"))), good[2]]
    rows = decode_record_batch(kafka_batch(values)).to_pylist()
    candidate, dec = (next(fastavro.reader(io.BytesIO(v)))["candidate"] for v in good[1:])
    assert [r["quarantine_reason"] for r in rows] == [
        None, f"invalid ZTF candidate photometry: fid={candidate['fid']}, isdiffpos='x', magpsf={candidate['magpsf']}",
        None, f"NaN coordinates: ra=nan, dec={dec['dec']}", None]
    assert all(rows[i]["survey"] == "ztf" and rows[i]["objectId"] is None and rows[i]["cutoutScience"] is None
               and rows[i]["detections"] is None and rows[i]["raw"] == values[i] for i in (1, 3))
    alone = decode_record_batch(kafka_batch(good)).to_pylist()
    assert [same(rows[i], alone[k]) for i, k in ((0, 0), (2, 1), (4, 2))] == [True] * 3


def test_bad_records_among_good_ones_are_quarantined_alone(ztf_values):
    good = ztf_values[:4]
    body = record_bytes(good[1])
    values = [
        good[0],
        reframed(good[1], body + b"\x00\x02ab"),  # trailing bytes: arrow-avro's endless loop if read on
        good[1],
        reframed(good[2], body[: len(body) // 2]),  # record cut short inside valid framing
        good[2],
        reframed(good[3], body[:60] + b"\xff" * 64 + body[124:]),  # overlong varints in the candidate
        reframed(good[3], body + b"\x00"),  # one stray byte: the sentinel is read shifted
        good[3],
    ]
    rows = decode_with_deadline(values)
    reasons = [r["quarantine_reason"] for r in rows]
    assert [r is None for r in reasons] == [True, False, True, False, True, False, False, True]
    assert all(reasons[i].startswith("schema/field error: ") for i in (1, 3, 5, 6))
    assert all(rows[i]["survey"] == "ztf" and rows[i]["objectId"] is None and rows[i]["detections"] is None
               and rows[i]["raw"] == values[i] for i in (1, 3, 5, 6))
    alone = decode_record_batch(kafka_batch(good)).to_pylist()
    assert [same(rows[i], alone[k]) for i, k in ((0, 0), (2, 1), (4, 2), (7, 3))] == [True] * 4
