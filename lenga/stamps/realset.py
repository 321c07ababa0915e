"""Real labelled ZTF stamps -> alerts-table rows the production classifier reads, and their scores.

The simulator alone taught the stamp classifier a sky that is not quite the real one (issue 19):
``stamps.parquet`` of ``../shared/data/real`` (see its README) holds real ZTF cutout triplets with
the alert metadata and an object-level label in the five stamp classes. :func:`read_stamp_set`
turns such a file (or a directory holding one) into rows of :data:`lenga.schema.ALERTS` (what
:class:`lenga.stamps.inference.StampClassifier` and :func:`lenga.stamps.features.model_inputs`
read: ``isdiffpos`` as a boolean, ids and types as in the stream) plus the label columns
:data:`LABEL` and :data:`LABEL_QUALITY`. Metadata absent from the file (``srmag1`` always; all of
it for a few rows of a published training set) stays null, and the features fill it with their
documented values, exactly as for a stream alert without it.

:func:`real_bogus_alerts` adds real bogus examples from genuine alert packets: ZTF's own
real-bogus scores are the evidence, and only a strong verdict of both counts (:data:`BOGUS_DRB`,
:data:`BOGUS_RB`, no known solar-system object within :data:`ASTEROID_DISTANCE`).

:func:`score_stamps` runs a classifier on such rows and :func:`stamp_metrics` scores
probabilities against the labels (per-class recall and precision, balanced recall over the
classes with at least :data:`MIN_SUPPORT` rows, the same on first detections, the fraction of
known variable stars called bogus, the expected calibration error, the confusion matrix); the
training job uses the latter on out-of-fold predictions. Pure pyarrow/numpy: no Spark.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lenga import schema
from lenga.night import JD_MINUS_MJD, PALOMAR_LONGITUDE_DEG, night_from_mjd
from lenga.scores import MIN_CLASS_SIZE, calibration, class_report
from lenga.stamps import CLASSES
from lenga.stamps.preprocess import CUTOUT_COLUMNS

#: File name of the real stamp set inside a data directory.
STAMPS_FILE = "stamps.parquet"
#: Label columns appended to the alerts-table rows.
LABEL = "stamp_label"
LABEL_QUALITY = "stamp_label_quality"
#: Columns a real stamp file must have (metadata columns are optional).
REQUIRED_COLUMNS = ("object_id", LABEL, "stamp_encoding", *CUTOUT_COLUMNS)
#: Cutout encodings :func:`lenga.stamps.preprocess.read_fits` reads.
ENCODINGS = ("gzip_fits", "fits")
#: Classes with fewer labelled rows than this are left out of the balanced recall (too noisy).
MIN_SUPPORT = MIN_CLASS_SIZE
#: A first detection: no earlier detection at the position (ALeRCE's stamp-classifier use).
FIRST_DETECTION_NDETHIST = 1
#: Real bogus evidence: ZTF's deep real-bogus score below BOGUS_DRB *and* its random-forest score
#: below BOGUS_RB (Duev et al. 2019 put real sources at drb > 0.5), and no known asteroid within
#: ASTEROID_DISTANCE arcsec (ZTF's MPC association, as the asteroid labels of the real set).
BOGUS_DRB = 0.1
BOGUS_RB = 0.5
ASTEROID_DISTANCE = 5.0
_TRUE = {"t", "1", "true"}
_FALSE = {"f", "0", "false"}


def _source(path: str | Path) -> Path:
    path = Path(path)
    return path / STAMPS_FILE if path.is_dir() else path


def read_stamp_set(path: str | Path) -> pa.Table:
    """Alerts-table rows (:data:`lenga.schema.ALERTS`) plus :data:`LABEL`, :data:`LABEL_QUALITY` of
    a real stamp file (``stamps.parquet`` or a directory holding one).

    Raises ValueError, with one line saying what is wrong, for an absent or unreadable file, missing
    required columns, an empty file, unknown labels or unknown cutout encodings.
    """
    source = _source(path)
    try:
        table = pq.read_table(source)
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"real stamp set {source}: cannot read it ({exc})") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in table.schema.names]
    if missing:
        raise ValueError(f"real stamp set {source}: missing required columns {missing}")
    if table.num_rows == 0:
        raise ValueError(f"real stamp set {source}: no rows")
    unknown = sorted(set(table.column(LABEL).to_pylist()) - set(CLASSES), key=str)
    if unknown:
        raise ValueError(f"real stamp set {source}: unknown stamp labels {unknown} (known: {list(CLASSES)})")
    encodings = sorted(set(table.column("stamp_encoding").to_pylist()) - set(ENCODINGS), key=str)
    if encodings:
        raise ValueError(f"real stamp set {source}: unknown stamp_encoding {encodings} (known: {list(ENCODINGS)})")
    return _alert_rows(table)


def _numbers(column: pa.ChunkedArray, field: pa.Field) -> pa.Array:
    """A numeric or string column as ``field``'s type; NaN and unparsable values become null."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        values = np.array([_parse(v) for v in column.to_pylist()], dtype=float)
    else:
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False).astype(float)
    if pa.types.is_integer(field.type):
        ok = np.isfinite(values)
        return pa.array(np.where(ok, values, 0).astype(np.int64), mask=~ok).cast(field.type)
    return pa.array(values, mask=np.isnan(values)).cast(field.type)


def _parse(value: str | None) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def _isdiffpos(column: pa.ChunkedArray) -> pa.Array:
    """ZTF's 't'/'f' (or '1'/'0', booleans) as the alerts table's boolean; anything else null."""
    if pa.types.is_boolean(column.type):
        return column.combine_chunks()
    return pa.array([True if str(v).lower() in _TRUE else False if str(v).lower() in _FALSE else None
                     for v in column.to_pylist()], pa.bool_())


def _alert_rows(table: pa.Table) -> pa.Table:
    """The rows of a validated real stamp file in the alerts-table layout, labels appended."""
    n = table.num_rows
    names = set(table.schema.names)
    columns: dict[str, pa.Array] = {
        "survey": pa.array(["ztf"] * n, pa.string()),
        "objectId": pc.cast(table.column("object_id"), pa.string()).combine_chunks(),
    }
    for field in schema.ALERTS:
        if field.name in columns or field.name not in names:
            continue
        if field.name == "isdiffpos":
            columns[field.name] = _isdiffpos(table.column(field.name))
        elif pa.types.is_binary(field.type) or pa.types.is_string(field.type):
            columns[field.name] = pc.cast(table.column(field.name), field.type).combine_chunks()
        else:
            columns[field.name] = _numbers(table.column(field.name), field)
    if "mjd" in columns:
        mjd = columns["mjd"].to_numpy(zero_copy_only=False).astype(float)
        ok = np.isfinite(mjd)
        columns["jd"] = pa.array(mjd + JD_MINUS_MJD, mask=~ok)
        nights = night_from_mjd(np.where(ok, mjd, 0.0), PALOMAR_LONGITUDE_DEG)
        columns["night"] = pa.array(nights, pa.int32(), mask=~ok)
    if "candid" in columns:
        columns["alertId"] = columns["candid"]
    arrays = [columns.get(f.name, pa.nulls(n, f.type)) for f in schema.ALERTS]
    rows = pa.Table.from_arrays(arrays, schema=schema.ALERTS)
    quality = (table.column(LABEL_QUALITY) if LABEL_QUALITY in names else pa.nulls(n, pa.string()))
    return rows.append_column(LABEL, pc.cast(table.column(LABEL), pa.string())) \
        .append_column(LABEL_QUALITY, pc.cast(quality, pa.string()))


def real_bogus_alerts(alerts: pa.Table, exclude_objects: set[str] = frozenset()) -> pa.Table:
    """Alerts-table rows of genuine ZTF alerts that ZTF's own scores call bogus, labelled ``bogus``.

    A row qualifies with ``drb`` < :data:`BOGUS_DRB` and ``rb`` < :data:`BOGUS_RB` (both scores
    agree), no known solar-system object within :data:`ASTEROID_DISTANCE` arcsec, and an object not
    in ``exclude_objects`` (e.g. the objects of the labelled stamp set: one label per object).
    """
    def values(name: str) -> np.ndarray:
        return pc.cast(alerts.column(name), pa.float64()).to_numpy(zero_copy_only=False).astype(float)

    ssdist = values("ssdistnr")
    near_asteroid = (ssdist >= 0) & (ssdist <= ASTEROID_DISTANCE)
    known = np.array([o in exclude_objects for o in alerts.column("objectId").to_pylist()], dtype=bool)
    keep = (values("drb") < BOGUS_DRB) & (values("rb") < BOGUS_RB) & ~near_asteroid & ~known
    rows = alerts.select(schema.ALERTS.names).filter(pa.array(keep))
    n = rows.num_rows
    return rows.append_column(LABEL, pa.array(["bogus"] * n, pa.string())) \
        .append_column(LABEL_QUALITY, pa.array([f"ztf_drb<{BOGUS_DRB}_rb<{BOGUS_RB}"] * n, pa.string()))


def first_detection(rows: pa.Table) -> np.ndarray:
    """Boolean mask of the rows that are first detections (``ndethist`` <= 1; unknown: False)."""
    ndethist = pc.cast(rows.column("ndethist"), pa.float64()).to_numpy(zero_copy_only=False).astype(float)
    return ndethist <= FIRST_DETECTION_NDETHIST


def score_stamps(classifier, frame: pa.Table) -> dict:
    """:func:`stamp_metrics` of ``classifier`` (a :class:`lenga.stamps.inference.StampClassifier`)
    on ``frame`` (rows of :func:`read_stamp_set`); rows whose cutouts cannot be read are counted
    in ``unclassified`` and left out of the metrics."""
    probabilities, reasons = classifier.predict(frame)
    ok = np.array([r is None for r in reasons], dtype=bool)
    labels = np.array(frame.column(LABEL).to_pylist(), dtype=object)
    metrics = stamp_metrics(labels[ok], probabilities[ok], first_detection(frame)[ok])
    metrics["unclassified"] = int((~ok).sum())
    metrics["classifier_version"] = classifier.version
    return metrics


def stamp_metrics(labels, probabilities: np.ndarray, first: np.ndarray) -> dict:
    """Scores of ``probabilities`` (N, 5, in :data:`CLASSES` order) against ``labels`` (N class
    names); ``first`` marks first detections.

    ``per_class.<class>.{n, recall, precision}`` and ``balanced_recall`` (mean recall over the
    classes with n >= :data:`MIN_SUPPORT`, listed in ``balanced_over``) as :func:`lenga.scores.class_report`
    gives them; ``first_detection`` (the same on the first detections); ``known_vs_called_bogus``
    (fraction of VS rows predicted bogus); ``ece`` (:func:`lenga.scores.calibration`);
    ``confusion_matrix`` {classes, counts (rows: truth)}.
    """
    labels = np.asarray(labels, dtype=object)
    predicted = np.asarray(CLASSES, dtype=object)[probabilities.argmax(axis=1)] if len(labels) else labels
    first = np.asarray(first, dtype=bool)
    counts = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    np.add.at(counts, ([CLASSES.index(c) for c in labels], [CLASSES.index(c) for c in predicted]), 1)
    vs = labels == "VS"

    def report(rows: np.ndarray) -> dict:
        part = class_report(labels[rows], predicted[rows], CLASSES, MIN_SUPPORT)
        return {"n": part["n"], "per_class": part["per_class"], "balanced_recall": part["balanced_recall"],
                "balanced_over": [c for c, m in part["per_class"].items() if m["n"] >= MIN_SUPPORT]}

    return {
        **report(np.ones(len(labels), dtype=bool)),
        "first_detection": report(first),
        "known_vs_called_bogus": float((predicted[vs] == "bogus").mean()) if vs.any() else None,
        "ece": calibration(probabilities.max(axis=1), predicted == labels)["ece"] if len(labels) else None,
        "confusion_matrix": {"classes": list(CLASSES), "counts": counts.tolist()},
    }
