"""Damaged alert messages for fuzzing the decoder, deterministic from a seed.

:func:`mutate` turns one valid message (a :class:`Seed`) into what a faulty producer, a broken
disk or a hostile client could send: flipped bits, cut or grown bytes, huge declared lengths and
counts, foreign or damaged writer schemas, wrong Confluent schema ids, unsupported codecs, and
records that are well formed but carry NaN/inf/huge values or empty or very long histories.
:func:`cases` draws any number of them (plus unmodified seeds) from a seed; :func:`check` decodes
a chunk and counts what the decoder contract forbids (an exception, a row count other than the
message count, a rejection without reason, a clean message decoded differently than alone);
:func:`run` does that for N cases with every chunk in a child process under a deadline, so a hang
is counted instead of stopping the run. Used by tests/unit/test_decode_fuzz.py, tests/e2e/test_stream.py
and ``./spark-submit.sh fuzz`` (jobs/fuzz.py); docs/robustness.md has the figures.
"""

from __future__ import annotations

import io
import json
import math
import multiprocessing
import random
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import fastavro
import pyarrow as pa
from fastavro.read import HEADER_SCHEMA
from fastavro.schema import to_parsing_canonical_form

from lenga.decode import CONTAINER_MAGIC, WIRE_HEADER_BYTES, decode_record_batch
from lenga.sim.night import SimConfig, simulate
from lenga.survey import lsst

#: Name of the "mutation" of an unmodified seed message.
CLEAN = "clean"
#: Every mutation :func:`mutate` knows, in the order :func:`cases` cycles through them.
MUTATIONS = ("bit_flip", "header_bit_flip", "header_key", "truncate", "insert", "delete", "overwrite",
             "random_bytes", "huge_length", "block_framing", "codec", "foreign_schema", "wrong_confluent_id",
             "non_finite_field", "empty_history", "long_history", "record_count")
#: Share of :func:`cases` that are unmodified seeds (their rows must equal a clean decode).
CLEAN_SHARE = 0.15
#: Varints a damaged length or count can hold: huge, negative, zero, the largest long.
HUGE_VARINTS = (2**62, -(2**62), 2**31, -1, 0, 2**63 - 1, -(2**63), 10**9)
#: Values a damaged numeric field can hold.
NON_FINITE = (math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324)
HUGE_INTS = (2**31 - 1, -(2**31), 0, -1)
#: Known LSST schema ids of other versions, and ids no registry has.
CONFLUENT_IDS = (701, 703, 900, 1000, 1100, 0, 9999, 2**32 - 1)
#: History arrays of each survey's record.
HISTORY_FIELDS = ("prv_candidates", "fp_hists", "prvDiaSources", "prvDiaForcedSources", "prvDiaNondetectionLimits")
LONG_HISTORY = (100, 500)
_HEADER = fastavro.parse_schema(HEADER_SCHEMA)
_FOREIGN_FIELDS = [{"name": "objectId", "type": "string"}, {"name": "candid", "type": "long"}]
#: Writer schemas a message may claim that are not (or not quite) an alert schema: a foreign record,
#: alert names with foreign layouts, and layouts whose values take no bytes (counts then bound nothing).
FOREIGN_SCHEMAS = (
    {"type": "record", "name": "demo.reading", "fields": [{"name": "x", "type": "int"}]},
    {"type": "record", "name": "alert", "namespace": "ztf", "fields": _FOREIGN_FIELDS},
    {"type": "record", "name": "ztf.alert", "fields": [{"name": "candidate", "type": "double"}, *_FOREIGN_FIELDS]},
    {"type": "record", "name": "lsst.v9_0.alert", "fields": [{"name": "diaSource", "type": "long"}]},
    {"type": "record", "name": "topLevelRecord", "fields": [{"name": "diaSource", "type": "string"}]},
    {"type": "record", "name": "ztf.alert", "fields": [
        {"name": "objectId", "type": "string"}, {"name": "candid", "type": "long"},
        {"name": "prv_candidates", "type": {"type": "array", "items": "null"}}]},
    {"type": "record", "name": "lenga.nothing", "fields": []},
    {"type": "record", "name": "lenga.chain", "fields": [
        {"name": "next", "type": ["null", "lenga.chain"]}]},
)


@dataclass(frozen=True)
class Seed:
    """A valid message and what its mutations need: its framing and its decoded record."""

    value: bytes
    #: The writer schema (container) or the registry schema (wire) the record is encoded with.
    writer_schema: dict
    record: dict
    #: Offset of the first block (container) or of the record (wire, after the 5-byte header).
    body_start: int
    #: The writer schema's JSON (container) or the registry schema's canonical form (wire).
    schema_json: bytes
    #: Confluent schema id of a wire message; None for a container.
    schema_id: int | None = None
    #: (start, end) offsets of the container header's meta keys (wire: the 5-byte header).
    header_keys: tuple[tuple[int, int], ...] = ((0, WIRE_HEADER_BYTES),)

    @classmethod
    def parse(cls, value: bytes) -> Seed:
        """The seed of a valid container or Confluent wire message (raises on anything else)."""
        if value.startswith(CONTAINER_MAGIC):
            reader = fastavro.reader(io.BytesIO(value))
            record = next(reader)
            stream = io.BytesIO(value)
            header = fastavro.schemaless_reader(stream, _HEADER)
            return cls(value, fastavro.parse_schema(reader.writer_schema), record, stream.tell(),
                       header["meta"]["avro.schema"], header_keys=_meta_key_spans(value))
        schema_id = int.from_bytes(value[1:WIRE_HEADER_BYTES], "big")
        parsed = lsst.wire_schema(schema_id)
        record = fastavro.schemaless_reader(io.BytesIO(value[WIRE_HEADER_BYTES:]), parsed)
        return cls(value, parsed, record, WIRE_HEADER_BYTES, to_parsing_canonical_form(parsed).encode(), schema_id)

    def encode(self, record: dict) -> bytes:
        """``record`` framed like this seed (same writer schema, or same schema id)."""
        buffer = io.BytesIO()
        if self.schema_id is None:
            fastavro.writer(buffer, self.writer_schema, [record], sync_marker=self.value[-16:])  # not a random one
        else:
            buffer.write(self.value[:WIRE_HEADER_BYTES])
            fastavro.schemaless_writer(buffer, self.writer_schema, record)
        return buffer.getvalue()

    def record_bytes(self) -> bytes:
        """The record's Avro bytes without any framing."""
        if self.schema_id is not None:
            return self.value[WIRE_HEADER_BYTES:]
        stream = io.BytesIO(self.value[self.body_start:])
        fastavro.schemaless_reader(stream, "long")
        size = fastavro.schemaless_reader(stream, "long")
        return stream.read(size)


def _meta_key_spans(value: bytes) -> tuple[tuple[int, int], ...]:
    """Offsets of the keys of a container header's meta map (Avro spec: magic, then map blocks of
    ``count``, then ``key, value`` pairs of length-prefixed bytes)."""
    stream = io.BytesIO(value)
    stream.seek(len(CONTAINER_MAGIC))
    spans = []
    while count := abs(fastavro.schemaless_reader(stream, "long")):
        for _ in range(count):
            key_length = fastavro.schemaless_reader(stream, "long")
            spans.append((stream.tell(), stream.tell() + key_length))
            stream.seek(key_length, io.SEEK_CUR)
            stream.seek(fastavro.schemaless_reader(stream, "long"), io.SEEK_CUR)
    return tuple(spans)


@dataclass(frozen=True)
class FuzzCase:
    value: bytes
    mutation: str
    #: Index of the seed it was made from.
    seed: int


def _varint(value: int) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, "long", value)
    return buffer.getvalue()


def _container(schema_json: bytes, body: bytes, count: int = 1, codec: bytes = b"null") -> bytes:
    """A container with one block of ``count`` records holding ``body``, framed by hand so that the
    schema, codec, count and bytes need not agree."""
    sync = b"lenga.fuzzsync.1"
    header = io.BytesIO()
    fastavro.schemaless_writer(header, _HEADER, {"magic": CONTAINER_MAGIC, "sync": sync,
                                                 "meta": {"avro.schema": schema_json, "avro.codec": codec}})
    return header.getvalue() + _varint(count) + _varint(len(body)) + body + sync


def _flip_bits(value: bytes, rng: random.Random, start: int, end: int) -> bytes:
    out = bytearray(value)
    for _ in range(rng.randint(1, 8)):
        position = rng.randrange(start, end)
        out[position] ^= 1 << rng.randrange(8)
    return bytes(out)


def _numeric_paths(record: dict, prefix: tuple = ()) -> Iterator[tuple]:
    """Paths (keys and list indexes) of the numeric leaves of a record."""
    items = record.items() if isinstance(record, dict) else enumerate(record)
    for key, value in items:
        if isinstance(value, dict | list):
            yield from _numeric_paths(value, (*prefix, key))
        elif isinstance(value, float | int) and not isinstance(value, bool):
            yield (*prefix, key)


def _replaced(record, path: tuple, value):
    """A copy of ``record`` with the leaf at ``path`` set to ``value`` (only that branch copied)."""
    head, *rest = path
    out = dict(record) if isinstance(record, dict) else list(record)
    out[head] = _replaced(out[head], tuple(rest), value) if rest else value
    return out


def _history_fields(seed: Seed) -> list[str]:
    return [name for name in HISTORY_FIELDS if name in seed.record]


def mutate(seed: Seed, mutation: str, rng: random.Random) -> bytes:
    """A damaged copy of ``seed.value`` (see :data:`MUTATIONS`); the same ``rng`` state gives the same bytes."""
    value = seed.value
    n = len(value)
    if mutation == "bit_flip":
        return _flip_bits(value, rng, 0, n)
    if mutation == "header_bit_flip":  # the container header or the Confluent header
        return _flip_bits(value, rng, 0, seed.body_start)
    if mutation == "header_key":  # four random bytes in a key of the meta map, or in the Confluent header
        start, end = rng.choice(seed.header_keys)
        position = rng.randrange(start, max(start + 1, end - 3))
        return value[:position] + rng.randbytes(4) + value[position + 4:]
    if mutation == "truncate":
        return value[:rng.randrange(n)]
    if mutation == "insert":
        position = rng.randrange(n + 1)
        return value[:position] + rng.randbytes(rng.randint(1, 64)) + value[position:]
    if mutation == "delete":
        position = rng.randrange(n)
        return value[:position] + value[position + rng.randint(1, 64):]
    if mutation == "overwrite":
        position = rng.randrange(n)
        length = rng.randint(1, 256)
        return value[:position] + rng.randbytes(length) + value[position + length:]
    if mutation == "random_bytes":  # sometimes behind a valid magic, to reach the parsers
        prefix = rng.choice([b"", CONTAINER_MAGIC, b"\x00" + (900).to_bytes(4, "big")])
        return prefix + rng.randbytes(rng.randint(0, 3000))
    if mutation == "huge_length":  # a huge or negative varint where one byte was
        position = rng.randrange(n)
        return value[:position] + _varint(rng.choice(HUGE_VARINTS)) + value[position + 1:]
    if mutation == "block_framing":
        if seed.schema_id is not None:  # the record's first varint (an array count or a length)
            return value[:WIRE_HEADER_BYTES] + _varint(rng.choice(HUGE_VARINTS)) + value[WIRE_HEADER_BYTES + 1:]
        body = seed.record_bytes()
        count, size = rng.choice([(rng.choice(HUGE_VARINTS), len(body)), (1, rng.choice(HUGE_VARINTS))])
        return value[:seed.body_start] + _varint(count) + _varint(size) + body + value[-16:]
    if mutation == "codec":  # deflate over bytes that are not deflated, or a codec nobody supports
        codec = rng.choice([b"snappy", b"deflate", b"zstandard", rng.randbytes(6), b""])
        return _container(seed.schema_json, seed.record_bytes(), codec=codec)
    if mutation == "foreign_schema":
        schema = json.dumps(rng.choice(FOREIGN_SCHEMAS)).encode()
        body = rng.choice([seed.record_bytes(), rng.randbytes(rng.randint(0, 200)), b""])
        return _container(schema, body, count=rng.choice([1, 1, 2**62, 5]))
    if mutation == "wrong_confluent_id":
        return b"\x00" + rng.choice(CONFLUENT_IDS).to_bytes(4, "big") + seed.record_bytes()
    if mutation == "non_finite_field":
        record = seed.record
        paths = list(_numeric_paths(record))
        for path in rng.sample(paths, min(len(paths), rng.randint(1, 5))):
            current = _leaf(record, path)
            record = _replaced(record, path, rng.choice(NON_FINITE if isinstance(current, float) else HUGE_INTS))
        return seed.encode(record)
    if mutation == "empty_history":
        return seed.encode({**seed.record, **{name: rng.choice([None, []]) for name in _history_fields(seed)}})
    if mutation == "long_history":
        record = dict(seed.record)
        for name in _history_fields(seed):
            items = record[name] or []
            if items:  # the union branch named (fastavro's tuple notation): validating 1000 items is slow
                record[name] = ("array", [items[i % len(items)] for i in range(rng.randint(*LONG_HISTORY))])
        return seed.encode(record)
    if mutation == "record_count":  # a container holding no record, or several
        if seed.schema_id is not None:
            return seed.value + seed.record_bytes()
        body = seed.record_bytes()
        copies = rng.choice([0, 2, 3])
        return value[:seed.body_start] + _varint(copies) + _varint(len(body) * copies) + body * copies + value[-16:]
    raise ValueError(f"unknown mutation {mutation!r}; expected one of {MUTATIONS}")


def _leaf(record, path: tuple):
    for key in path:
        record = record[key]
    return record


def cases(seeds: Sequence[Seed], n_cases: int, seed: int | str) -> list[FuzzCase]:
    """``n_cases`` cases drawn from ``seeds``: :data:`CLEAN_SHARE` of them unmodified, the others
    one mutation each, every mutation in turn; the same arguments give the same bytes."""
    rng = random.Random(seed)
    out = []
    for i in range(n_cases):
        index = rng.randrange(len(seeds))
        if rng.random() < CLEAN_SHARE:
            out.append(FuzzCase(seeds[index].value, CLEAN, index))
        else:
            mutation = MUTATIONS[i % len(MUTATIONS)]
            out.append(FuzzCase(mutate(seeds[index], mutation, rng), mutation, index))
    return out


def simulated_seeds(seed: int = 3, n_objects: int = 4) -> list[Seed]:
    """Valid ZTF (containers) and LSST (wire, schemas 9.0 and 10.0) alerts of the simulator."""
    values = [a.value for version in ("9.0", "10.0")
              for a in simulate(SimConfig(seed=seed, n_objects=n_objects, n_nights=1, lsst_schema=version))]
    return [Seed.parse(v) for v in dict.fromkeys(values)]


def real_seeds(shared_data: Path | None, every: int = 1) -> list[Seed]:
    """Every ``every``-th real alert packet under ``shared_data`` (ZTF containers, Fink's LSST
    containers, LSST wire messages, the schema's sample alerts); none without the directory."""
    if shared_data is None or not Path(shared_data).is_dir():
        return []
    root = Path(shared_data)
    paths = [*sorted((root / "ztf").rglob("*.avro"))[::every],
             *sorted((root / "lsst/fink-broker-rubin-v9_0").glob("*.avro"))[::every],
             *sorted((root / "lsst/boom").glob("*.avro")),
             *sorted((root / "lsst/alert_packet-schema").glob("*/*/sample_data/fakeAlert.avro"))]
    return [Seed.parse(p.read_bytes()) for p in paths]


def decode_values(values: Sequence[bytes | None]) -> pa.RecordBatch:
    return decode_record_batch(pa.RecordBatch.from_pydict({"value": pa.array(values, pa.binary())}))


def reference_rows(seeds: Sequence[Seed]) -> list[str]:
    """repr() of each seed's row decoded alone in a batch of clean seeds (repr: NaN equals NaN)."""
    return [repr(row) for row in decode_values([s.value for s in seeds]).to_pylist()]


@dataclass
class Report:
    """What a fuzzing run found; the contract holds when every list is empty."""

    cases: int = 0
    accepted: int = 0
    rejected: int = 0
    clean: int = 0
    #: "ExceptionName: message (mutation)" of each decode that raised.
    exceptions: list[str] = field(default_factory=list)
    #: Chunks that did not finish in time (with their mutations).
    hangs: list[str] = field(default_factory=list)
    rejected_without_reason: list[str] = field(default_factory=list)
    #: Clean messages whose row differs from their clean decode (or that were rejected).
    valid_lost: list[str] = field(default_factory=list)
    wrong_row_counts: int = 0
    reasons: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def add(self, other: Report) -> None:
        for name in ("cases", "accepted", "rejected", "clean", "wrong_row_counts", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("exceptions", "hangs", "rejected_without_reason", "valid_lost"):
            getattr(self, name).extend(getattr(other, name))
        self.reasons.update(other.reasons)

    def summary(self) -> dict:
        """The figures docs/robustness.md reports (counts; reasons grouped by their first words)."""
        return {
            "cases": self.cases, "clean_cases": self.clean, "accepted": self.accepted, "rejected": self.rejected,
            "exceptions": len(self.exceptions), "hung_chunks": len(self.hangs),
            "rejected_with_reason_percent": round(100.0 * (self.rejected - len(self.rejected_without_reason))
                                                  / self.rejected, 3) if self.rejected else 100.0,
            "valid_alerts_lost": len(self.valid_lost), "wrong_row_counts": self.wrong_row_counts,
            "seconds": round(self.seconds, 1), "cases_per_s": round(self.cases / self.seconds, 1) if self.seconds else None,
            "first_failures": (self.exceptions + self.hangs + self.rejected_without_reason + self.valid_lost)[:20],
            "reasons": dict(self.reasons.most_common(40)),
        }


def reason_class(reason: str) -> str:
    """A quarantine reason without its message-specific details (for counting): the text before
    its first colon, numbers as N, quoted values as '...'."""
    return re.sub(r"-?\d+", "N", re.sub(r"""(['"]).*\1""", "'...'", reason.split(":")[0]))[:80]


def check(chunk: Sequence[FuzzCase], references: Sequence[str]) -> Report:
    """Decode ``chunk`` as one batch and count every breach of the decoder contract."""
    report = Report(cases=len(chunk), clean=sum(c.mutation == CLEAN for c in chunk))
    start = time.perf_counter()
    try:
        rows = decode_values([c.value for c in chunk]).to_pylist()
    except BaseException as exc:  # noqa: BLE001 - counting what escapes is the point; a Rust panic is a BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        report.exceptions.append(f"{type(exc).__name__}: {str(exc)[:200]} "
                                 f"({sorted({c.mutation for c in chunk})})")
        report.seconds = time.perf_counter() - start
        return report
    report.seconds = time.perf_counter() - start
    if len(rows) != len(chunk):
        report.wrong_row_counts += 1
        return report
    for case, row in zip(chunk, rows, strict=True):
        reason = row["quarantine_reason"]
        if reason is None:
            report.accepted += 1
        else:
            report.rejected += 1
            report.reasons[reason_class(reason)] += 1
            if not reason.strip():
                report.rejected_without_reason.append(case.mutation)
        if case.mutation == CLEAN and repr(row) != references[case.seed]:
            report.valid_lost.append(f"seed {case.seed}: {reason}")
    return report


def chunk_cases(seeds: Sequence[Seed], seed: int, index: int, size: int) -> list[FuzzCase]:
    """The cases of chunk ``index`` of a run with ``seed``."""
    return cases(seeds, size, f"{seed}:{index}")


def _check_worker(seeds: Sequence[Seed], references: Sequence[str], seed: int, conn) -> None:
    """Child process: check the chunks whose (index, size) arrive on ``conn``, send each Report back."""
    while (chunk := conn.recv()) is not None:
        conn.send(check(chunk_cases(seeds, seed, *chunk), references))


def run(n_cases: int, seed: int, seeds: Sequence[Seed], chunk_size: int = 200, deadline_s: float = 120.0,
        progress=None) -> Report:
    """Check ``n_cases`` cases in chunks of ``chunk_size`` (chunk k drawn with seed ``"seed:k"``) in a
    forked child process; a chunk that takes longer than ``deadline_s`` counts its cases as hangs
    and the child is replaced."""
    if chunk_size < len(MUTATIONS):
        raise ValueError(f"chunk_size must be at least {len(MUTATIONS)}: each chunk cycles through every mutation")
    references = reference_rows(seeds)
    context = multiprocessing.get_context("fork")
    total = Report()
    worker = None
    wall = time.perf_counter()
    try:
        for index in range((n_cases + chunk_size - 1) // chunk_size):
            size = min(chunk_size, n_cases - index * chunk_size)
            if worker is None:
                conn, child_conn = context.Pipe()
                worker = context.Process(target=_check_worker, args=(seeds, references, seed, child_conn), daemon=True)
                worker.start()
            conn.send((index, size))
            if conn.poll(deadline_s):
                report = conn.recv()
            else:
                worker.kill()
                worker.join()
                worker = None
                mutations = sorted({c.mutation for c in chunk_cases(seeds, seed, index, size)})
                report = Report(cases=size, hangs=[f"chunk {index} of seed {seed}: {mutations}"])
            total.add(report)
            if progress:
                progress(total)
    finally:
        if worker is not None:
            conn.send(None)
            worker.join(10)
            if worker.is_alive():
                worker.kill()
    total.seconds = time.perf_counter() - wall
    return total
