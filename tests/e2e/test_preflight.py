"""Clear failures where failing is right: a damaged checkpoint, a lake of another version, a full disk.

Each case runs the job's command line as a user would and expects one ``[lenga] error:`` line and a
non-zero exit, before any Spark session starts (no JVM: these are quick).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lenga.stream.preflight import (
    CORE_TABLES,
    EXIT_NO_SPACE,
    EXIT_PREFLIGHT,
    LAKE_FORMAT,
    LAKE_MARKER,
    check_checkpoint,
    check_lake_format,
    check_table_schemas,
    run_job,
)

ROOT = Path(__file__).resolve().parents[2]


def job(name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "jobs" / f"{name}.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("[lenga] error:")]


def test_corrupt_checkpoint_stops_every_job_with_one_line(tmp_path):
    checkpoint = tmp_path / "checkpoint"
    (checkpoint / "offsets").mkdir(parents=True)
    (checkpoint / "metadata").write_text('{"id":"' + str(uuid.uuid4()) + '"}\n')
    (checkpoint / "offsets" / "0").write_text('v1\n{"batchWatermarkMs":0}\n{"t":{"0":5}}\n')
    (checkpoint / "offsets" / "1").write_bytes(b"v1\n\x00\x00\x00garbage{\n")  # torn write
    for name, extra in (("stream", ["--bootstrap", "127.0.0.1:9"]), ("aggregate", []),
                        ("distribute", ["--bootstrap", "127.0.0.1:9"])):
        result = job(name, "--lake", str(tmp_path / "lake"), "--checkpoint", str(checkpoint), *extra)
        assert result.returncode == EXIT_PREFLIGHT, result.stderr[-2000:]
        lines = error_lines(result)
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert f"checkpoint {checkpoint} is unreadable (offsets/1" in lines[0] and "--checkpoint" in lines[0]


def test_unreadable_checkpoint_metadata(tmp_path):
    (tmp_path / "metadata").write_text("not json")
    with pytest.raises(Exception, match="metadata"):
        check_checkpoint(tmp_path)
    check_checkpoint(tmp_path / "absent")  # a new checkpoint passes


def test_lake_of_another_format_is_refused(tmp_path):
    lake = tmp_path / "lake"
    check_lake_format(lake)  # a new lake is marked
    assert json.loads((lake / LAKE_MARKER).read_text())["format"] == LAKE_FORMAT
    (lake / LAKE_MARKER).write_text(json.dumps({"format": LAKE_FORMAT + 1}))
    result = job("aggregate", "--lake", str(lake), "--checkpoint", str(tmp_path / "checkpoint"))
    assert result.returncode == EXIT_PREFLIGHT
    assert error_lines(result) == [
        f"[lenga] error: lake {lake} has lake format {LAKE_FORMAT + 1}, this lenga version reads format "
        f"{LAKE_FORMAT}: use the lenga version that wrote it, or point --lake at a new directory"]
    assert not (tmp_path / "checkpoint").exists()  # nothing started


def test_table_lacking_required_columns_is_refused(tmp_path):
    lake = tmp_path / "lake"
    write_deltalake(str(lake / "detections"), pa.table({"survey": ["ztf"], "candid": [1], "objectId": ["ZTF1"]}))
    result = job("stream", "--bootstrap", "127.0.0.1:9", "--lake", str(lake),
                 "--checkpoint", str(tmp_path / "checkpoint"))
    assert result.returncode == EXIT_PREFLIGHT, result.stderr[-2000:]
    (line,) = error_lines(result)
    assert line.startswith(f"[lenga] error: table {lake / 'detections'} lacks column(s) ")
    assert "mjd" in line and "incompatible lenga version" in line and "--lake" in line


def test_table_with_a_changed_column_type_is_refused(tmp_path):
    schema = CORE_TABLES["quarantine"].schema
    columns = {f.name: pa.nulls(1, f.type) for f in schema}
    columns["offset"] = pa.array(["12"])  # was int64
    write_deltalake(str(tmp_path / "quarantine"), pa.table(columns))
    with pytest.raises(Exception, match=r"has changed column\(s\) offset \(string, expected int64\)"):
        check_table_schemas(tmp_path, CORE_TABLES)
    shutil.rmtree(tmp_path / "quarantine")
    write_deltalake(str(tmp_path / "quarantine"), pa.table({f.name: pa.nulls(1, f.type) for f in schema}))
    check_table_schemas(tmp_path, CORE_TABLES)  # this version's own table passes


def test_full_disk_is_one_line_and_a_non_zero_exit(capsys):
    def write():
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/lake/detections/part-0.parquet")

    assert run_job(write) == EXIT_NO_SPACE
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("[lenga] error: no space left on device (/lake/detections/part-0.parquet): free space")


def test_full_disk_reported_by_the_jvm_is_recognised(capsys):
    class StreamingQueryException(Exception):
        pass

    def query():
        try:
            raise RuntimeError("Job aborted: java.io.IOException: No space left on device")
        except RuntimeError as exc:
            raise StreamingQueryException("[STREAM_FAILED] Query terminated with exception") from exc

    assert run_job(query) == EXIT_NO_SPACE
    assert len(capsys.readouterr().err.splitlines()) == 1
    with pytest.raises(ValueError):
        run_job(lambda: (_ for _ in ()).throw(ValueError("other errors keep their traceback")))


def _mount_tmpfs(path: Path, size: str, remount: bool = False) -> bool:
    options = f"remount,size={size}" if remount else f"size={size}"
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.mark.timeout(420)
def test_stream_on_a_full_disk_fails_clearly_then_resumes_once_there_is_space(tmp_path):
    """A real ENOSPC: the lake on a 1 MB tmpfs (root only). One error line, exit 3; once the disk
    is larger, the same command finishes with every alert stored once."""
    from deltalake import DeltaTable

    from lenga.sim.night import SimConfig, expected_counts, simulate, write_directory

    lake = tmp_path / "lake"
    lake.mkdir()
    if os.geteuid() != 0 or not _mount_tmpfs(lake, "1m"):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        alerts = list(simulate(SimConfig(seed=7, n_objects=30, n_nights=2, corrupt_fraction=0.0)))
        write_directory(alerts, tmp_path / "alerts")
        command = ["stream", "--files", str(tmp_path / "alerts"), "--lake", str(lake), "--checkpoint",
                   str(tmp_path / "checkpoint"), "--set", "spark.spark.master=local[2]"]
        full = job(*command)
        assert full.returncode == EXIT_NO_SPACE, full.stderr[-3000:]
        (line,) = error_lines(full)
        assert line.startswith("[lenga] error: no space left on device") and "rerun" in line
        assert _mount_tmpfs(lake, "256m", remount=True)
        again = job(*command)
        assert again.returncode == 0, again.stderr[-3000:]
        truth = expected_counts(alerts)
        for table, expected in (("alerts", truth["alerts"]), ("detections", truth["detections"])):
            stored = DeltaTable(str(lake / table)).to_pyarrow_table(columns=["survey", "candid"])
            assert stored.num_rows == expected
            assert stored.group_by(["survey", "candid"]).aggregate([]).num_rows == expected
    finally:
        subprocess.run(["umount", str(lake)], capture_output=True)
