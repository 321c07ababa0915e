"""Shared pytest fixtures, and the suite's three folders as markers.

``tests/unit`` needs neither Spark nor a broker (seconds), ``tests/spark`` a local Spark session,
``tests/e2e`` the broker, whole queries, jobs, notebooks or a cluster. Each test is marked with its
folder's name: ``./spark-submit.sh test tests/unit`` or ``./spark-submit.sh test -m unit``.
"""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SUITES = {"unit": "no Spark, no broker (seconds)", "spark": "a local Spark session",
          "e2e": "the broker, whole queries, jobs, notebooks or a cluster"}


def pytest_configure(config):
    for name, what in SUITES.items():
        config.addinivalue_line("markers", f"{name}: {what}")


def pytest_collection_modifyitems(items):
    for item in items:
        suite = Path(str(item.fspath)).parent.name
        if suite in SUITES:
            item.add_marker(suite)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The genuine ZTF/LSST alert packets beside the repository; tests using them skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent (genuine alert packets are not in the repository)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def kafka_broker():
    """A real Kafka-compatible broker (embedded Tansu) on a free 127.0.0.1 port for the session."""
    from lenga.io.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def spark():
    """One local Spark session (2 cores) for the whole test run, lenga's data sources registered."""
    from lenga.io.session import build_session

    session = build_session("lenga-tests", {
        "spark.master": "local[2]",
        "spark.driver.memory": "2g",
        "spark.sql.shuffle.partitions": "2",
    })
    yield session
    session.stop()


@pytest.fixture
def topic_name(request) -> str:
    """A topic name unique to the test (Tansu keeps every topic for the broker's lifetime)."""
    import re
    import uuid

    return re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:40] + "_" + uuid.uuid4().hex[:8]
