"""Kafka messages -> lenga's common tables, one vectorized step (issue 2, "Decoding").

:func:`decode_record_batch` turns a batch with the columns of Spark's Kafka source into one
:data:`lenga.schema.DECODED` row per message (order kept): a valid alert with its nested detections
and non-detections, or a quarantine row with a specific reason and the raw bytes. A bad message
never raises. :func:`decode_messages` does the same for :class:`KafkaMessages`, whose values are
still the Python bytes a Kafka client returned (the ingest source's path).

Formats, told apart by their first bytes and by the writer schema, never by topic:

* **Avro object-container file** (``Obj\\x01``), one record with its writer schema embedded: ZTF
  (every version, each read with its own schema), Fink's re-serialised LSST files (writer schema
  ``topLevelRecord``) and LSST containers (``lsst.vX_Y.alert``). Parsing a 20-30 kB writer schema
  per message costs as much as the record itself, so parsed schemas are cached by their bytes.
  fastavro's ``reader`` always re-parses the schema, so the framing (Avro 1.11 spec, "Object
  Container Files": header record, then blocks of ``count, size, data, sync``) is read here with
  fastavro's own header schema; codecs ``null`` and ``deflate`` are supported.
* **ZTF records are decoded columnar**: the records of a batch that share a writer schema are
  decoded together to Arrow by arrow-avro (Rust, via polars-avro; 0.23 ms per alert where fastavro
  takes 0.83 ms) and mapped on whole columns (:func:`lenga.survey.ztf.extract_batch`); see
  :func:`_read_ztf` for how a bad record is kept from hanging or shifting the others. LSST and
  anything else are decoded one message at a time with fastavro.
* **Confluent wire format** (byte 0 = 0, bytes 1-4 big-endian schema id, schemaless Avro): LSST,
  schema id = major*100 + minor resolved with lsst-alert-packet's ``SchemaRegistry``.

Contract: one message holds one alert. A container with N != 1 records is quarantined
(``container holds N records, expected 1``); sources that read multi-record files call
:func:`split_container` first.

After the per-message pass, everything that can be computed on columns is (jd <-> mjd, flux <->
magnitude, 5-sigma limits, night): once per batch with numpy, not once per alert.

docs/robustness.md lists the quarantine reasons and how the decoder is fuzzed (lenga.sim.fuzz).
"""

from __future__ import annotations

import io
import json
import re
import zlib
from dataclasses import dataclass, field
from functools import cached_property

import fastavro
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from fastavro.read import HEADER_SCHEMA
from fastavro.schema import expand_schema
from polars_avro._avro_rs import AvroError, AvroSource
from polars_avro._scan import seekable_factory

from lenga import night, photometry, schema
from lenga.survey import Extracted, ExtractedBatch, InvalidAlert, lsst, plausible_mjds, ztf

CONTAINER_MAGIC = b"Obj\x01"
#: Confluent wire format: magic byte 0, then a 4-byte big-endian schema id.
WIRE_MAGIC = 0
WIRE_HEADER_BYTES = 5
#: Avro container sync marker length (Avro spec).
SYNC_BYTES = 16
#: ZTF's diffmaglim is a 5-sigma limit; LSST limits (diaNoise) are converted to the same.
UPPER_LIMIT_NSIGMA = 5.0
MICROSECONDS_PER_SECOND = 1e6
#: Value of the quarantine table's ``stage`` column for rows rejected here.
STAGE = "decode"
#: Sync marker of the containers built for arrow-avro (any 16 bytes do).
ARROW_SYNC = b"lenga.columnar.1"
#: objectId and candid of the sentinel record that closes every block given to arrow-avro (no ZTF
#: alert has them: ZTF candids are positive).
SENTINEL_OBJECT_ID = "lenga-sentinel"
SENTINEL_CANDID = -1
#: Quarantine reason of a record that arrow-avro read without error but not as the message holds it.
MISREAD_REASON = "schema/field error: record does not fill its message exactly (trailing or corrupt bytes)"

SURVEYS = {ztf.SURVEY: ztf, lsst.SURVEY: lsst}
_LSST_SCHEMA_NAME = re.compile(r"^lsst\.v(\d+)_(\d+)\.alert$")
_HEADER = fastavro.parse_schema(HEADER_SCHEMA)
_DETECTION_TYPE = schema.DECODED.field("detections").type
_NON_DETECTION_TYPE = schema.DECODED.field("non_detections").type
_ALERT_COLUMNS = schema.ALERTS.names
#: Provenance columns of a Kafka message that the decoded rows keep, with lenga's types.
_PROVENANCE = {"key": pa.binary(), "topic": pa.string(), "partition": pa.int32(), "offset": pa.int64(),
               "timestamp": pa.timestamp("us", tz="UTC")}


def message_error(exc: BaseException) -> bool:
    """True when ``exc`` can come from a message's content, so that the message is quarantined:
    any Exception, and the ``PanicException`` of a Rust extension (arrow-avro via polars-avro),
    which derives from BaseException and is exported by no module. Interrupts and exits are not."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


class Quarantined(ValueError):
    """A message that cannot become an alert; ``str(exc)`` is the quarantine reason."""

    def __init__(self, reason: str, survey: str | None = None):
        super().__init__(reason)
        self.survey = survey


def _least_value(avro_type):
    """A deterministic, small valid value of an (expanded) Avro type: null where the type allows
    it, else zero, empty, or the first enum symbol or union branch."""
    if isinstance(avro_type, list):
        return None if "null" in avro_type else _least_value(avro_type[0])
    if isinstance(avro_type, dict):
        kind = avro_type["type"]
        if kind == "record":
            return {f["name"]: _least_value(f["type"]) for f in avro_type["fields"]}
        if kind in ("array", "map"):
            return [] if kind == "array" else {}
        if kind in ("enum", "fixed"):
            return avro_type["symbols"][0] if kind == "enum" else bytes(avro_type["size"])
        return _least_value(kind)  # a primitive with attributes (logical type)
    return {"null": None, "boolean": False, "string": "", "bytes": b""}.get(avro_type, 0)


@dataclass(frozen=True)
class ArrowContainer:
    """What reading records of one writer schema with arrow-avro takes (:func:`_read_ztf`)."""

    #: Container header: the writer schema with named types expanded, codec null, ARROW_SYNC.
    header: bytes
    #: A valid record of the schema with the sentinel objectId and candid.
    sentinel: bytes
    #: The schema's leading fields up to objectId and candid, read from each message to check
    #: that arrow-avro's row is that message's record.
    ids: dict


def _takes_no_bytes(avro_type, named: dict, seen: frozenset = frozenset()) -> bool:
    """True when a value of the (parsed) Avro type can be encoded in zero bytes (null, a record of
    such fields, a zero-size fixed): a declared count of them then bounds no reading."""
    if isinstance(avro_type, str):
        if avro_type in named:
            return avro_type not in seen and _takes_no_bytes(named[avro_type], named, seen | {avro_type})
        return avro_type == "null"
    if isinstance(avro_type, list):  # a union writes its branch index
        return False
    kind = avro_type.get("type")
    if kind in ("record", "error"):
        name = avro_type.get("name", "")
        return all(_takes_no_bytes(f["type"], named, seen | {name}) for f in avro_type.get("fields", []))
    if kind == "fixed":
        return avro_type.get("size") == 0
    if kind in ("array", "map", "enum"):
        return False
    return _takes_no_bytes(kind, named, seen)


def _unbounded_counts(avro_type, named: dict, seen: frozenset = frozenset()) -> bool:
    """True when the schema has an array of zero-byte items, or is itself a zero-byte record: a
    declared count (2^62, from one damaged varint) would then make a reader loop or allocate
    without end instead of running out of bytes."""
    if isinstance(avro_type, str):
        if avro_type in named and avro_type not in seen:
            return _unbounded_counts(named[avro_type], named, seen | {avro_type})
        return False
    if isinstance(avro_type, list):
        return any(_unbounded_counts(t, named, seen) for t in avro_type)
    kind = avro_type.get("type")
    if kind == "array":
        return _takes_no_bytes(avro_type["items"], named) or _unbounded_counts(avro_type["items"], named, seen)
    if kind == "map":
        return _unbounded_counts(avro_type["values"], named, seen)
    if kind in ("record", "error"):
        seen = seen | {avro_type.get("name", "")}
        return any(_unbounded_counts(f["type"], named, seen) for f in avro_type.get("fields", []))
    return False


@dataclass(frozen=True)
class WriterSchema:
    """A parsed container writer schema and what lenga needs to know about it."""

    parsed: dict
    raw: dict
    fullname: str
    field_names: frozenset[str]
    #: The JSON bytes it was parsed from (its cache key).
    text: bytes
    #: Why no record of this schema can be read safely (see :func:`_unbounded_counts`), else None.
    unreadable: str | None = None

    @cached_property
    def arrow_container(self) -> ArrowContainer:
        """Built once per schema, on the first ZTF batch that uses it."""
        expanded = expand_schema(self.raw)
        sentinel = {**_least_value(expanded), "objectId": SENTINEL_OBJECT_ID, "candid": SENTINEL_CANDID}
        body = io.BytesIO()
        fastavro.schemaless_writer(body, self.parsed, sentinel)
        header = io.BytesIO()
        fastavro.schemaless_writer(header, _HEADER, {
            "magic": CONTAINER_MAGIC, "sync": ARROW_SYNC,
            "meta": {"avro.schema": json.dumps(expanded).encode(), "avro.codec": b"null"}})
        names = [f["name"] for f in expanded["fields"]]
        leading = expanded["fields"][: max(names.index("objectId"), names.index("candid")) + 1]
        ids = fastavro.parse_schema({"type": "record", "name": "lenga.alert_ids", "fields": leading})
        return ArrowContainer(header.getvalue(), body.getvalue(), ids)


#: Parsed container writer schemas by their JSON bytes. A stream has a handful of schema versions;
#: the bound only protects a worker from a stream of ever-changing schemas.
_container_schemas: dict[bytes, WriterSchema] = {}
MAX_CACHED_SCHEMAS = 256


def _writer_schema(schema_bytes: bytes) -> WriterSchema:
    cached = _container_schemas.get(schema_bytes)
    if cached is None:
        try:
            raw = json.loads(schema_bytes)
            parsed = fastavro.parse_schema(raw)
        except Exception as exc:  # any parse failure is a property of the message
            raise Quarantined(f"schema/field error: unparsable writer schema: {exc}") from exc
        try:
            name = raw.get("name", "") if isinstance(raw, dict) else ""
            namespace = raw.get("namespace") if isinstance(raw, dict) else None
            fullname = f"{namespace}.{name}" if namespace and "." not in name else name
            fields = frozenset(f["name"] for f in raw.get("fields", [])) if isinstance(raw, dict) else frozenset()
            named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
            unbounded = _takes_no_bytes(parsed, named) or _unbounded_counts(parsed, named)
        except Exception as exc:  # a schema fastavro accepts but lenga cannot describe
            raise Quarantined(f"schema/field error: unusable writer schema: {type(exc).__name__}: {exc}") from exc
        unreadable = ("schema/field error: writer schema has values of zero bytes (a record or array items), "
                      "so their declared counts cannot be bounded") if unbounded else None
        if len(_container_schemas) >= MAX_CACHED_SCHEMAS:
            _container_schemas.clear()
        cached = _container_schemas[schema_bytes] = WriterSchema(parsed, raw, fullname, fields, schema_bytes,
                                                                 unreadable)
    return cached


def _read_long(stream: io.BytesIO) -> int:
    return fastavro.schemaless_reader(stream, "long")


def _container_header(value: bytes) -> tuple[io.BytesIO, dict]:
    stream = io.BytesIO(value)
    try:
        return stream, fastavro.schemaless_reader(stream, _HEADER)
    except EOFError as exc:
        raise Quarantined(f"truncated Avro: container header incomplete ({len(value)} bytes)") from exc
    except Exception as exc:  # a damaged meta key (not UTF-8), length or count
        raise Quarantined(f"corrupt Avro header: {type(exc).__name__}: {exc}") from exc


def _container_blocks(value: bytes) -> tuple[WriterSchema, list[tuple[int, bytes]]]:
    """Writer schema and (record count, decompressed data) of each block of a container."""
    stream, header = _container_header(value)
    meta = header["meta"]
    if "avro.schema" not in meta:
        raise Quarantined("schema/field error: container header has no avro.schema")
    writer = _writer_schema(meta["avro.schema"])
    if writer.unreadable:
        raise Quarantined(writer.unreadable)
    codec = meta.get("avro.codec", b"null").decode("utf-8", "backslashreplace")
    if codec not in ("null", "deflate"):
        raise Quarantined(f"unsupported Avro codec {codec!r}")
    blocks = []
    while stream.tell() < len(value):
        try:
            count, size = _read_long(stream), _read_long(stream)
        except EOFError as exc:
            raise Quarantined("truncated Avro: block header incomplete") from exc
        if count < 0:
            raise Quarantined(f"corrupt Avro block: negative record count {count}")
        if size < 0:
            raise Quarantined(f"corrupt Avro block: negative size {size}")
        data = stream.read(size)
        if len(data) < size:
            raise Quarantined(f"truncated Avro: block declares {size} bytes, {len(data)} present")
        sync = stream.read(SYNC_BYTES)
        if sync != header["sync"]:
            raise Quarantined("truncated Avro: block sync marker missing or wrong")
        if codec == "deflate":  # raw DEFLATE stream, no zlib header (RFC 1951, Avro spec)
            try:
                data = zlib.decompress(data, -15)
            except zlib.error as exc:
                raise Quarantined(f"corrupt Avro deflate block: {exc}") from exc
        blocks.append((count, data))
    return writer, blocks


def _survey_of(writer: WriterSchema, record: dict) -> tuple[str, str | None]:
    """(survey, schemavsn) of a non-ZTF record, from the writer schema name, else from the record layout."""
    match = _LSST_SCHEMA_NAME.match(writer.fullname)
    if match:
        return lsst.SURVEY, f"{int(match[1])}.{int(match[2])}"
    if "diaSource" in writer.field_names:
        version = _LSST_SCHEMA_NAME.match(f"{record.get('lsst_schema_version')}.alert")
        return lsst.SURVEY, f"{int(version[1])}.{int(version[2])}" if version else None
    raise Quarantined(f"unknown survey: writer schema {writer.fullname!r}")


def _single_record(value: bytes) -> tuple[WriterSchema, bytes]:
    """Writer schema and record bytes of a one-record container."""
    writer, blocks = _container_blocks(value)
    n_records = sum(count for count, _ in blocks)
    if n_records != 1:
        raise Quarantined(f"container holds {n_records} records, expected 1")
    return writer, next(data for count, data in blocks if count)


def _ztf_record(value: bytes | None) -> tuple[WriterSchema, bytes] | None:
    """Writer schema and record bytes of a well-framed one-record ZTF container; None for
    anything else (decoded, or quarantined with its reason, by :func:`decode_message`)."""
    if not value or not value.startswith(CONTAINER_MAGIC):
        return None
    try:
        writer, data = _single_record(value)
    except BaseException as exc:  # decode_message gives it its reason
        if not message_error(exc):
            raise
        return None
    return (writer, data) if writer.fullname == ztf.SCHEMA_NAME else None


def _read_container(value: bytes) -> tuple[str, str | None, dict]:
    writer, data = _single_record(value)
    record = fastavro.schemaless_reader(io.BytesIO(data), writer.parsed)
    survey, schemavsn = _survey_of(writer, record)
    return survey, schemavsn, record


def _arrow_avro_read(container: bytes, n_records: int) -> pa.RecordBatch:
    """The first ``n_records`` records of an Avro object container, decoded by arrow-avro.

    Uses polars-avro's private reader (``polars_avro._avro_rs.AvroSource``, pinned 0.13.0 in
    requirements.txt) because its public ``read_avro``/``scan_avro`` iterate the source to its end,
    and arrow-avro then loops forever on a block whose record count is used up while bytes remain
    (a record followed by stray bytes). Reading exactly one batch of the block's declared count
    returns or raises; :func:`_read_ztf` checks that the rows are the messages' records.
    """
    source = AvroSource([seekable_factory(io.BytesIO(container))], False, False)
    batches = source.batch_iter(n_records, None)  # named: a temporary iterator turns its AvroError into SystemError
    return pa.record_batch(next(batches))


def _read_ztf(writer: WriterSchema, bodies: list[bytes]) -> pa.RecordBatch:
    """The records of ZTF messages sharing ``writer``, as one Arrow batch (one row per message).

    arrow-avro reads them as one container with one block: the record bytes, then a sentinel
    record, with a count of N + 1. A record with stray or missing bytes shifts every record after
    it, so the batch is accepted only when it has N + 1 rows, ends with the sentinel, and each
    row's objectId and candid are the ones at the start of its message; otherwise this raises
    (:class:`Quarantined` with MISREAD_REASON, or arrow-avro's ``AvroError``).
    """
    container = writer.arrow_container
    data = b"".join([*bodies, container.sentinel])
    block = io.BytesIO()
    fastavro.schemaless_writer(block, "long", len(bodies) + 1)
    fastavro.schemaless_writer(block, "long", len(data))
    records = _arrow_avro_read(b"".join([container.header, block.getvalue(), data, ARROW_SYNC]), len(bodies) + 1)
    ids = [fastavro.schemaless_reader(io.BytesIO(body), container.ids) for body in bodies]
    expected = {"objectId": [*(i["objectId"] for i in ids), SENTINEL_OBJECT_ID],
                "candid": [*(i["candid"] for i in ids), SENTINEL_CANDID]}
    if records.num_rows != len(bodies) + 1 or not all(
            records.column(name).equals(pa.array(values, records.schema.field(name).type))
            for name, values in expected.items()):
        raise Quarantined(MISREAD_REASON, ztf.SURVEY)
    return records.slice(0, len(bodies))


def _failure_reason(exc: BaseException) -> str:
    """Quarantine reason of an exception raised while decoding one message."""
    if isinstance(exc, Quarantined | InvalidAlert):
        return str(exc)
    if isinstance(exc, EOFError):
        return f"truncated Avro: {exc or 'unexpected end of data'}"
    if isinstance(exc, AvroError):
        return f"schema/field error: {exc}"
    if isinstance(exc, Exception):
        return f"schema/field error: {type(exc).__name__}: {exc}"
    return f"decoder panic: {type(exc).__name__}: {exc}"


def _extract_ztf(writer: WriterSchema, bodies: list[bytes]) -> ExtractedBatch:
    """Rows of ZTF messages sharing ``writer``: decoded together; if that fails, one by one, so
    that only the bad messages are quarantined (with arrow-avro's reason)."""
    try:
        return ztf.extract_batch(_read_ztf(writer, bodies))
    except BaseException as exc:  # a bad message must quarantine itself, not its batch
        if not message_error(exc):
            raise
        if len(bodies) == 1:
            return _quarantined([_failure_reason(exc)], ztf.SURVEY)
    parts = [(np.array([i]), _extract_ztf(writer, [body])) for i, body in enumerate(bodies)]
    return _merge(parts, len(bodies))


def _read_wire(value: bytes) -> tuple[str, str | None, dict]:
    schema_id = int.from_bytes(value[1:WIRE_HEADER_BYTES], "big")
    parsed = lsst.wire_schema(schema_id)
    if parsed is None:
        raise Quarantined(f"unknown LSST schema id {schema_id}")
    stream = io.BytesIO(value)
    stream.seek(WIRE_HEADER_BYTES)
    try:
        record = fastavro.schemaless_reader(stream, parsed)
    except EOFError as exc:
        raise Quarantined(f"truncated Avro: LSST schema {schema_id} record incomplete", lsst.SURVEY) from exc
    trailing = len(value) - stream.tell()
    if trailing:
        raise Quarantined(f"schema/field error: {trailing} bytes left after the record "
                          f"(not an LSST schema {schema_id} alert?)", lsst.SURVEY)
    return lsst.SURVEY, lsst.schema_version(schema_id), record


def decode_message(value: bytes | None) -> Extracted:
    """Decode one Kafka value into rows; raises :class:`Quarantined` with the reason otherwise."""
    if not value:
        raise Quarantined("empty message")
    survey = None
    try:
        ztf_record = _ztf_record(value)
        if ztf_record is not None:
            writer, data = ztf_record
            survey = ztf.SURVEY
            return _extract_ztf(writer, [data]).single()
        if value.startswith(CONTAINER_MAGIC):
            survey, schemavsn, record = _read_container(value)
        elif value[0] == WIRE_MAGIC and len(value) > WIRE_HEADER_BYTES:
            survey, schemavsn, record = _read_wire(value)
        else:
            raise Quarantined("not an Avro container or Confluent wire message")
        return SURVEYS[survey].extract(record, schemavsn)
    except Quarantined:
        raise
    except BaseException as exc:  # a malformed record must quarantine one message, not fail the batch
        if not message_error(exc):
            raise
        raise Quarantined(_failure_reason(exc), survey) from exc


def split_container(value: bytes) -> list[bytes]:
    """Re-frame an object-container file of N records as N single-record containers.

    Each output keeps the writer schema of the input (byte-identical JSON) so it decodes exactly
    like the original record; used by file sources, since a message must hold one alert. A
    single-record container, and anything that is not a readable container, comes back unchanged
    as one message: decoding then accepts it or quarantines it with its specific reason.
    """
    try:
        writer, blocks = _container_blocks(value) if value.startswith(CONTAINER_MAGIC) else (None, [])
        if sum(count for count, _ in blocks) <= 1:
            return [value]
        out = []
        for count, data in blocks:
            stream = io.BytesIO(data)
            for _ in range(count):
                buffer = io.BytesIO()
                fastavro.writer(buffer, writer.raw, [fastavro.schemaless_reader(stream, writer.parsed)])
                out.append(buffer.getvalue())
        return out
    except BaseException as exc:  # unreadable: decoding will quarantine it with the specific reason
        if not message_error(exc):
            raise
        return [value]


# --- batch-wise (vectorized) completion of the rows ---------------------------------------------


def _floats(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Numeric column as float64 numpy with nulls as NaN."""
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)


def _nullable(values: np.ndarray) -> pa.Array:
    """float64 array with NaN/inf as null, so no derived NaN ever reaches a table."""
    return pa.array(values, type=pa.float64(), mask=~np.isfinite(values))


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), table.schema.field(name), values)


def _complete_times(table: pa.Table) -> pa.Table:
    """Fill mjd from jd (ZTF) or jd from mjd (LSST), then the night at each row's site."""
    jd, mjd = _floats(table["jd"]), _floats(table["mjd"])
    mjd = np.where(np.isnan(mjd), night.mjd_from_jd(jd), mjd)
    longitude = np.full(len(table), np.nan)
    surveys = table["survey"].to_numpy(zero_copy_only=False)
    for name, module in SURVEYS.items():
        longitude[surveys == name] = module.SITE_LONGITUDE_DEG
    table = _set(table, "mjd", _nullable(mjd))
    table = _set(table, "jd", _nullable(night.jd_from_mjd(mjd)))
    return _set(table, schema.PARTITION_COLUMN, _nights(mjd, longitude))


def _nights(mjd: np.ndarray, longitude) -> pa.Array:
    """lenga.night.night_from_mjd, null where the site is unknown or the time unknown or implausible."""
    known = plausible_mjds(mjd) & np.isfinite(longitude)
    nights = np.zeros(len(mjd), dtype=np.int32)
    nights[known] = night.night_from_mjd(mjd[known], np.broadcast_to(longitude, mjd.shape)[known])
    return pa.array(nights, mask=~known)


def _complete_detection_photometry(table: pa.Table) -> pa.Table:
    """Give every detection both magnitudes and signed nJy fluxes (lenga.photometry)."""
    mag, mag_err, flux, flux_err = (_floats(table[c]) for c in ("magpsf", "sigmapsf", "psfFlux", "psfFluxErr"))
    positive = pc.fill_null(table["isdiffpos"], False).to_numpy(zero_copy_only=False)
    from_mag = np.isnan(flux) & np.isfinite(mag)
    from_flux = np.isnan(mag) & np.isfinite(flux)
    derived_flux, derived_flux_err = photometry.difference_flux_from_mag(mag, mag_err, positive)
    derived_mag, derived_mag_err, derived_positive = photometry.difference_mag_from_flux(flux, flux_err)
    table = _set(table, "psfFlux", _nullable(np.where(from_mag, derived_flux, flux)))
    table = _set(table, "psfFluxErr", _nullable(np.where(from_mag, derived_flux_err, flux_err)))
    table = _set(table, "magpsf", _nullable(np.where(from_flux, derived_mag, mag)))
    table = _set(table, "sigmapsf", _nullable(np.where(from_flux, derived_mag_err, mag_err)))
    isdiffpos = pc.if_else(pa.array(from_flux), pa.array(derived_positive), table["isdiffpos"])
    return _set(table, "isdiffpos", isdiffpos)


def _complete_non_detection_photometry(table: pa.Table) -> pa.Table:
    """Forced points: magnitude of positive fluxes; upper limits: 5-sigma limit <-> 1-sigma noise."""
    flux, flux_err, limit = (_floats(table[c]) for c in ("psfFlux", "psfFluxErr", "diffmaglim"))
    is_limit = pc.equal(table["kind"], schema.UPPER_LIMIT).to_numpy(zero_copy_only=False)
    mag, mag_err = photometry.flux_to_mag(flux, flux_err)
    limit_from_noise, _ = photometry.flux_to_mag(UPPER_LIMIT_NSIGMA * flux_err)
    noise_from_limit = photometry.mag_to_flux(limit)[0] / UPPER_LIMIT_NSIGMA
    table = _set(table, "magpsf", _nullable(mag))
    table = _set(table, "sigmapsf", _nullable(mag_err))
    table = _set(table, "diffmaglim", _nullable(np.where(is_limit & np.isnan(limit), limit_from_noise, limit)))
    return _set(table, "psfFluxErr", _nullable(np.where(is_limit & np.isnan(flux_err), noise_from_limit, flux_err)))


def _nested(rows: pa.Table, owner: np.ndarray, valid: np.ndarray, list_type: pa.ListType, complete) -> pa.Array:
    """One list per message (null for quarantined ones) of completed struct rows; ``rows`` are
    grouped by message, ``owner`` is each row's message index."""
    table = complete(_complete_times(rows))
    offsets = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=len(valid)))]).astype(np.int32)
    values = table.to_struct_array().combine_chunks()
    return pa.ListArray.from_arrays(pa.array(offsets), values, type=list_type, mask=pa.array(~valid))


def _single_array(column: pa.ChunkedArray) -> pa.Array:
    """The column as one Array, without copying when it already is one chunk (cutouts are large)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _quarantined(reasons: list[str], survey: str | None) -> ExtractedBatch:
    """Rows of messages that are all quarantined: only ``survey`` is known."""
    alerts = pa.Table.from_pylist([{"survey": survey}] * len(reasons), schema=schema.ALERTS)
    no_rows = np.zeros(0, np.int64)
    return ExtractedBatch(alerts, reasons, schema.DETECTIONS.empty_table(), no_rows,
                          schema.NON_DETECTIONS.empty_table(), no_rows)


def _merge(parts: list[tuple[np.ndarray, ExtractedBatch]], n_messages: int) -> ExtractedBatch:
    """One :class:`ExtractedBatch` in message order from parts covering the messages at the given
    positions (each part's rows in its own order)."""
    parts = [(positions, rows) for positions, rows in parts if len(positions)] or [
        (np.zeros(0, np.int64), _quarantined([], None))]
    positions = np.concatenate([p for p, _ in parts])
    order = np.argsort(positions)
    in_order = np.array_equal(order, np.arange(n_messages))
    alerts = pa.concat_tables([rows.alerts for _, rows in parts])
    reasons = [reason for _, rows in parts for reason in rows.reasons]

    def history(table: str, owner: str) -> tuple[pa.Table, np.ndarray]:
        owners = np.concatenate([p[getattr(part, owner)] for p, part in parts])
        rows = pa.concat_tables([getattr(part, table) for _, part in parts])
        if in_order:
            return rows, owners
        grouped = np.argsort(owners, kind="stable")
        return rows.take(pa.array(grouped)), owners[grouped]

    return ExtractedBatch(alerts if in_order else alerts.take(pa.array(order)),
                          reasons if in_order else [reasons[i] for i in order],
                          *history("detections", "detection_owner"),
                          *history("non_detections", "non_detection_owner"))


@dataclass
class _Decoded:
    """Per-message results (the fastavro path), flat: nested rows with the count of each message."""

    alerts: list[dict] = field(default_factory=list)
    detections: list[dict] = field(default_factory=list)
    non_detections: list[dict] = field(default_factory=list)
    n_detections: list[int] = field(default_factory=list)
    n_non_detections: list[int] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)

    def add(self, value: bytes | None) -> None:
        try:
            extracted = decode_message(value)
        except Quarantined as exc:
            extracted = Extracted({"survey": exc.survey}, [], [])
            self.reasons.append(str(exc))
        else:
            self.reasons.append(None)
        self.alerts.append(extracted.alert)
        self.detections.extend(extracted.detections)
        self.non_detections.extend(extracted.non_detections)
        self.n_detections.append(len(extracted.detections))
        self.n_non_detections.append(len(extracted.non_detections))

    def rows(self) -> ExtractedBatch:
        messages = np.arange(len(self.reasons))
        return ExtractedBatch(
            pa.Table.from_pylist(self.alerts, schema=schema.ALERTS), self.reasons,
            pa.Table.from_pylist(self.detections, schema=schema.DETECTIONS), np.repeat(messages, self.n_detections),
            pa.Table.from_pylist(self.non_detections, schema=schema.NON_DETECTIONS),
            np.repeat(messages, self.n_non_detections))


def _extract(values: list[bytes | None]) -> ExtractedBatch:
    """Rows of every message, in order: ZTF records grouped by writer schema and decoded columnar,
    any other message one at a time."""
    ztf_groups: dict[bytes, tuple[WriterSchema, list[int], list[bytes]]] = {}
    others, other_positions = _Decoded(), []
    for position, value in enumerate(values):
        ztf_record = _ztf_record(value)
        if ztf_record is None:
            others.add(value)
            other_positions.append(position)
        else:
            writer, data = ztf_record
            _, positions, bodies = ztf_groups.setdefault(writer.text, (writer, [], []))
            positions.append(position)
            bodies.append(data)
    parts = [(np.array(other_positions, np.int64), others.rows())]
    parts += [(np.array(positions, np.int64), _extract_ztf(writer, bodies))
              for writer, positions, bodies in ztf_groups.values()]
    return _merge(parts, len(values))


@dataclass(frozen=True)
class KafkaMessages:
    """A batch of Kafka messages as the decoder reads them: the values as Python bytes, the
    provenance (``key, topic, partition, offset, timestamp``; missing ones are null) as Arrow.

    Why not one Arrow batch: the decoder reads the values one by one as Python bytes. A reader that
    already holds them as bytes (:mod:`lenga.io.kafka_source` gets them from librdkafka) passes
    them as they are; packing ~80 kB messages into an Arrow column only to unpack them again cost
    two copies of every message (a sixth of the ingest workers' CPU, measured with py-spy).
    """

    values: list[bytes | None]
    provenance: dict[str, pa.Array] = field(default_factory=dict)

    @classmethod
    def from_record_batch(cls, batch: pa.RecordBatch) -> KafkaMessages:
        """The messages of a batch with the columns of Spark's Kafka source (only ``value`` required)."""
        return cls(batch.column("value").to_pylist(),
                   {name: batch.column(name) for name in _PROVENANCE if name in batch.schema.names})

    @classmethod
    def from_pydict(cls, columns: dict[str, list], kafka_schema: pa.Schema) -> KafkaMessages:
        """The messages of Kafka-source columns held as Python lists, typed by ``kafka_schema``."""
        return cls(columns["value"], {name: pa.array(columns[name], kafka_schema.field(name).type)
                                      for name in _PROVENANCE if name in columns})

    def slice(self, start: int, length: int) -> KafkaMessages:
        """Messages ``start`` to ``start + length`` with their provenance."""
        return KafkaMessages(self.values[start:start + length],
                             {name: column.slice(start, length) for name, column in self.provenance.items()})

    def column(self, name: str) -> pa.Array:
        """Provenance column ``name`` as lenga's type, null when the source has none."""
        type_ = _PROVENANCE[name]
        given = self.provenance.get(name)
        return pa.nulls(len(self.values), type_) if given is None else pc.cast(given, type_)


def decode_record_batch(batch: pa.RecordBatch, ingest_batch_id: int | None = None) -> pa.RecordBatch:
    """Decode a batch of Kafka messages into :data:`lenga.schema.DECODED` rows, one per message.

    ``batch`` has the columns of Spark's Kafka source (``key, value, topic, partition, offset,
    timestamp, timestampType``); only ``value`` is required, missing provenance columns are null
    (file sources). See :func:`decode_messages`.
    """
    return decode_messages(KafkaMessages.from_record_batch(batch), ingest_batch_id)


def decode_messages(messages: KafkaMessages, ingest_batch_id: int | None = None) -> pa.RecordBatch:
    """Decode Kafka messages into :data:`lenga.schema.DECODED` rows, one per message. Quarantined
    messages keep provenance, ``raw`` and a night from the Kafka timestamp (lenga.night at
    longitude 0: the date of the preceding noon UTC)."""
    return _decoded_rows(messages, _extract(messages.values), ingest_batch_id)


def quarantine_messages(messages: KafkaMessages, reasons: list[str],
                        ingest_batch_id: int | None = None) -> pa.RecordBatch:
    """:data:`lenga.schema.DECODED` rows quarantining every message with the given reasons, shaped
    like :func:`decode_messages`' quarantine rows (the stream's last resort when decoding raised)."""
    return _decoded_rows(messages, _quarantined(reasons, None), ingest_batch_id)


def _decoded_rows(messages: KafkaMessages, extracted: ExtractedBatch, ingest_batch_id: int | None) -> pa.RecordBatch:
    n_messages = len(messages.values)
    valid = np.array([reason is None for reason in extracted.reasons], dtype=bool)
    table = _complete_detection_photometry(_complete_times(extracted.alerts))
    kafka_timestamp = messages.column("timestamp")
    provenance = {
        "topic": messages.column("topic"),
        "partition": messages.column("partition"),
        "offset": messages.column("offset"),
        "kafka_timestamp": kafka_timestamp,
        "ingest_batch_id": pa.array([ingest_batch_id] * n_messages, pa.int64()),
        schema.PARTITION_COLUMN: pc.if_else(
            pa.array(valid), table[schema.PARTITION_COLUMN], _kafka_night(kafka_timestamp)
        ),
    }
    for name, column in provenance.items():
        table = _set(table, name, column)
    columns = {
        **{name: _single_array(table[name]) for name in _ALERT_COLUMNS},
        "key": messages.column("key"),
        "detections": _nested(extracted.detections, extracted.detection_owner, valid, _DETECTION_TYPE,
                              _complete_detection_photometry),
        "non_detections": _nested(extracted.non_detections, extracted.non_detection_owner, valid,
                                  _NON_DETECTION_TYPE, _complete_non_detection_photometry),
        "quarantine_reason": pa.array(extracted.reasons, pa.string()),
        # Only the quarantined messages' bytes are kept (copied): valid alerts are the decoded rows.
        "raw": pa.array([None if ok else value for ok, value in zip(valid, messages.values, strict=True)],
                        pa.binary()),
    }
    return pa.RecordBatch.from_arrays(list(columns.values()), schema=schema.DECODED)


def _kafka_night(kafka_timestamp: pa.Array) -> pa.Array:
    """Night of the Kafka timestamp at longitude 0: quarantined messages have no trustworthy
    observation time, and still need a partition."""
    seconds = _floats(pc.cast(kafka_timestamp, pa.int64())) / MICROSECONDS_PER_SECOND
    return _nights(night.mjd_from_unix_seconds(seconds), night.GREENWICH_LONGITUDE_DEG)
