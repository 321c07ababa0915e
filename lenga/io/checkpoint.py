"""What a streaming query's checkpoint says about its micro-batches (Spark's offset log).

Spark writes ``<checkpoint>/offsets/<batch id>`` (a version line, a metadata line, then one JSON
line per source with the batch's end offsets) *before* it plans the batch's tasks, and re-runs a
batch found in that log after a restart with the same offsets. A Python data source is never told
the batch id; it is told the end offsets, so it can look the id up here: the highest logged batch
whose end offsets are those. That lets a source that writes lake files itself tag the rows with
the id that ``foreachBatch`` receives for the same batch.

The checkpoint must be on a file system the driver opens with ``open()`` (local disk or a mount),
the same assumption as :func:`query_app_id`.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Lines of an offset-log file before the per-source offsets (Spark's OffsetSeqLog format "v1").
OFFSET_LOG_HEADER_LINES = 2


def batch_id_of(checkpoint: str, end: dict) -> int:
    """Id of the micro-batch that reads up to ``end``; raises if the offset log has none."""
    log = Path(checkpoint) / "offsets"
    ids = sorted((int(p.name) for p in log.iterdir() if p.name.isdigit()), reverse=True) if log.is_dir() else []
    for batch_id in ids:
        lines = (log / str(batch_id)).read_text().splitlines()[OFFSET_LOG_HEADER_LINES:]
        if any(line and json.loads(line) == end for line in lines):
            return batch_id
    raise RuntimeError(f"no micro-batch ending at {end} in the offset log {log} (checkpoint of another query?)")


def query_app_id(checkpoint: str) -> str:
    """The Delta application id of a streaming query: ``lenga-<query id>``.

    The query id is written by Spark in ``<checkpoint>/metadata`` before the first batch and stays
    the same across restarts from that checkpoint, which is what replay detection needs.
    """
    with open(Path(checkpoint) / "metadata") as handle:
        return "lenga-" + json.loads(handle.readline())["id"]
