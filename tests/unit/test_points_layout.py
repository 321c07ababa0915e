"""An aggregation checkpoint notes the layout of its light-curve state (lenga.stream.preflight):
one of an earlier version (batches committed, no note) or of another layout is refused in one line."""

from __future__ import annotations

import pytest

from lenga.curves.packing import LAYOUT_TAG
from lenga.stream.preflight import POINTS_LAYOUT_MARKER, PreflightError, check_points_layout


def test_a_new_checkpoint_gets_the_layout_noted_and_passes_again(tmp_path):
    checkpoint = tmp_path / "aggregate"
    check_points_layout(checkpoint)
    assert (checkpoint / POINTS_LAYOUT_MARKER).read_text().strip() == LAYOUT_TAG.decode()
    (checkpoint / "commits").mkdir()
    (checkpoint / "commits" / "0").write_text('v1\n{"nextBatchWatermarkMs":0}\n')
    check_points_layout(checkpoint)  # its own batches


def test_an_earlier_versions_checkpoint_is_refused_with_what_to_do(tmp_path):
    (tmp_path / "commits").mkdir()
    (tmp_path / "commits" / "3").write_text('v1\n{"nextBatchWatermarkMs":0}\n')
    with pytest.raises(PreflightError, match=r"in an earlier lenga version's layout, this lenga version keeps "
                                             r"LPv2: move it aside and rerun with a new --checkpoint"):
        check_points_layout(tmp_path)
    assert not (tmp_path / POINTS_LAYOUT_MARKER).exists()


def test_a_checkpoint_of_another_layout_is_refused(tmp_path):
    (tmp_path / POINTS_LAYOUT_MARKER).write_text("LPv9\n")
    with pytest.raises(PreflightError, match="in LPv9 layout"):
        check_points_layout(tmp_path)
