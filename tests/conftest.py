"""Shared pytest fixtures."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The genuine ZTF/LSST alert packets beside the repository; tests using them skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent (genuine alert packets are not in the repository)")
    return SHARED_DATA
