"""lenga.io.checkpoint: the micro-batch id from Spark's offset log, as a Python source sees it."""

import json

import pytest

from lenga.io.checkpoint import batch_id_of

METADATA = '{"batchWatermarkMs":0,"batchTimestampMs":1795540097315,"conf":{}}'


def write_offsets(checkpoint, batch_id, *sources):
    offsets = checkpoint / "offsets"
    offsets.mkdir(exist_ok=True)
    (offsets / str(batch_id)).write_text("\n".join(["v1", METADATA, *(json.dumps(s) for s in sources)]))


def test_batch_id_is_the_logged_batch_with_these_end_offsets(tmp_path):
    write_offsets(tmp_path, 0, {"ztf": {"0": 10, "1": 12}})
    write_offsets(tmp_path, 1, {"ztf": {"0": 20, "1": 22}})
    (tmp_path / "offsets" / ".1.crc").write_text("not a batch")
    assert batch_id_of(str(tmp_path), {"ztf": {"1": 12, "0": 10}}) == 0  # key order is irrelevant
    assert batch_id_of(str(tmp_path), {"ztf": {"0": 20, "1": 22}}) == 1


def test_batch_ids_are_compared_as_numbers_not_names(tmp_path):
    for batch_id in range(12):
        write_offsets(tmp_path, batch_id, {"ztf": {"0": 10 * batch_id}})
    assert batch_id_of(str(tmp_path), {"ztf": {"0": 110}}) == 11


def test_unknown_end_offsets_fail_loudly(tmp_path):
    write_offsets(tmp_path, 0, {"ztf": {"0": 10}})
    with pytest.raises(RuntimeError, match="no micro-batch ending at"):
        batch_id_of(str(tmp_path), {"ztf": {"0": 11}})
    with pytest.raises(RuntimeError, match="offset log"):
        batch_id_of(str(tmp_path / "elsewhere"), {"ztf": {"0": 10}})
