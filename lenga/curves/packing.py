"""Light-curve points packed per object: what the aggregation query hands the JVM.

The aggregation keeps, per object, every point lenga stored for it (lenga.stream.aggregate). Given one
row per point (about 55 per simulated ZTF object: detections, upper limits, forced photometry),
Spark's JVM turned each into a row and a struct, appended it to the object's ``collect_list``
buffer, serialised it into the RocksDB state and back out to Arrow for the Python pass: ~60% of the
aggregation's CPU, spread over those per-point steps (JFR, 20,000 alerts). Points are therefore
grouped by object where they are read, in the Python task, and each object's points become one
binary value of fixed-width records (:data:`POINT_RECORD`); the JVM collects those opaque values
(a few per object and micro-batch instead of dozens of structs) and the Python pass unpacks all of
a block's objects at once with numpy.

A packed row (:data:`PACKED_SCHEMA`) is one object's points and latest alert context from one
chunk of the source: ``points`` (null when the chunk had only its alert rows) and the context of
its latest alert by (mjd, candid) (null when it had none, ``alert_candid`` then ``NO_CANDID``). Packing keeps every point as it is, so
the curves are exactly those the point rows gave: de-duplication stays in
:func:`lenga.curves.points.merge_curves`.

Records: float64 columns keep NaN for a missing value (as the curves do), ``candid`` is
``NO_CANDID`` for non-detections, ``kind``/``band`` are indices into :data:`KINDS`/:data:`BANDS`,
the boolean columns (``isdiffpos``, ``corrected``, ``stellar``) are 0/1 and -1 when unknown.
Little-endian whatever the machine, so a value packed on one executor unpacks on any other.

Each value starts with :data:`LAYOUT_TAG`, which names the record layout: an aggregation state
written with another layout (an earlier lenga version's checkpoint) is refused with a clear error
instead of being misread.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lenga.curves.points import BANDS, CONTEXT_COLUMNS, CURVE_COLUMNS, DETECTION, KINDS, NO_CANDID, OBJECT_KEY

#: The kind of a row carrying an alert's context into the aggregation (not a light-curve point).
ALERT = "alert"
#: Values of the tagged-union column naming each input row's table (lenga.stream.aggregate.POINT_READS).
DETECTIONS, NON_DETECTIONS, ALERTS = "detections", "non_detections", "alerts"

_FLOAT_COLUMNS = ("mjd", "magpsf", "sigmapsf", "psfFlux", "psfFluxErr", "diffmaglim", "ra", "dec", "magpsf_corr")
_BOOLEAN_COLUMNS = ("isdiffpos", "corrected", "stellar")
#: One light-curve point, 85 bytes.
POINT_RECORD = np.dtype([("mjd", "<f8"), ("candid", "<i8"), *[(c, "<f8") for c in _FLOAT_COLUMNS[1:]],
                         ("kind", "u1"), ("band", "u1"), *[(c, "i1") for c in _BOOLEAN_COLUMNS]])
#: A boolean column (``isdiffpos``, ``corrected``, ``stellar``) of a record whose value is unknown.
UNKNOWN_BOOLEAN = -1
#: First bytes of every packed value, in a header of one record's size: the record layout (2: with
#: the magnitude correction).
LAYOUT_TAG = b"LPv2"
_LAYOUT_HEADER = np.frombuffer(LAYOUT_TAG.ljust(POINT_RECORD.itemsize, b"\0"), POINT_RECORD)

#: The latest alert's context in a packed row: its time and candid (the ordering) and the columns.
CONTEXT_FIELDS = [pa.field("alert_mjd", pa.float64()), pa.field("alert_candid", pa.int64()),
                  *[pa.field(c, pa.float64()) for c in CONTEXT_COLUMNS]]
PACKED_SCHEMA = pa.schema([pa.field("survey", pa.string()), pa.field("objectId", pa.string()),
                           pa.field("points", pa.binary()), *CONTEXT_FIELDS])

#: Rows per packed chunk at most: a task's input is packed in chunks this size (~1 MB of records
#: per 10,000 points), so an object gets one packed row per chunk it appears in.
CHUNK_ROWS = 200_000


def _codes(values: pa.ChunkedArray | pa.Array, known: tuple[str, ...], what: str) -> np.ndarray:
    """Indices of ``values`` in ``known``, or a clear error naming the values that are not."""
    index = pc.index_in(values, value_set=pa.array(known))
    if index.null_count:
        bad = pc.unique(pc.filter(values, pc.is_null(index))).to_pylist()
        raise ValueError(f"unknown point {what}(s) {sorted(map(str, bad))}; expected one of {known}")
    return index.to_numpy(zero_copy_only=False).astype(np.uint8)


def _records(points: pa.Table) -> np.ndarray:
    """The points (detections and non-detections, tagged by table) as :data:`POINT_RECORD` s."""
    if pc.any(pc.is_null(points["mjd"])).as_py() or points["band"].null_count:
        raise ValueError("every light-curve point needs mjd and band")
    is_detection = pc.equal(points["table"], DETECTIONS)
    kind = pc.if_else(is_detection, DETECTION, points["kind"])
    candid = pc.if_else(pc.equal(points["table"], NON_DETECTIONS), NO_CANDID, points["candid"])
    if pc.any(pc.and_(is_detection, pc.is_null(candid))).as_py():
        raise ValueError("a detection without candid cannot be de-duplicated")
    records = np.empty(points.num_rows, dtype=POINT_RECORD)
    for column in _FLOAT_COLUMNS:
        records[column] = pc.fill_null(points[column].cast(pa.float64()), np.nan).to_numpy()
    records["candid"] = pc.fill_null(candid, NO_CANDID).to_numpy()
    records["kind"] = _codes(kind, KINDS, "kind")
    records["band"] = _codes(points["band"], BANDS, "band")
    for column in _BOOLEAN_COLUMNS:
        records[column] = (pc.fill_null(points[column].cast(pa.int8()), UNKNOWN_BOOLEAN).to_numpy()
                           if column in points.column_names else UNKNOWN_BOOLEAN)
    return records


def key_run_starts(survey: np.ndarray, object_id: np.ndarray) -> np.ndarray:
    """Start of each run of equal (survey, objectId) in key-sorted rows (none for no rows)."""
    change = (survey[1:] != survey[:-1]) | (object_id[1:] != object_id[:-1])
    return np.flatnonzero(np.r_[len(survey) > 0, change])


def _group_starts(keys: pa.Table) -> np.ndarray:
    return key_run_starts(*(keys[k].to_numpy(zero_copy_only=False) for k in OBJECT_KEY))


def _packed_points(points: pa.Table) -> pa.Table:
    """Per object of ``points``: its key and all its points as one binary value."""
    points = points.take(pc.sort_indices(points, [("survey", "ascending"), ("objectId", "ascending")]))
    records = _records(points)
    starts = _group_starts(points)
    # each value: the layout header, then its object's records
    tagged = np.insert(records, starts, _LAYOUT_HEADER)
    offsets = (np.r_[starts, points.num_rows] + np.arange(len(starts) + 1)).astype(np.int32) * POINT_RECORD.itemsize
    values = pa.Array.from_buffers(pa.binary(), len(starts), [None, pa.py_buffer(offsets), pa.py_buffer(tagged)])
    return pa.table({"survey": points["survey"].take(starts), "objectId": points["objectId"].take(starts),
                     "points": values})


def _latest_contexts(alerts: pa.Table) -> pa.Table:
    """Per object of ``alerts``: the context of its latest alert by (mjd, candid)."""
    order = [("survey", "ascending"), ("objectId", "ascending"), ("mjd", "descending", "at_end"),
             ("candid", "descending", "at_end")]
    alerts = alerts.take(pc.sort_indices(alerts, order))
    latest = alerts.take(_group_starts(alerts))
    return pa.table({"survey": latest["survey"], "objectId": latest["objectId"],
                     "alert_mjd": latest["mjd"].cast(pa.float64()), "alert_candid": latest["candid"].cast(pa.int64()),
                     **{c: latest[c].cast(pa.float64()) for c in CONTEXT_COLUMNS}})


def pack_points(rows: pa.Table, table_column: str = "table") -> pa.Table:
    """Rows of the aggregation's tables (a tagged union: ``table_column`` names each row's table,
    ``detections``, ``non_detections`` or ``alerts``, and the other columns are those of
    lenga.stream.aggregate.POINT_READS) → :data:`PACKED_SCHEMA` rows, one per object."""
    rows = rows.rename_columns(["table" if c == table_column else c for c in rows.column_names])
    is_alert = pc.equal(rows["table"], ALERTS)
    points = _packed_points(rows.filter(pc.invert(is_alert)))
    contexts = _latest_contexts(rows.filter(is_alert))
    packed = points.join(contexts, keys=OBJECT_KEY, join_type="full outer")
    # No null candid: pandas would turn the column into float64, and ZTF candids exceed 2**53.
    packed = packed.set_column(packed.schema.get_field_index("alert_candid"), "alert_candid",
                               pc.fill_null(packed["alert_candid"], NO_CANDID))
    return packed.select(PACKED_SCHEMA.names).cast(PACKED_SCHEMA)


def table_blocks(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """Non-empty Arrow batches regrouped into tables of at least ``size`` rows (the last smaller):
    the aggregation's vectorised steps cost less per row on large blocks than on Spark's batches."""
    pending, rows = [], 0
    for batch in batches:
        if batch.num_rows:
            pending.append(batch)
            rows += batch.num_rows
        if rows >= size:
            yield pa.Table.from_batches(pending)
            pending, rows = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def pack_batches(batches: Iterator[pa.RecordBatch], table_column: str = "table",
                 chunk_rows: int = CHUNK_ROWS) -> Iterator[pa.RecordBatch]:
    """Arrow batches of the tagged union → packed batches, ``chunk_rows`` input rows at a time."""
    for chunk in table_blocks(batches, chunk_rows):
        yield from pack_points(chunk, table_column).to_batches()


def unpack_points(survey: np.ndarray, object_id: np.ndarray, values: list[bytes | None]) -> pd.DataFrame:
    """Packed values (one per element of ``survey``/``objectId``; None for none) → one row per point:
    the object key and lenga.curves.points.CURVE_COLUMNS as Spark's point rows carry them (candid int64
    with ``NO_CANDID`` for non-detections, the boolean columns nullable)."""
    sizes = np.fromiter((0 if v is None else len(v) for v in values), dtype=np.int64, count=len(values))
    if np.any(sizes % POINT_RECORD.itemsize) or not all(v.startswith(LAYOUT_TAG) for v in values if v):
        raise ValueError(f"packed points of another layout than {LAYOUT_TAG.decode()} ({POINT_RECORD.itemsize}-byte "
                         "records): an aggregation state written by an earlier lenga version; start the aggregation "
                         "from a new checkpoint (its state is rebuilt from the lake)")
    header = POINT_RECORD.itemsize
    records = np.frombuffer(b"".join(memoryview(v)[header:] for v in values if v), dtype=POINT_RECORD)
    owner = np.repeat(np.arange(len(values)), np.maximum(sizes // POINT_RECORD.itemsize - 1, 0))
    columns = {
        "survey": np.asarray(survey, dtype=object)[owner], "objectId": np.asarray(object_id, dtype=object)[owner],
        "kind": np.asarray(KINDS, dtype=object)[records["kind"]], "band": np.asarray(BANDS, dtype=object)[records["band"]],
        **{c: pd.arrays.BooleanArray(records[c] == 1, records[c] == UNKNOWN_BOOLEAN) for c in _BOOLEAN_COLUMNS},
        **{c: records[c].copy() for c in ("candid", *_FLOAT_COLUMNS)},
    }
    return pd.DataFrame({c: columns[c] for c in [*OBJECT_KEY, *CURVE_COLUMNS]})
