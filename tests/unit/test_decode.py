"""Decoding real ZTF and LSST alert packets into lenga's common tables (lenga.decode).

Every expectation is read from the packet independently (fastavro with the embedded writer schema,
or the official .avsc files under ../shared/data), never from lenga's own decoder.
"""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime
from pathlib import Path

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastavro.schema import load_schema

from lenga import schema
from lenga.curves.correction import corrected_magnitudes, is_stellar
from lenga.decode import KafkaMessages, decode_messages, decode_record_batch, split_container

TIMESTAMP = datetime(2025, 3, 2, 10, 0, tzinfo=UTC)


def kafka_batch(values: list[bytes | None], topic: str = "alerts") -> pa.RecordBatch:
    """Rows shaped like Spark's Kafka source."""
    n = len(values)
    return pa.RecordBatch.from_pydict(
        {
            "key": [f"k{i}".encode() for i in range(n)],
            "value": pa.array(values, pa.binary()),
            "topic": [topic] * n,
            "partition": pa.array([3] * n, pa.int32()),
            "offset": pa.array(range(100, 100 + n), pa.int64()),
            "timestamp": pa.array([TIMESTAMP] * n, pa.timestamp("us", tz="UTC")),
            "timestampType": pa.array([0] * n, pa.int32()),
        }
    )


def decode(values: list[bytes | None]) -> list[dict]:
    out = decode_record_batch(kafka_batch(values), ingest_batch_id=7)
    assert out.schema == schema.DECODED
    assert out.num_rows == len(values)
    return out.to_pylist()


def read_container(path: Path) -> tuple[dict, list[dict]]:
    reader = fastavro.reader(io.BytesIO(path.read_bytes()))
    return reader.writer_schema, list(reader)


def official_schema(shared_data: Path, schema_id: int) -> dict:
    major, minor = divmod(schema_id, 100)
    return load_schema(shared_data / f"lsst/alert_packet-schema/{major}/{minor}/lsst.v{major}_{minor}.alert.avsc")


def wire(schema_id: int, parsed_schema: dict, record: dict) -> bytes:
    buffer = io.BytesIO()
    buffer.write(b"\x00" + schema_id.to_bytes(4, "big"))
    fastavro.schemaless_writer(buffer, parsed_schema, record)
    return buffer.getvalue()


def container(writer_schema: dict, records: list[dict], codec: str = "null") -> bytes:
    buffer = io.BytesIO()
    fastavro.writer(buffer, writer_schema, records, codec=codec)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def ztf_files(shared_data: Path) -> list[Path]:
    files = sorted((shared_data / "ztf").rglob("*.avro"))
    assert len(files) == 158
    return files


@pytest.fixture(scope="module")
def ztf_v402(shared_data: Path) -> Path:
    return shared_data / "ztf/pittgoogle-client/ztf_20250302_programid1_ZTF17aaarzyp_2982177112815010003.v4_02.avro"


# --- ZTF ------------------------------------------------------------------------------------------


def test_every_ztf_alert_matches_fastavro(ztf_files):
    rows = decode([p.read_bytes() for p in ztf_files])
    versions = set()
    for path, row in zip(ztf_files, rows, strict=True):
        _, (record,) = read_container(path)
        cand = record["candidate"]
        # ZTF 3.5 (forced-photometry test branch) put fp_hist records in prv_candidates.
        prv = [p for p in record["prv_candidates"] or [] if "forcediffimflux" not in p]
        fp = (record.get("fp_hists") or []) + [p for p in record["prv_candidates"] or [] if "forcediffimflux" in p]
        versions.add(record["schemavsn"])
        assert row["quarantine_reason"] is None, (path, row["quarantine_reason"])
        assert (row["survey"], row["objectId"], row["candid"], row["alertId"]) == (
            "ztf", record["objectId"], record["candid"], record["candid"])
        assert row["schemavsn"] == record["schemavsn"]
        assert row["n_prv_detections"] == sum(p["candid"] is not None for p in prv)
        assert row["n_prv_non_detections"] == sum(p["candid"] is None for p in prv)
        assert row["n_forced"] == len(fp)
        assert (row["ra"], row["dec"], row["jd"], row["fid"]) == (cand["ra"], cand["dec"], cand["jd"], cand["fid"])
        assert row["band"] == {1: "g", 2: "r", 3: "i"}[cand["fid"]]
        assert row["magpsf"] == pytest.approx(cand["magpsf"]) and row["rb"] == pytest.approx(cand["rb"])
        assert row["isdiffpos"] == (cand["isdiffpos"] in ("t", "1"))
        sign = 1 if row["isdiffpos"] else -1
        assert row["psfFlux"] == pytest.approx(sign * 10 ** (-0.4 * (cand["magpsf"] - 31.4)))
        assert row["mjd"] == pytest.approx(cand["jd"] - 2400000.5)
        assert row["cutoutScience"] == record["cutoutScience"]["stampData"]
        assert row["cutoutDifference"] == record["cutoutDifference"]["stampData"]

        detections = row["detections"]
        assert detections[0]["candid"] == record["candid"] and not detections[0]["from_history"]
        expected = {p["candid"] for p in prv if p["candid"] is not None and p["magpsf"] is not None}
        assert {d["candid"] for d in detections[1:]} == expected
        assert all(d["from_history"] and d["alert_candid"] == record["candid"] for d in detections[1:])
        assert all(d["objectId"] == record["objectId"] for d in detections + row["non_detections"])
        kinds = [n["kind"] for n in row["non_detections"]]
        assert kinds.count(schema.UPPER_LIMIT) == sum(
            p["candid"] is None and p["diffmaglim"] is not None for p in prv)
        kept = len(detections) - 1 + len(row["non_detections"])
        assert kept + row["n_dropped_points"] == len(prv) + len(fp)
    assert versions == {"3.2", "3.3", "3.5", "4.02"}


def test_ztf_known_night_and_provenance(ztf_v402):
    (row,) = decode([ztf_v402.read_bytes()])
    # jd 2460736.677 = 2025-03-02 04:15 UTC = evening of 2025-03-01 at Palomar.
    assert row["night"] == 20250301
    assert all(d["night"] <= 20250301 for d in row["detections"])
    assert (row["topic"], row["partition"], row["offset"], row["key"]) == ("alerts", 3, 100, b"k0")
    assert row["kafka_timestamp"] == TIMESTAMP and row["ingest_batch_id"] == 7
    assert row["raw"] is None


def test_ztf_forced_photometry_converted_to_njy(ztf_v402):
    _, (record,) = read_container(ztf_v402)
    (row,) = decode([ztf_v402.read_bytes()])
    forced = {n["jd"]: n for n in row["non_detections"] if n["kind"] == schema.FORCED}
    valid = [p for p in record["fp_hists"] if p["forcediffimflux"] not in (None, -99999.0)]
    assert len(forced) == len(valid) == 14
    for point in valid:
        out = forced[point["jd"]]
        scale = 10 ** (-0.4 * (point["magzpsci"] - 31.4))
        assert out["psfFlux"] == pytest.approx(point["forcediffimflux"] * scale)
        assert out["psfFluxErr"] == pytest.approx(point["forcediffimfluxunc"] * scale)
        assert out["band"] == {1: "g", 2: "r", 3: "i"}[point["fid"]]
        if out["psfFlux"] > 0:
            assert out["magpsf"] == pytest.approx(31.4 - 2.5 * math.log10(out["psfFlux"]))
        else:
            assert out["magpsf"] is None


def test_ztf_upper_limits_keep_diffmaglim(ztf_v402):
    _, (record,) = read_container(ztf_v402)
    (row,) = decode([ztf_v402.read_bytes()])
    limits = {n["jd"]: n for n in row["non_detections"] if n["kind"] == schema.UPPER_LIMIT}
    expected = [p for p in record["prv_candidates"] if p["candid"] is None]
    assert len(limits) == len(expected) == 10
    for point in expected:
        out = limits[point["jd"]]
        assert out["diffmaglim"] == pytest.approx(point["diffmaglim"])
        assert out["psfFluxErr"] == pytest.approx(10 ** (-0.4 * (point["diffmaglim"] - 31.4)) / 5)
        assert out["psfFlux"] is None and out["alert_candid"] == record["candid"]


def test_ztf_invalid_history_points_are_dropped_and_counted(ztf_v402):
    writer_schema, (record,) = read_container(ztf_v402)
    detections = [p for p in record["prv_candidates"] if p["candid"] is not None]
    detections[0]["magpsf"] = None
    detections[1]["magpsf"] = float("nan")
    record["fp_hists"][0]["forcediffimflux"] = -99999.0
    (row,) = decode([container(writer_schema, [record])])
    assert row["quarantine_reason"] is None
    assert row["n_dropped_points"] == 3
    assert len(row["detections"]) == 1 + len(detections) - 2
    assert detections[0]["candid"] not in {d["candid"] for d in row["detections"]}
    assert all(d["magpsf"] is not None and not math.isnan(d["magpsf"]) for d in row["detections"])


def test_deflate_container_decodes_like_the_original(ztf_v402):
    writer_schema, (record,) = read_container(ztf_v402)
    original, deflated = decode([ztf_v402.read_bytes(), container(writer_schema, [record], codec="deflate")])
    assert deflated["quarantine_reason"] is None
    assert {k: v for k, v in deflated.items() if k != "offset" and k != "key"} == {
        k: v for k, v in original.items() if k != "offset" and k != "key"}



def test_ztf_detections_carry_their_reference_source_and_correction(ztf_files):
    """magnr/sigmagnr/distnr come from each detection's own candidate or prv_candidate, and the
    correction (lenga.curves.correction, checked against ALeRCE in test_correction) is applied to
    them: corrected magnitudes exactly where distnr < 1.4, with the sign of isdiffpos."""
    rows = decode([p.read_bytes() for p in ztf_files])
    n_corrected = n_stellar = n_detections = 0
    for path, row in zip(ztf_files, rows, strict=True):
        _, (record,) = read_container(path)
        sources = {p["candid"]: p for p in [record["candidate"], *(record["prv_candidates"] or [])]
                   if p.get("candid") is not None}
        for detection in row["detections"]:
            source = sources[detection["candid"]]
            for name in ("magnr", "sigmagnr", "distnr"):
                assert detection[name] == pytest.approx(source[name]), (path, name)
            corrected = source["distnr"] < 1.4
            assert detection["corrected"] is corrected
            sign = 1.0 if source["isdiffpos"] in ("t", "1") else -1.0
            expected = corrected_magnitudes([source["magpsf"]], [source["sigmapsf"]], [sign],
                                            [source["magnr"]], [source["sigmagnr"]], [corrected])
            for name, (value,) in zip(("magpsf_corr", "sigmapsf_corr", "sigmapsf_corr_ext"), expected, strict=True):
                assert (detection[name] is None) if not corrected else detection[name] == pytest.approx(value)
            stellar = is_stellar(*([source.get(name, None)] for name in
                                   ("distnr", "distpsnr1", "sgscore1", "chinr", "sharpnr")))
            assert detection["stellar"] is bool(stellar[0])
            n_corrected += corrected
            n_stellar += detection["stellar"]
            n_detections += 1
    assert (n_detections, n_corrected, n_stellar) == (598, 512, 506)


# --- LSST -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "schema_id"), [
    ("25409136044802067.avro", 701), ("3527242430321524769.avro", 703), ("7912941781254298.avro", 900)])
def test_lsst_wire_format(shared_data, name, schema_id):
    value = (shared_data / "lsst/boom" / name).read_bytes()
    assert value[0] == 0 and int.from_bytes(value[1:5], "big") == schema_id
    record = fastavro.schemaless_reader(io.BytesIO(value[5:]), official_schema(shared_data, schema_id))
    source = record["diaSource"]
    (row,) = decode([value])
    assert row["quarantine_reason"] is None
    assert row["survey"] == "lsst" and row["schemavsn"] == f"{schema_id // 100}.{schema_id % 100}"
    assert row["objectId"] == str(source["diaObjectId"]) and row["diaObjectId"] == source["diaObjectId"]
    assert row["candid"] == source["diaSourceId"]
    assert row["alertId"] == record.get("alertId", record.get("diaSourceId"))
    assert (row["mjd"], row["ra"], row["dec"], row["band"]) == (
        source["midpointMjdTai"], source["ra"], source["dec"], source["band"])
    assert row["fid"] is None
    assert row["psfFlux"] == pytest.approx(source["psfFlux"])
    assert row["isdiffpos"] == (source["psfFlux"] > 0)
    assert row["magpsf"] == pytest.approx(31.4 - 2.5 * math.log10(abs(source["psfFlux"])))
    assert row["sigmapsf"] == pytest.approx(1.0857362 * source["psfFluxErr"] / abs(source["psfFlux"]))
    assert row["reliability"] == pytest.approx(source["reliability"]) if source["reliability"] is not None else True
    assert row["n_prv_detections"] == len(record["prvDiaSources"] or [])
    assert row["n_forced"] == len(record["prvDiaForcedSources"] or [])
    assert row["n_prv_non_detections"] == len(record.get("prvDiaNondetectionLimits") or [])
    assert len(row["detections"]) == 1 + row["n_prv_detections"]
    assert row["cutoutScience"] == record["cutoutScience"]
    assert row["cutoutScience"][:6] == b"SIMPLE"


def test_lsst_night_at_cerro_pachon(shared_data):
    # boom v7.1 alert: MJD 57454.329 = 2016-03-07 07:54 UTC = 03:11 local, night of 2016-03-06.
    (row,) = decode([(shared_data / "lsst/boom/25409136044802067.avro").read_bytes()])
    assert row["night"] == 20160306
    forced = [n for n in row["non_detections"] if n["kind"] == schema.FORCED]
    assert len(forced) == 3 and all(n["jd"] == pytest.approx(n["mjd"] + 2400000.5) for n in forced)


def test_fink_v9_containers_with_solar_system_alerts(shared_data):
    files = sorted((shared_data / "lsst/fink-broker-rubin-v9_0").glob("*.avro"))
    rows = decode([p.read_bytes() for p in files])
    n_sso = 0
    for path, row in zip(files, rows, strict=True):
        writer_schema, (record,) = read_container(path)
        assert writer_schema["name"] == "topLevelRecord"
        source = record["diaSource"]
        assert row["quarantine_reason"] is None and row["survey"] == "lsst" and row["schemavsn"] == "9.0"
        assert row["candid"] == record["diaSourceId"] == source["diaSourceId"]
        if source["diaObjectId"]:
            assert row["objectId"] == str(source["diaObjectId"]) and row["diaObjectId"] == source["diaObjectId"]
        else:
            n_sso += 1
            assert row["objectId"] == f"sso:{record['ssSource']['ssObjectId']}" and row["diaObjectId"] is None
        assert row["n_prv_detections"] == len(record["prvDiaSources"] or [])
        assert len(row["detections"]) == 1 + row["n_prv_detections"]
        assert all(d[name] is None for d in row["detections"] for name in
                   ("magnr", "sigmagnr", "distnr", "corrected", "magpsf_corr", "sigmapsf_corr", "sigmapsf_corr_ext",
                    "stellar"))
        assert row["night"] == 20250905  # MJD 60924.33 = 2025-09-06 ~08 UTC at Cerro Pachón
    assert n_sso == 4


def test_ampel_multi_record_container_quarantined_then_split(shared_data):
    value = (shared_data / "lsst/ampel-lsst/schema_701.avro").read_bytes()
    _, records = read_container(shared_data / "lsst/ampel-lsst/schema_701.avro")
    (row,) = decode([value])
    assert row["quarantine_reason"] == "container holds 10 records, expected 1"
    assert row["raw"] == value and row["detections"] is None

    parts = split_container(value)
    assert len(parts) == 10
    rows = decode(parts)
    assert [r["quarantine_reason"] for r in rows] == [None] * 10
    assert [r["candid"] for r in rows] == [r["diaSource"]["diaSourceId"] for r in records]
    assert [r["objectId"] for r in rows] == [str(r["diaSource"]["diaObjectId"]) for r in records]
    assert [r["n_forced"] for r in rows] == [len(r["prvDiaForcedSources"] or []) for r in records]
    assert all(r["schemavsn"] == "7.1" and r["cutoutScience"] is None for r in rows)


def test_split_container_leaves_single_alerts_and_garbage_alone(ztf_v402):
    value = ztf_v402.read_bytes()
    assert split_container(value) == [value]
    assert split_container(b"not avro") == [b"not avro"]
    assert split_container(value[: len(value) // 2]) == [value[: len(value) // 2]]


def _conform(value, avro_type, named: dict):
    """Coerce a parquet row (Fink wrote some longs as doubles) to the official Avro types."""
    if isinstance(avro_type, str) and avro_type in named:
        avro_type = named[avro_type]
    if value is None:
        return None
    if isinstance(avro_type, list):
        return _conform(value, next(t for t in avro_type if t != "null"), named)
    if isinstance(avro_type, dict):
        if avro_type["type"] == "record":
            named[avro_type["name"]] = avro_type
            return {f["name"]: _conform(value.get(f["name"]), f["type"], named) for f in avro_type["fields"]}
        if avro_type["type"] == "array":
            return [_conform(v, avro_type["items"], named) for v in value]
        avro_type = avro_type["type"]
    return int(value) if avro_type in ("int", "long") else value


@pytest.mark.parametrize(("relative", "schema_id"), [
    ("fink-science-rubin-v10_0/rubin_sample_data_10_0.parquet", 1000),
    ("fink-broker-or4-lsst7_1/part-00000-96629e4a-60d4-442b-a338-687a16b8a35c-c000.snappy.parquet", 701),
])
def test_parquet_alerts_reencoded_to_wire_format(shared_data, relative, schema_id):
    official = official_schema(shared_data, schema_id)
    records = [_conform(row, official, {}) for row in pq.read_table(shared_data / "lsst" / relative).to_pylist()]
    rows = decode([wire(schema_id, official, r) for r in records])
    assert [r["quarantine_reason"] for r in rows] == [None] * len(records)
    for record, row in zip(records, rows, strict=True):
        source = record["diaSource"]
        assert row["schemavsn"] == f"{schema_id // 100}.{schema_id % 100}"
        expected_object = str(source["diaObjectId"]) if source["diaObjectId"] else f"sso:{source['ssObjectId']}"
        assert row["objectId"] == expected_object and row["candid"] == source["diaSourceId"]
        assert row["mjd"] == source["midpointMjdTai"] and row["band"] == source["band"]
        assert row["psfFlux"] == pytest.approx(source["psfFlux"])
        prv = record["prvDiaSources"] or []
        assert row["n_prv_detections"] == len(prv)
        assert row["n_forced"] == len(record["prvDiaForcedSources"] or [])
        assert row["n_prv_non_detections"] == len(record.get("prvDiaNondetectionLimits") or [])
        assert {d["candid"] for d in row["detections"][1:]} == {
            p["diaSourceId"] for p in prv if p["psfFlux"] is not None and not math.isnan(p["psfFlux"])}
        forced = sorted(n["psfFlux"] for n in row["non_detections"] if n["kind"] == schema.FORCED)
        expected = sorted(p["psfFlux"] for p in record["prvDiaForcedSources"] or []
                          if p["psfFlux"] is not None and not math.isnan(p["psfFlux"]))
        np.testing.assert_allclose(forced, expected, rtol=1e-6)
    assert sum(r["n_prv_detections"] for r in rows) > 0


def test_alert_packet_sample_alerts(shared_data):
    samples = sorted((shared_data / "lsst/alert_packet-schema").glob("*/*/sample_data/fakeAlert.avro"))
    assert len(samples) == 9
    rows = decode([p.read_bytes() for p in samples])
    for path, row in zip(samples, rows, strict=True):
        major = int(path.parts[-4])
        version = f"{major}.{path.parts[-3]}"
        _, (record,) = read_container(path)
        assert row["survey"] == "lsst"
        if major == 7:  # the v7 samples carry MJD 1.48e9
            assert row["quarantine_reason"] == f"time out of range: mjd={record['diaSource']['midpointMjdTai']}"
        else:
            assert row["quarantine_reason"] is None and row["schemavsn"] == version
            # synthetic samples: top-level diaSourceId (alert id) differs from the diaSource's own
            assert row["candid"] == record["diaSource"]["diaSourceId"]
            assert row["alertId"] == record["diaSourceId"]


# --- bad input ------------------------------------------------------------------------------------


def test_bad_messages_quarantined_beside_valid_ones(shared_data, ztf_v402):
    good_ztf = ztf_v402.read_bytes()
    good_lsst = (shared_data / "lsst/boom/7912941781254298.avro").read_bytes()
    writer_schema, (record,) = read_container(ztf_v402)
    record["candidate"]["ra"] = float("nan")
    nan_ra = container(writer_schema, [record])
    not_an_alert = container({"type": "record", "name": "demo.reading", "fields": [{"name": "x", "type": "int"}]},
                             [{"x": 1}])
    random_bytes = b"\x17" + np.random.default_rng(0).bytes(500)
    values = [good_ztf, b"", None, random_bytes, good_ztf[: len(good_ztf) // 2], not_an_alert,
              b"\x00" + (4242).to_bytes(4, "big") + good_lsst[5:], nan_ra,
              good_lsst[: len(good_lsst) // 2], good_lsst + b"\x00\x00", good_lsst]
    rows = decode(values)
    reasons = [r["quarantine_reason"] for r in rows]
    assert reasons[0] is None and reasons[-1] is None
    assert reasons[1] == reasons[2] == "empty message"
    assert reasons[3] == "not an Avro container or Confluent wire message"
    assert reasons[4].startswith("truncated Avro: block declares")
    assert reasons[5] == "unknown survey: writer schema 'demo.reading'"
    assert reasons[6] == "unknown LSST schema id 4242"
    assert reasons[7] == "NaN coordinates: ra=nan, dec=-2.798349"
    assert reasons[8].startswith("truncated Avro")
    assert reasons[9] == "schema/field error: 2 bytes left after the record (not an LSST schema 900 alert?)"
    assert [r["survey"] for r in rows] == ["ztf", None, None, None, None, None, None, "ztf", "lsst", "lsst", "lsst"]
    for value, row in zip(values, rows, strict=True):
        if row["quarantine_reason"] is None:
            assert row["raw"] is None and row["detections"]
        else:
            assert row["raw"] == value and row["detections"] is None and row["non_detections"] is None
            assert row["objectId"] is None and row["candid"] is None
            # Night at longitude 0 of the Kafka timestamp 2025-03-02 10:00 UTC: before noon, so 03-01.
            assert row["night"] == 20250301
            assert row["offset"] == 100 + values.index(value)


def test_messages_as_python_lists_decode_like_the_arrow_batch(shared_data, ztf_v402):
    """The ingest source hands librdkafka's bytes over as a list (KafkaMessages.from_pydict): the
    rows, quarantine reasons and raw bytes are those of the Arrow path."""
    good_lsst = (shared_data / "lsst/boom/7912941781254298.avro").read_bytes()
    good_ztf = ztf_v402.read_bytes()
    batch = kafka_batch([good_ztf, None, b"\x17junk", good_ztf[:500], good_lsst])
    columns = {name: batch.column(name).to_pylist() for name in batch.schema.names}
    from_lists = decode_messages(KafkaMessages.from_pydict(columns, batch.schema), ingest_batch_id=7)
    from_batch = decode_record_batch(batch, ingest_batch_id=7)
    assert from_lists.schema == from_batch.schema
    # Compared as text: repr() is exact for floats and, unlike ==, equal for NaN (LSST extendedness).
    assert repr(from_lists.to_pylist()) == repr(from_batch.to_pylist())
    assert from_lists.column("raw").to_pylist() == [None, None, b"\x17junk", good_ztf[:500], None]


def test_empty_batch_and_missing_provenance_columns(ztf_v402):
    empty = decode_record_batch(kafka_batch([]))
    assert empty.num_rows == 0 and empty.schema == schema.DECODED
    only_values = pa.RecordBatch.from_pydict({"value": pa.array([ztf_v402.read_bytes()], pa.binary())})
    (row,) = decode_record_batch(only_values).to_pylist()
    assert row["quarantine_reason"] is None and row["topic"] is None and row["kafka_timestamp"] is None


# --- schemas --------------------------------------------------------------------------------------


def test_table_schemas_documented_and_consistent():
    for name, table in schema.TABLES.items():
        docs = schema.column_descriptions(table)
        assert all(docs.values()), name
        assert table.field(schema.PARTITION_COLUMN).type == pa.int32()
        assert set(schema.TABLE_KEYS[name]) <= set(table.names)
    decoded = set(schema.DECODED.names)
    assert set(schema.ALERTS.names) <= decoded
    assert set(schema.QUARANTINE.names) - {"reason", "stage"} <= decoded
    assert schema.DECODED.field("detections").type.value_type == pa.struct(list(schema.DETECTIONS))
    assert schema.DECODED.field("non_detections").type.value_type == pa.struct(list(schema.NON_DETECTIONS))
