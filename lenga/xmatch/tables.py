"""The cross-match's lake tables, ``xmatch`` and ``xmatch_objects``, and the rows a micro-batch adds.

``xmatch`` has one schema for every catalog (catalogs keep different columns of different types):
``source_id`` as a string (Gaia's integers and AllWISE's designations alike, as ALeRCE's
``oid_catalog``), the kept numeric columns in the map ``properties`` (double) and the kept text
columns in the map ``labels``: ``properties['parallax']``, ``labels['type']``.

``xmatch_objects`` is the registry: one row per object and catalog version it was matched against,
matches or not.  An object is matched once, not once per alert, and again only when the catalog
version changes.  The context flags are per object and catalog row of ``xmatch_objects``.

Everything here is Arrow in, Arrow out, so that one task can turn its share of a batch's alerts
into the rows of both tables (``crossmatch_batch``) without a Spark job per step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lenga.schema import described_field as _field
from lenga.tables import PARTITION_COLUMN, TableSpec
from lenga.xmatch.catalog import CatalogSpec
from lenga.xmatch.match import OBJECT_COLUMNS, crossmatch
from lenga.xmatch.objects import OBJECT_KEYS, alert_objects

REGISTRY_KEYS = (*OBJECT_KEYS, "catalog", "catalog_version")


_COMMON = [
    _field("survey", pa.string(), "'ztf' or 'lsst'"),
    _field("objectId", pa.string(), "survey object id (lenga.schema)"),
    _field("catalog", pa.string(), "catalog name (conf/catalogs.yaml)"),
    _field("catalog_version", pa.string(), "catalog version matched against (as stored in the lake)"),
]
_NIGHT = _field(PARTITION_COLUMN, pa.int32(), "first night of the object in the micro-batch that matched it")

XMATCH = TableSpec(
    "xmatch",
    pa.schema([
        *_COMMON,
        _field("source_id", pa.string(), "catalog source id, as text"),
        _field("sep_arcsec", pa.float64(), "angular separation object - source, arcsec"),
        _field("properties", pa.map_(pa.string(), pa.float64()), "kept numeric catalog columns"),
        _field("labels", pa.map_(pa.string(), pa.string()), "kept text catalog columns"),
        _NIGHT,
    ]),
    keys=(*REGISTRY_KEYS, "source_id"),
)

XMATCH_OBJECTS = TableSpec(
    "xmatch_objects",
    pa.schema([
        *_COMMON,
        _field("ra", pa.float64(), "object position matched: mean direction of its alerts, deg"),
        _field("dec", pa.float64(), "object position matched: mean direction of its alerts, deg"),
        _field("n_matches", pa.int32(), "rows in xmatch for this object and catalog version"),
        _field("known_sso", pa.bool_(), "an alert of the object is at a known solar-system object"),
        _field("probable_star", pa.bool_(), "an alert of the object is on a PS1 star (ZTF sgscore1/distpsnr1)"),
        _field("batch", pa.int64(), "micro-batch that matched the object"),
        _NIGHT,
    ]),
    keys=REGISTRY_KEYS,
)

# xmatch rows as the match produces them; the night comes from the object (``with_night``).
MATCH_SCHEMA = pa.schema([f for f in XMATCH.schema if f.name != PARTITION_COLUMN])


def kept_columns(spec: CatalogSpec, schema: pa.Schema) -> tuple[list[str], list[str]]:
    """The spec's kept columns split by their type in the prepared catalog's ``schema``: numbers
    and booleans go to ``properties``, everything else (as text) to ``labels``."""
    numeric, text = [], []
    for column in spec.columns:
        kind = schema.field(column).type
        is_number = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
        (numeric if is_number or pa.types.is_boolean(kind) else text).append(column)
    return numeric, text


def _as_map(table: pa.Table, columns: Sequence[str], value_type: pa.DataType) -> pa.MapArray:
    """A map column ``{name: value}`` per row of ``columns`` cast to ``value_type`` (nulls kept)."""
    n, k = table.num_rows, len(columns)
    keys = pa.array(list(columns) * n, pa.string())
    values = pa.concat_arrays([pc.cast(table.column(c), value_type).combine_chunks() for c in columns]
                              or [pa.array([], value_type)])
    # Column-major concatenation -> row-major map entries: entry (row i, column j) is j * n + i.
    values = values.take(pa.array(np.arange(n * k).reshape(k, n).T.ravel()))
    offsets = pa.array(np.arange(n + 1) * k, pa.int32())
    return pa.MapArray.from_arrays(offsets, keys, values)


def match_rows(found: pa.Table, numeric: Sequence[str], text: Sequence[str]) -> pa.Table:
    """``lenga.xmatch.match.crossmatch`` rows in ``MATCH_SCHEMA``: id as text, kept columns as maps."""
    return pa.Table.from_arrays([
        found.column("survey").cast(pa.string()),
        found.column("objectId").cast(pa.string()),
        found.column("catalog"),
        found.column("catalog_version"),
        found.column("source_id").cast(pa.string()),
        found.column("sep_arcsec"),
        _as_map(found, numeric, pa.float64()),
        _as_map(found, text, pa.string()),
    ], schema=MATCH_SCHEMA)


def pending_objects(objects: pa.Table, catalogs: Sequence[CatalogSpec], registered: pa.Table | None) -> pa.Table:
    """Each object once per catalog (``catalog``, ``catalog_version`` added), less the (object,
    catalog version) pairs in ``registered`` (``REGISTRY_KEYS`` rows of ``xmatch_objects``)."""
    pending = pa.concat_tables([
        objects.append_column("catalog", pa.repeat(pa.scalar(spec.name), objects.num_rows))
        .append_column("catalog_version", pa.repeat(pa.scalar(spec.version), objects.num_rows))
        for spec in catalogs
    ])
    if registered is None or registered.num_rows == 0:
        return pending
    registered = registered.select(list(REGISTRY_KEYS)).cast(pa.schema([(k, pa.string()) for k in REGISTRY_KEYS]))
    return pending.join(registered, list(REGISTRY_KEYS), join_type="left anti", use_threads=False)


def with_night(matches: pa.Table, objects: pa.Table) -> pa.Table:
    """``MATCH_SCHEMA`` rows with the night of their object (``objects``: survey, objectId, night)."""
    # Arrow joins carry no map columns: join the keys with their row number, then put the nights in order.
    row = "__row"
    keyed = matches.select(list(OBJECT_KEYS)).append_column(row, pa.array(np.arange(matches.num_rows)))
    joined = keyed.join(objects.select([*OBJECT_KEYS, PARTITION_COLUMN]), list(OBJECT_KEYS), use_threads=False)
    if joined.num_rows != matches.num_rows:
        raise ValueError(f"{matches.num_rows - joined.num_rows} match rows have no object")
    nights = joined.column(PARTITION_COLUMN).take(pc.sort_indices(joined.column(row)))
    return matches.append_column(_NIGHT, nights.cast(pa.int32())).cast(XMATCH.schema)


def registry_rows(pending: pa.Table, matches: pa.Table, batch_id: int) -> pa.Table:
    """``xmatch_objects`` rows of the matched (object, catalog version) pairs, with their match count."""
    counts = matches.group_by(list(REGISTRY_KEYS), use_threads=False).aggregate([([], "count_all")])
    joined = pending.join(counts, list(REGISTRY_KEYS), use_threads=False)
    joined = joined.append_column("n_matches", pc.fill_null(joined.column("count_all"), 0).cast(pa.int32()))
    joined = joined.append_column("batch", pa.repeat(pa.scalar(batch_id, pa.int64()), joined.num_rows))
    return joined.select(XMATCH_OBJECTS.schema.names).cast(XMATCH_OBJECTS.schema)


def crossmatch_batch(alerts: pa.Table, catalogs: Sequence[tuple[CatalogSpec, pa.Table]],
                     registered: pa.Table | None, batch_id: int) -> tuple[pa.Table, pa.Table]:
    """The ``xmatch`` and ``xmatch_objects`` rows of a batch's alerts (``lenga.xmatch.objects``
    columns) against prepared catalogs held whole (``(spec, hpx-sorted table)``).

    Every alert of an object must be in ``alerts`` (its position is their mean direction).  Objects
    already ``registered`` against a catalog's version are skipped for that catalog.
    """
    objects = alert_objects(alerts)
    pending = pending_objects(objects, [spec for spec, _ in catalogs], registered)
    parts = []
    for spec, table in catalogs:
        mine = pending.filter(pc.equal(pending.column("catalog"), spec.name)).select(list(OBJECT_COLUMNS))
        parts.append(match_rows(crossmatch(mine, table, spec), *kept_columns(spec, table.schema)))
    matches = with_night(pa.concat_tables(parts), objects)
    return matches, registry_rows(pending, matches, batch_id)
