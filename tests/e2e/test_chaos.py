"""Chaos runs of the three queries in CI: one kill -9 each, on a tiny simulated night.

The documented, larger runs (20+ runs of 3 kills per query): docs/chaos.md.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lenga.bench.chaos import (
    Chaos,
    ChaosSettings,
    compare_multisets,
    compare_tables,
    compare_topics,
    table_rows,
)


@pytest.fixture(scope="module")
def chaos(tmp_path_factory):
    settings = ChaosSettings(tmp_path_factory.mktemp("chaos"), objects=20, nights=2, alerts_per_batch=10,
                             timeout_s=400)
    with Chaos(settings) as harness:
        harness.publish_night()
        yield harness


def test_comparison_counts_lost_duplicated_and_changed_rows(tmp_path):
    rows = {"survey": ["ztf"] * 3, "candid": [1, 2, 3], "mag": [18.0, float("nan"), 19.5], "ingest_batch_id": [0, 0, 1]}
    write_deltalake(str(tmp_path / "ref" / "detections"), pa.table(rows))
    run = {"survey": ["ztf"] * 4, "candid": [1, 1, 2, 3], "mag": [18.0, 18.0, float("nan"), 19.0],
           "ingest_batch_id": [5, 6, 7, 8]}  # batch ids are not compared
    write_deltalake(str(tmp_path / "run" / "detections"), pa.table(run))
    (result,) = compare_tables(tmp_path / "ref", tmp_path / "run", {"detections": ("survey", "candid")}).values()
    assert result == {"rows": 4, "reference_rows": 3, "lost": 1, "duplicated": 1, "unexpected": 1, "duplicate_keys": 1}
    assert table_rows(tmp_path / "absent") is None
    assert compare_multisets(Counter("aab"), Counter("ab")) == {"lost": 1, "duplicated": 0, "unexpected": 0}
    topics = compare_topics({"f": [(b"k", b"1", "r1"), (b"k", b"2", "r2")]},
                            {"f": [(b"k", b"1", "r1"), (b"k", b"1", "r1"), (b"k", b"2", "r2")]})
    assert topics["f"]["duplicated"] == 1 and topics["f"]["lost"] == 0 and topics["f"]["after_dedup_equal"]


@pytest.mark.timeout(900)  # the query's reference run included (the first test of each query)
@pytest.mark.parametrize("query", ["ingest", "aggregate", "distribute"])
def test_kill_9_loses_nothing_and_duplicates_nothing(chaos, query):
    result = chaos.run(query, kills=1, seed=3)
    assert result["error"] is None, result
    assert result["kills_delivered"] >= 1 or result["starts"] == 1, result
    tables, topics = result["tables"], result["topics"]
    assert all(t["lost"] == t["duplicated"] == t["unexpected"] == t["duplicate_keys"] == 0 for t in tables.values()), tables
    if query == "distribute":  # at least once: every reference message, nothing else
        assert topics and all(t["lost"] == t["unexpected"] == 0 and t["after_dedup_equal"] for t in topics.values())
    assert result["ok"]
