"""Fuzzing the decoder: damaged ZTF and LSST messages never raise, never hang, and never change
how the clean messages beside them decode (lenga.sim.fuzz), plus one regression test per failure
class the fuzzing found. ``./spark-submit.sh fuzz --cases 100000`` runs the same check at scale."""

from __future__ import annotations

import io
import json
import math
import random

import fastavro
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lenga import decode
from lenga.decode import KafkaMessages, decode_messages, decode_record_batch, split_container
from lenga.sim import fuzz
from lenga.survey import lsst
from udfs import decode as udfs_decode

#: Cases per hypothesis example (clean seeds are added to each) and examples per test: a few
#: thousand cases in CI, well under a minute.
MAX_MUTANTS = 40
EXAMPLES = 60
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
mutants = st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(fuzz.MUTATIONS), st.integers(0, 2**32)),
                   min_size=MAX_MUTANTS // 2, max_size=MAX_MUTANTS)


def batch(values: list[bytes | None]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"value": pa.array(values, pa.binary())})


def rows(values: list[bytes | None]) -> list[dict]:
    return decode_record_batch(batch(values)).to_pylist()


def assert_contract(seeds: list[fuzz.Seed], references: list[str], picks, order: random.Random) -> None:
    chunk = [fuzz.FuzzCase(fuzz.mutate(seeds[i % len(seeds)], mutation, random.Random(rng_seed)), mutation,
                           i % len(seeds)) for i, mutation, rng_seed in picks]
    chunk += [fuzz.FuzzCase(seeds[i].value, fuzz.CLEAN, i) for i in order.sample(range(len(seeds)), 3)]
    order.shuffle(chunk)
    report = fuzz.check(chunk, references)
    assert report.exceptions == [] and report.wrong_row_counts == 0
    assert report.rejected_without_reason == [] and report.valid_lost == []
    assert report.accepted + report.rejected == len(chunk)


@pytest.fixture(scope="module")
def simulated() -> tuple[list[fuzz.Seed], list[str]]:
    seeds = fuzz.simulated_seeds()
    return seeds, fuzz.reference_rows(seeds)


@pytest.fixture(scope="module")
def real(shared_data) -> tuple[list[fuzz.Seed], list[str]]:
    seeds = fuzz.real_seeds(shared_data, every=5)
    return seeds, fuzz.reference_rows(seeds)


@pytest.mark.timeout(120)
@FUZZ_SETTINGS
@given(picks=mutants, order=st.randoms(use_true_random=False))
def test_fuzzed_simulated_messages(simulated, picks, order):
    assert_contract(*simulated, picks, order)


@pytest.mark.timeout(120)
@FUZZ_SETTINGS
@given(picks=mutants, order=st.randoms(use_true_random=False))
def test_fuzzed_real_messages(real, picks, order):
    assert_contract(*real, picks, order)


def test_mutations_are_deterministic_and_all_reached():
    seeds = fuzz.simulated_seeds()
    first, again = fuzz.cases(seeds, 200, 9), fuzz.cases(seeds, 200, 9)
    assert [c.value for c in first] == [c.value for c in again]
    assert {c.mutation for c in first} == {*fuzz.MUTATIONS, fuzz.CLEAN}
    assert sum(c.value != seeds[c.seed].value for c in first if c.mutation != fuzz.CLEAN) > 150


# --- regression tests: one per failure class ------------------------------------------------------


@pytest.fixture(scope="module")
def ztf_alert(shared_data) -> bytes:
    return (shared_data / "ztf/boom/2695378462115010012.avro").read_bytes()


@pytest.fixture(scope="module")
def seed(ztf_alert) -> fuzz.Seed:
    return fuzz.Seed.parse(ztf_alert)


def test_damaged_header_key_is_quarantined_beside_valid_alerts(ztf_alert):
    """The issue's reproduction: a non-UTF-8 "avro.schema" key raised UnicodeDecodeError from
    fastavro and lost the whole batch."""
    bad = bytearray(ztf_alert)
    bad[8:12] = b"\xc6\x90\xad\xdd"
    good_alone = rows([ztf_alert])[0]
    first, broken, last = rows([ztf_alert, bytes(bad), ztf_alert])
    assert broken["quarantine_reason"].startswith("corrupt Avro header: UnicodeDecodeError")
    assert broken["raw"] == bytes(bad) and broken["survey"] is None
    assert repr(first) == repr(last) == repr(good_alone)


@pytest.mark.parametrize("key", [b"avro.schema", b"avro.codec"])
def test_every_meta_key_damaged(seed, key):
    start, end = next((s, e) for s, e in seed.header_keys if seed.value[s:e] == key)
    bad = seed.value[:start] + b"\xff" * (end - start) + seed.value[end:]
    (row,) = rows([bad])
    assert row["quarantine_reason"].startswith("corrupt Avro header: UnicodeDecodeError")


def test_codec_that_is_not_text(seed):
    value = fuzz._container(seed.schema_json, seed.record_bytes(), codec=b"\xff\xfe")
    (row,) = rows([value])
    assert row["quarantine_reason"] == "unsupported Avro codec '\\\\xff\\\\xfe'"


@pytest.mark.parametrize(("count", "reason"), [
    (-2, "corrupt Avro block: negative record count -2"),
    (2**62, "container holds 4611686018427387904 records, expected 1"),
])
def test_block_counts_out_of_range(seed, count, reason):
    body = seed.record_bytes()
    value = seed.value[:seed.body_start] + fuzz._varint(count) + fuzz._varint(len(body)) + body + seed.value[-16:]
    assert rows([value])[0]["quarantine_reason"] == reason


NULL_ARRAY_ALERT = {"type": "record", "name": "ztf.alert", "fields": [
    {"name": "objectId", "type": "string"}, {"name": "candid", "type": "long"},
    {"name": "prv_candidates", "type": {"type": "array", "items": "null"}}]}
EMPTY_RECORD = {"type": "record", "name": "lenga.nothing", "fields": []}


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("schema", "count", "body"), [
    (NULL_ARRAY_ALERT, 1, b"\x10ZTF00aaa\x02" + fuzz._varint(2**62) + b"\x00"),  # 2^62 nulls in an array
    (EMPTY_RECORD, 2**62, b""),  # 2^62 records of no bytes in a block
])
def test_zero_byte_values_with_huge_counts_do_not_hang(schema, count, body):
    """A null or a record without fields takes no bytes: a damaged count of 2^62 made readers
    (fastavro, arrow-avro, split_container) loop or allocate instead of running out of bytes."""
    value = fuzz._container(json.dumps(schema).encode(), body, count=count)
    assert split_container(value) == [value]
    (row,) = rows([value])
    assert "values of zero bytes" in row["quarantine_reason"]


def test_rust_panic_quarantines_only_its_message(monkeypatch, ztf_alert, seed):
    """arrow-avro's panics surface as pyo3's PanicException, a BaseException: it escaped every
    ``except Exception``."""
    PanicException = type("PanicException", (BaseException,), {})  # noqa: N806 - pyo3's name
    poisoned = fuzz.mutate(seed, "non_finite_field", random.Random(3))
    read_ztf = decode._read_ztf

    def panicking(writer, bodies):
        if any(body in poisoned for body in bodies):
            raise PanicException("index out of bounds")
        return read_ztf(writer, bodies)

    monkeypatch.setattr(decode, "_read_ztf", panicking)
    good, bad = rows([ztf_alert, poisoned])
    assert good["quarantine_reason"] is None
    assert bad["quarantine_reason"] == "decoder panic: PanicException: index out of bounds"
    assert decode.message_error(PanicException()) and not decode.message_error(KeyboardInterrupt())


def test_implausible_history_times_are_dropped_not_partitioned(ztf_alert):
    reader = fastavro.reader(io.BytesIO(ztf_alert))
    record = next(reader)
    record["prv_candidates"][0]["jd"] = 1e308
    record["prv_candidates"][1]["jd"] = -math.inf
    buffer = io.BytesIO()
    fastavro.writer(buffer, reader.writer_schema, [record])
    (clean,), (row,) = rows([ztf_alert]), rows([buffer.getvalue()])
    assert row["quarantine_reason"] is None
    assert row["n_dropped_points"] == clean["n_dropped_points"] + 2
    nights = [p["night"] for p in row["detections"] + row["non_detections"]]
    assert None not in nights and min(nights) > 20000000


def test_unknown_confluent_ids_are_not_cached():
    cached = lsst._parsed_schema.cache_info().currsize
    assert [lsst.wire_schema(i) for i in (4242, 2**32 - 1, 0)] == [None] * 3
    assert lsst._parsed_schema.cache_info().currsize == cached


# --- the stream's last line of defence ------------------------------------------------------------


@pytest.fixture
def decoder_bug(monkeypatch):
    """decode_messages raising UnicodeDecodeError for any chunk holding a b"poison" message."""

    def buggy(messages, batch_id=None):
        if any(b"poison" in (v or b"") for v in messages.values):
            raise UnicodeDecodeError("utf-8", b"poison", 0, 1, "invalid start byte")
        return decode_messages(messages, batch_id)

    monkeypatch.setattr(udfs_decode, "decode_messages", buggy)


def test_last_line_of_defence_quarantines_only_the_offending_message(decoder_bug, ztf_alert):
    values = [ztf_alert, b"poison", None, ztf_alert]
    (decoded,) = udfs_decode.decode_batches(iter([batch(values)]))
    out = decoded.to_pylist()
    assert [r["quarantine_reason"] for r in out] == [
        None, "decoder error: UnicodeDecodeError: 'utf-8' codec can't decode byte 0x70 in position 0: "
              "invalid start byte", "empty message", None]
    assert out[1]["raw"] == b"poison" and out[1]["night"] is None
    assert repr(out[0]) == repr(out[3]) == repr(rows([ztf_alert])[0])
    assert decoded.schema == decode_record_batch(batch(values[:1])).schema


def test_ingest_survives_a_decoder_bug(decoder_bug, ztf_alert, tmp_path):
    ingest = udfs_decode.decode_and_write(str(tmp_path / "alerts"), str(tmp_path / "staging"), 4)
    messages = KafkaMessages([ztf_alert, b"poison"], {"offset": pa.array([10, 11], pa.int64())})
    out = pa.Table.from_batches(list(ingest(iter([messages]))))
    message_rows = out.filter(pc.is_null(out[udfs_decode.FILE_TABLE])).to_pylist()
    assert [(r["offset"], r["quarantine_reason"] is None) for r in message_rows] == [(10, True), (11, False)]
    assert message_rows[1]["quarantine_reason"].startswith("decoder error: UnicodeDecodeError")
    assert set(out[udfs_decode.FILE_TABLE].drop_null().to_pylist()) == {"alerts", "detections", "non_detections"}


def test_empty_chunk_and_kafka_night_of_fallback_rows(decoder_bug):
    assert udfs_decode.decode_or_quarantine(KafkaMessages([])).num_rows == 0
    stamp = pa.array([1_741_000_000_000_000], pa.timestamp("us", tz="UTC"))  # 2025-03-03 11:06 UTC
    (row,) = udfs_decode.decode_or_quarantine(KafkaMessages([b"poison"], {"timestamp": stamp}), 3).to_pylist()
    assert (row["ingest_batch_id"], row["night"], row["survey"]) == (3, 20250302, None)
