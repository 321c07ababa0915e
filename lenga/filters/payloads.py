"""Output payloads: the versioned Avro schemas under ``schemas/`` and the encoding of messages.

Three payloads, each a complete, documented Avro schema (``schemas/<payload>.v<N>.json``), the
published contract of lenga's output topics:

- ``thin``: ids, position, time, photometry, top stamp and light-curve classes (a few hundred bytes);
- ``lightcurve``: thin + the object's detections and non-detections from the lake up to the alert;
- ``full``: lightcurve + the three cutouts.

A field is only ever added with a default (Avro schema resolution keeps old readers working); any
other change is a new version file, and ``schema_version`` in every record says which one wrote it.

Two encodings:

- **Confluent wire format** (a schema registry is configured): magic byte 0, the schema id as a
  4-byte big-endian integer, then the schemaless Avro body (docs.confluent.io, "Wire format").
- **Avro object container** otherwise: one container file per message holding one record, the
  way ZTF distributes its alerts. The embedded schema is the published one without its ``doc``
  strings (they would be 10x the size of a thin record); the files here carry the documentation.
"""

from __future__ import annotations

import io
import json
import struct
from functools import cache
from importlib import resources

import fastavro
import polars as pl
import pyarrow as pa
from fastavro.validation import ValidationError

from lenga.filters.config import PAYLOADS

# Read through importlib.resources: on a cluster the package is imported from a zip (--py-files).
SCHEMA_PACKAGE = "lenga.filters"
SCHEMA_DIR = "schemas"
#: Version of the payload schemas this code writes.
SCHEMA_VERSION = 1
# Confluent wire format: one magic byte then the schema id (docs.confluent.io "Wire format").
CONFLUENT_MAGIC = 0
CONFLUENT_HEADER = struct.Struct(">bI")
#: What every filter's encoder yields: the columns of Spark's Kafka sink.
MESSAGE_SCHEMA = pa.schema([
    ("topic", pa.string()),
    ("key", pa.binary()),
    ("value", pa.binary()),
    ("headers", pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))),
])


def schema_file(payload: str, version: int = SCHEMA_VERSION) -> str:
    """The schema's file name under lenga/filters/schemas/, e.g. ``thin.v1.json``."""
    if payload not in PAYLOADS:
        raise ValueError(f"unknown payload {payload!r}; known: {list(PAYLOADS)}")
    return f"{payload}.v{version}.json"


@cache
def published_schema(payload: str, version: int = SCHEMA_VERSION) -> dict:
    """The documented Avro schema of a payload, as published (and registered)."""
    return json.loads(resources.files(SCHEMA_PACKAGE).joinpath(SCHEMA_DIR).joinpath(schema_file(payload, version)).read_text())


def schema_name(payload: str) -> str:
    """Full name of the payload's record, e.g. ``lenga.output.v1.ThinAlert`` (a Kafka header)."""
    schema = published_schema(payload)
    return f"{schema['namespace']}.{schema['name']}"


def field_names(payload: str) -> list[str]:
    """Top-level fields of the payload's record, in order: the columns a payload row must have."""
    return [f["name"] for f in published_schema(payload)["fields"]]


def schema_version_tag(payload: str) -> str:
    """The value of every record's ``schema_version`` field, e.g. ``thin/1``."""
    return f"{payload}/{SCHEMA_VERSION}"


def _without_docs(node):
    if isinstance(node, dict):
        return {k: _without_docs(v) for k, v in node.items() if k != "doc"}
    if isinstance(node, list):
        return [_without_docs(v) for v in node]
    return node


@cache
def parsed_schema(payload: str, with_docs: bool) -> dict:
    schema = published_schema(payload)
    return fastavro.parse_schema(schema if with_docs else _without_docs(schema))


def _why_invalid(record: dict, schema: dict) -> str | None:
    """fastavro's validator names the field at fault (the writer's own error does not)."""
    try:
        fastavro.validate(record, schema, raise_errors=True)
    except ValidationError as invalid:
        return str(invalid)
    return None


def encode_records(records: list[dict], payload: str, schema_id: int | None) -> list[bytes]:
    """Avro-encode payload records: Confluent wire format with ``schema_id``, else one object
    container per record. A record that does not fit the schema raises ValueError naming the
    record's candid and the field (from fastavro's validator)."""
    schema = parsed_schema(payload, with_docs=schema_id is not None)
    header = b"" if schema_id is None else CONFLUENT_HEADER.pack(CONFLUENT_MAGIC, schema_id)
    out = []
    for record in records:
        buffer = io.BytesIO(header)
        buffer.seek(len(header))
        try:
            if schema_id is None:
                fastavro.writer(buffer, schema, [record])
            else:
                fastavro.schemaless_writer(buffer, schema, record)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{payload} payload of candid {record.get('candid')} does not fit "
                             f"{schema_name(payload)}: {_why_invalid(record, schema) or exc}") from exc
        out.append(buffer.getvalue())
    return out


def decode_message(value: bytes, payload: str, registry_schema: dict | None = None) -> dict:
    """Decode one output message (for consumers and tests): an object container, or Confluent wire
    format read with ``registry_schema`` (the schema the registry returns for the message's id)."""
    if value[:1] == b"\x00":
        if registry_schema is None:
            raise ValueError("Confluent wire-format message: the registry's schema is needed to decode it")
        return fastavro.schemaless_reader(io.BytesIO(value[CONFLUENT_HEADER.size:]),
                                          fastavro.parse_schema(registry_schema))
    records = list(fastavro.reader(io.BytesIO(value), reader_schema=published_schema(payload)))
    if len(records) != 1:
        raise ValueError(f"an output message holds one record, this one {len(records)}")
    return records[0]


def encode_batch(batch: pa.RecordBatch, payload: str, topic: str, filter_name: str,
                 schema_id: int | None) -> pa.RecordBatch:
    """Payload rows (columns :func:`field_names`) → Kafka messages (:data:`MESSAGE_SCHEMA`):
    key = objectId, value = the Avro record, headers = candid, filter and schema name (so a consumer
    can drop at-least-once duplicates by (key, candid) without decoding the value)."""
    # polars builds the nested Python records 4x faster than pyarrow's to_pylist (5.2 s for 8,212
    # light-curve rows of ~55 points each), which was most of the encoding's cost.
    records = pl.from_arrow(batch.select(field_names(payload))).to_dicts()
    values = encode_records(records, payload, schema_id)
    name = schema_name(payload).encode()
    headers = [[{"key": "candid", "value": str(r["candid"]).encode()},
                {"key": "filter", "value": filter_name.encode()},
                {"key": "schema", "value": name}] for r in records]
    return pa.RecordBatch.from_arrays([
        pa.array([topic] * len(records), pa.string()),
        pa.array([r["objectId"].encode() for r in records], pa.binary()),
        pa.array(values, pa.binary()),
        pa.array(headers, MESSAGE_SCHEMA.field("headers").type),
    ], schema=MESSAGE_SCHEMA)
