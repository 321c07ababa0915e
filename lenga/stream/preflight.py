"""Checks run once when a job starts, and the jobs' last-resort error handler.

What cannot work must fail at once, with one line that says what to do, rather than deep inside
Spark with a stack trace, or worse, run and write a wrong result:

- **the lake's format**: every lake holds ``_lenga_lake.json`` (written by the first job that uses
  it) naming the lake format; a lake of another format, or with an unreadable marker, is refused;
- **the tables' schemas**: an existing ``alerts``, ``detections``, ``non_detections``,
  ``quarantine``, ``objects`` or ``lc_classifications`` table must have every column this version writes, with the same
  type (a table written by an incompatible version would otherwise fail mid-batch or be misread).
  The one exception is schema evolution: a table lacking only columns that this version added
  (``TableSpec.added_columns``, nullable) is given them by a Delta schema change, and its older
  rows read them as null;
- **the checkpoint**: the files Spark reads on restart (``metadata``, the latest ``offsets`` and
  ``commits`` entries) must parse; Spark's own error for a damaged one is a JVM stack trace;
- **the aggregation's state layout**: an aggregation checkpoint notes the layout of its packed
  light-curve points (:data:`lenga.curves.packing.LAYOUT_TAG`); one that has committed batches
  without that note (an earlier version's) or with another layout is refused;
- **a full disk** (ENOSPC, from Python or from the JVM, however wrapped): :func:`run_job` turns it
  into one line; the query restarts from its checkpoint once there is space.

Only local paths are checked (``file://`` or plain); a lake or checkpoint on an object store is left
to Spark.
"""

from __future__ import annotations

import errno
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, Field

from lenga.curves.magstats import OBJECTS_SPEC
from lenga.curves.packing import LAYOUT_TAG
from lenga.lc_classifier.inference import SPEC as LC_CLASSIFICATIONS_SPEC
from lenga.tables import TABLE_SPECS, TableSpec

#: The lake format this version reads and writes; bump it when a table changes incompatibly.
LAKE_FORMAT = 1
LAKE_MARKER = "_lenga_lake.json"
#: In an aggregation checkpoint: the layout of the light-curve points in its state.
POINTS_LAYOUT_MARKER = "_lenga_points_layout"
#: Exit status of a job that stopped on a preflight error, and on a full disk.
EXIT_PREFLIGHT = 2
EXIT_NO_SPACE = 3


class PreflightError(Exception):
    """A condition the job cannot run under; the message is the one line the user sees."""


def _local(path: str | Path | None) -> Path | None:
    if path is None:
        return None
    text = str(path)
    if text.startswith("file://"):
        text = text[len("file://"):]
    elif "://" in text:
        return None
    return Path(text)


def check_lake_format(root: str | Path) -> None:
    """Refuse a lake of another format; mark a new (or unmarked) lake with :data:`LAKE_FORMAT`."""
    lake = _local(root)
    if lake is None:
        return
    marker = lake / LAKE_MARKER
    if marker.exists():
        try:
            found = json.loads(marker.read_text())["format"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PreflightError(
                f"lake {lake}: its format marker {marker} is unreadable ({exc.__class__.__name__}); restore it "
                f"(this version writes {{\"format\": {LAKE_FORMAT}}}) or point --lake at another directory") from None
        if found != LAKE_FORMAT:
            raise PreflightError(
                f"lake {lake} has lake format {found!r}, this lenga version reads format {LAKE_FORMAT}: "
                "use the lenga version that wrote it, or point --lake at a new directory") from None
        return
    lake.mkdir(parents=True, exist_ok=True)
    partial = marker.with_suffix(".tmp")
    partial.write_text(json.dumps({"format": LAKE_FORMAT, "writer": "lenga"}) + "\n")
    partial.replace(marker)


def _plain_type(kind: pa.DataType) -> pa.DataType:
    """Arrow types that store the same values made equal (large / view variants)."""
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pa.string()
    if pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind):
        return pa.binary()
    if pa.types.is_large_list(kind) or pa.types.is_list_view(kind):
        return pa.list_(_plain_type(kind.value_type))
    if pa.types.is_list(kind):
        return pa.list_(_plain_type(kind.value_type))
    if pa.types.is_struct(kind):
        return pa.struct([pa.field(f.name, _plain_type(f.type)) for f in kind])
    if pa.types.is_map(kind):
        return pa.map_(_plain_type(kind.key_type), _plain_type(kind.item_type))
    return kind


def check_table_schemas(root: str | Path, tables: dict[str, TableSpec]) -> dict[str, list[str]]:
    """Every existing table of ``tables`` (name → the spec this version writes) has every column
    with the same type; a table not created yet passes. A table lacking only columns of its
    ``added_columns`` gets them (one Delta schema change each); returns the columns added, by table."""
    lake = _local(root)
    if lake is None:
        return {}
    added = {}
    for name, spec in tables.items():
        path = lake / name
        if not (path / "_delta_log").is_dir():
            continue
        try:
            table = DeltaTable(str(path))
            stored = pa.schema(table.schema().to_arrow())
        except Exception as exc:  # noqa: BLE001 - any failure to read the log is the same answer
            raise PreflightError(f"table {path} is unreadable ({exc.__class__.__name__}: {str(exc)[:120]}): restore "
                                 "it from a backup, or point --lake at a new directory") from None
        schema = spec.schema
        missing = [f.name for f in schema if f.name not in stored.names]
        changed = [f"{f.name} ({stored.field(f.name).type}, expected {f.type})" for f in schema
                   if f.name in stored.names and _plain_type(stored.field(f.name).type) != _plain_type(f.type)]
        if missing and not changed and set(missing) <= set(spec.added_columns):
            table.alter.add_columns([Field.from_arrow(schema.field(column)) for column in missing])
            added[name] = missing
        elif missing or changed:
            what = "; ".join(filter(None, [missing and f"lacks column(s) {', '.join(missing)}",
                                           changed and f"has changed column(s) {', '.join(changed)}"]))
            raise PreflightError(f"table {path} {what}: it was written by an incompatible lenga version; use that "
                                 "version, or point --lake at a new directory and re-ingest")
    return added


def _check_json_lines(path: Path, header_lines: int) -> None:
    lines = path.read_text().splitlines()
    if not lines or not lines[0].startswith("v"):
        raise ValueError("no version line")
    for line in lines[1:header_lines] + [line for line in lines[header_lines:] if line and line != "-"]:
        json.loads(line)


def check_checkpoint(checkpoint: str | Path | None) -> None:
    """The checkpoint files Spark reads on restart parse: ``metadata``, the latest ``offsets/<n>``
    and ``commits/<n>``. A checkpoint that does not exist yet passes."""
    root = _local(checkpoint)
    if root is None or not root.is_dir():
        return
    checks: list[tuple[Path, Callable[[Path], None]]] = []
    if (root / "metadata").exists():
        checks.append((root / "metadata", lambda p: json.loads(p.read_text().splitlines()[0])["id"]))
    for log, header in (("offsets", 2), ("commits", 1)):
        ids = sorted(int(p.name) for p in (root / log).iterdir() if p.name.isdigit()) if (root / log).is_dir() else []
        if ids:
            checks.append((root / log / str(ids[-1]), lambda p, h=header: _check_json_lines(p, h)))
    for path, check in checks:
        try:
            check(path)
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise PreflightError(
                f"checkpoint {root} is unreadable ({path.relative_to(root)}: {exc.__class__.__name__}): restore it "
                "from a backup, or move it aside and rerun with a new --checkpoint (the query then starts over: "
                "the lake's keyed writes store nothing twice, output topics may repeat alerts)") from None


def check_points_layout(checkpoint: str | Path) -> None:
    """Refuse an aggregation checkpoint whose state holds light-curve points of another layout than
    :data:`LAYOUT_TAG` (noted in :data:`POINTS_LAYOUT_MARKER`; a checkpoint with committed batches
    and no note is an earlier version's); note the layout in a checkpoint that has no batch yet."""
    root = _local(checkpoint)
    if root is None:
        return
    marker, layout = root / POINTS_LAYOUT_MARKER, LAYOUT_TAG.decode()
    commits = root / "commits"
    found = marker.read_text().strip() if marker.exists() else None
    if found is None and commits.is_dir() and any(p.name.isdigit() for p in commits.iterdir()):
        found = "an earlier lenga version's"
    if found is not None and found != layout:
        raise PreflightError(
            f"aggregation checkpoint {root} holds light-curve state in {found} layout, this lenga version keeps "
            f"{layout}: move it aside and rerun with a new --checkpoint (the state and objects are rebuilt from "
            "the lake)")
    if found is None:
        root.mkdir(parents=True, exist_ok=True)
        marker.write_text(layout + "\n")


#: The tables whose schema every job relies on (name → the spec this version writes).
CORE_TABLES = {**TABLE_SPECS, OBJECTS_SPEC.name: OBJECTS_SPEC, LC_CLASSIFICATIONS_SPEC.name: LC_CLASSIFICATIONS_SPEC}


def preflight(lake_root: str | Path, checkpoint: str | Path | None) -> None:
    """All start-up checks of a job, cheapest first; one line on stderr per table given new columns."""
    check_checkpoint(checkpoint)
    check_lake_format(lake_root)
    for table, columns in check_table_schemas(lake_root, CORE_TABLES).items():
        print(f"[lenga] table {table}: added column(s) {', '.join(columns)} (null in the rows written before)",
              file=sys.stderr, flush=True)


def _no_space(exc: BaseException) -> bool:
    """ENOSPC anywhere in the exception's chain, or in a JVM error's text (Py4J, streaming query)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def run_job(main: Callable[[], object]) -> int:
    """Run a job's ``main``; a preflight error or a full disk ends it with one ``[lenga] error:`` line
    on stderr and a non-zero status (anything else propagates, with its traceback)."""
    try:
        main()
    except PreflightError as exc:
        print(f"[lenga] error: {exc}", file=sys.stderr, flush=True)
        return EXIT_PREFLIGHT
    except Exception as exc:
        if not _no_space(exc):
            raise
        where = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
        print(f"[lenga] error: no space left on device{where}: free space on the disk of the lake, the "
              "checkpoint and Spark's local directories (or move them to a larger one), then rerun the job: "
              "it resumes from its checkpoint and stores nothing twice", file=sys.stderr, flush=True)
        return EXIT_NO_SPACE
    return 0
