"""The README's first command, in miniature: the demo job end to end, twice into one lake."""

from __future__ import annotations

import polars as pl

from jobs import demo


def test_demo_fills_the_lake_and_a_second_run_adds_nothing(spark, tmp_path, capsys):
    lake = tmp_path / "lake"
    arguments = ["--lake", str(lake), "--objects", "25", "--nights", "2", "--set", "spark.spark.master=local[2]"]
    demo.main(arguments)
    first = capsys.readouterr().out
    counts = {t: pl.read_delta(str(lake / t)).height
              for t in ("alerts", "detections", "non_detections", "quarantine", "xmatch", "xmatch_objects", "objects",
                        "features", "stamp_classifications", "lc_classifications")}
    assert counts["alerts"] > 0 and counts["detections"] > counts["alerts"]
    assert counts["xmatch"] > 0  # the demo catalog matches out of the box
    assert counts["objects"] == pl.read_delta(str(lake / "alerts"))["objectId"].n_unique()
    assert counts["stamp_classifications"] > 0  # new objects' first alerts, five classes each
    assert "sources ingested" in first and "alerts published" in first
    assert "[lenga] distribution:" in first

    demo.main(arguments)
    second = capsys.readouterr().out
    assert "already in the lake" in second
    assert {t: pl.read_delta(str(lake / t)).height for t in counts} == counts
