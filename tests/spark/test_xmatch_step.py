"""The stream's cross-match step on simulated alerts, a real local Spark and a delta-rs lake.

Alerts of two simulated nights (ZTF and LSST) are decoded by the pipeline's own decoder and fed to
``CrossmatchStep`` as micro-batches, against the demo catalog written by ``lenga.sim.catalog`` and
ingested with ``ingest_catalog``. The simulator's truth says what each object must find.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from lenga.config import load_config
from lenga.io.lake import open_lake
from lenga.sim.night import SimConfig, build_population, simulate
from lenga.stream.catalogs import ingest_catalog, ingest_demo_catalog
from lenga.stream.ingest import decode_stream, split_tables
from lenga.stream.steps.base import BatchContext
from lenga.stream.steps.xmatch import CrossmatchStep, build_step
from lenga.xmatch.catalog import DEFAULT_CATALOGS_FILE, load_catalog_specs
from udfs.xmatch import batch_objects

SIM = SimConfig(seed=5, n_objects=40, n_nights=2)
APP = "lenga-test-xmatch"
STAR_CLASSES = {"RRL", "LPV", "star"}


def _demo_spec(lake_root, version):
    specs, _ = load_catalog_specs(DEFAULT_CATALOGS_FILE)
    demo = next(s for s in specs if s.name == "demo").in_lake(lake_root)
    return dataclasses.replace(demo, version=version)


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    """The lake with the ingested demo catalog, and each night's alerts as a decoded DataFrame."""
    root = tmp_path_factory.mktemp("xmatch_step") / "lake"
    lake = open_lake(spark, root)
    ingested = ingest_demo_catalog(lake, SIM, n_field=2_000)
    assert not ingested.skipped and ingested.version.startswith("sim-")
    assert ingested.report.rows_out == ingested.report.rows_in > 2_000  # field sources + counterparts
    assert ingest_demo_catalog(lake, SIM, n_field=2_000).skipped  # same simulation: same version
    alerts = list(simulate(SIM))
    raw = spark.createDataFrame(pa.table({
        "key": [a.key for a in alerts], "value": [a.value for a in alerts], "topic": [a.topic for a in alerts],
        "partition": pa.array([0] * len(alerts), pa.int32()), "offset": list(range(len(alerts))),
        "timestamp": pa.array([0] * len(alerts), pa.timestamp("us", tz="UTC")),
        "timestampType": pa.array([0] * len(alerts), pa.int32()),
    }))
    decoded = decode_stream(raw).cache()
    table = split_tables(decoded)["alerts"]
    nights = sorted(r.night for r in table.select("night").distinct().collect())
    assert len(nights) == 2
    truth = {a.object_id: a.class_name for a in alerts}
    populations = {survey: build_population(SIM, survey) for survey in SIM.surveys}
    hosts = {o.cache["objectId"]: float(np.hypot(*o.host_offset_pix)) * o.survey.pixel_scale_arcsec
             for objects in populations.values() for o in objects if o.class_name == "SNIa"}
    return {"lake": lake, "root": root, "version": ingested.version, "alerts": table, "nights": nights, "truth": truth, "hosts": hosts,
            "config": load_config(extra={"lake": {"root": str(root)}})}


def _context(world, batch_id, alerts, app_id=APP):
    return BatchContext(alerts.sparkSession, world["lake"], app_id, batch_id, {"alerts": alerts}, world["config"])


def _table(world, name):
    return DeltaTable(world["lake"].path(name)).to_pyarrow_table()


@pytest.fixture(scope="module")
def first_two_batches(world):
    """Batch 0: the first night's alerts; batch 1: the second night's (objects seen again included)."""
    step = build_step(world["config"], world["lake"])
    assert isinstance(step, CrossmatchStep) and [c.spec.version for c in step.catalogs] == [world["version"]]
    alerts, nights = world["alerts"], world["nights"]
    results = [step(_context(world, k, alerts.where(alerts.night == night))) for k, night in enumerate(nights)]
    return step, results


def test_objects_find_their_stars_hosts_and_quasars(world, first_two_batches):
    matches = {r["objectId"]: r for r in _table(world, "xmatch").to_pylist()}
    registry = _table(world, "xmatch_objects").to_pylist()
    truth = world["truth"]
    assert {r["objectId"] for r in registry} == set(truth)  # every object, once
    assert len(registry) == len(truth)
    for row in registry:
        cls = truth[row["objectId"]]
        assert row["n_matches"] == (0 if cls == "asteroid" else 1), (row, cls)
        assert row["known_sso"] == (cls == "asteroid"), (row, cls)
        assert row["probable_star"] == (row["survey"] == "ztf" and cls in STAR_CLASSES), (row, cls)
        assert (row["catalog"], row["catalog_version"]) == ("demo", world["version"])
    assert {truth[o] for o in matches} == {"SNIa", "RRL", "QSO", "LPV", "star"} & set(truth.values())
    for object_id, row in matches.items():
        cls = truth[object_id]
        labels, properties = dict(row["labels"]), dict(row["properties"])
        if cls in STAR_CLASSES:
            # Moved from J2016.0 to the alert epoch by prepare_catalog: back on the star.
            assert labels["type"] == "STAR" and row["sep_arcsec"] < 0.01 and properties["parallax"] > 0
        elif cls == "QSO":
            assert labels["type"] == "QSO" and row["sep_arcsec"] < 1e-6 and properties["z"] >= 0.3
        else:
            assert labels["type"] == "GALAXY" and properties["parallax"] is None
            assert row["sep_arcsec"] == pytest.approx(world["hosts"][object_id], abs=1e-6)
        assert set(properties) == {"mag_g", "mag_r", "parallax", "z"}
        assert int(row["source_id"]) > 0 and row["catalog_version"] == world["version"]


def test_an_object_seen_again_is_not_rematched(world, first_two_batches):
    _, results = first_two_batches
    alerts, nights = world["alerts"], world["nights"]
    first = {r.objectId for r in alerts.where(alerts.night == nights[0]).select("objectId").distinct().collect()}
    second = {r.objectId for r in alerts.where(alerts.night == nights[1]).select("objectId").distinct().collect()}
    assert first & second and second - first  # the simulation has both kinds
    registry = _table(world, "xmatch_objects").to_pylist()
    assert {r["objectId"] for r in registry if r["batch"] == 1} == second - first
    assert results[1]["xmatch_objects"].rows == len(second - first)
    assert {r["night"] for r in registry if r["batch"] == 0} == {nights[0]}


def test_a_replayed_batch_adds_nothing(world, first_two_batches):
    step, _ = first_two_batches
    before = {name: DeltaTable(world["lake"].path(name)).version() for name in ("xmatch", "xmatch_objects")}
    alerts = world["alerts"]
    replay = step(_context(world, 1, alerts.where(alerts.night == world["nights"][1])))
    assert all(r.skipped for r in replay.values())
    # After a restart (a new step instance), the same batch of the same query is skipped too.
    restarted = build_step(world["config"], world["lake"])
    assert all(r.skipped for r in restarted(_context(world, 0, alerts)).values())
    assert {name: DeltaTable(world["lake"].path(name)).version() for name in before} == before


def test_a_new_catalog_version_rematches(world, first_two_batches):
    lake, alerts = world["lake"], world["alerts"]
    first_rows = _table(world, "xmatch").num_rows
    assert not ingest_catalog(lake, _demo_spec(world["root"], "v2")).skipped
    step = build_step(world["config"], lake)
    assert [c.spec.version for c in step.catalogs] == ["v2"]
    result = step(_context(world, 0, alerts, app_id=APP + "-v2"))
    registry = _table(world, "xmatch_objects").to_pylist()
    assert {r["objectId"] for r in registry if r["catalog_version"] == "v2"} == set(world["truth"])
    assert result["xmatch"].rows == first_rows
    xmatch = _table(world, "xmatch")
    assert xmatch.num_rows == 2 * first_rows  # the first version's rows stay: they say what was matched then


def test_build_step_skips_catalogs_not_in_the_lake(world, tmp_path, caplog):
    specs = tmp_path / "catalogs.yaml"
    specs.write_text(DEFAULT_CATALOGS_FILE.read_text())
    with caplog.at_level("WARNING", logger="lenga.stream.steps.xmatch"):
        step = build_step(world["config"], world["lake"], specs)
    assert [c.spec.name for c in step.catalogs] == ["demo"]
    assert "catalog 'gaia_dr3' is not in the lake" in caplog.text
    empty = open_lake(world["lake"].spark, tmp_path / "empty")
    assert build_step(world["config"], empty, specs) is None
    # A catalog indexed for another radius would miss pairs: refused with the fix in the message.
    specs.write_text(DEFAULT_CATALOGS_FILE.read_text().replace("radius_arcsec: 8.0", "radius_arcsec: 1.0"))
    with pytest.raises(ValueError, match=r"order 13, radius 1.0 arcsec needs 16; re-ingest it"):
        build_step(world["config"], world["lake"], specs)


def test_batch_objects_mean_direction_across_ra_zero(spark):
    rows = [("ztf", "A", 359.9999, 10.0, 20250501), ("ztf", "A", 0.0001, 10.0002, 20250502),
            ("lsst", "B", 120.0, -89.9999, 20250501), ("lsst", "B", 300.0, -89.9999, 20250501)]
    schema = "survey string, objectId string, ra double, dec double, night int"
    alerts = spark.createDataFrame(rows, schema)
    for column, kind in (("ssdistnr", "float"), ("ssmagnr", "float"), ("ssObjectId", "long"),
                         ("sgscore1", "float"), ("distpsnr1", "float")):
        alerts = alerts.withColumn(column, F.lit(None).cast(kind))
    objects = {r.objectId: r for r in batch_objects(alerts).collect()}
    a, b = objects["A"], objects["B"]
    assert min(a.ra, 360 - a.ra) < 1e-9 and a.dec == pytest.approx(10.0001, abs=1e-8) and a.night == 20250501
    assert b.dec == pytest.approx(-90.0, abs=1e-6)  # opposite sides of the pole: the pole itself
    assert not (a.known_sso or a.probable_star or b.known_sso)


def test_partitioned_catalog_gives_the_broadcast_rows(world, tmp_path):
    lake, spark = world["lake"], world["lake"].spark
    broadcast = build_step(world["config"], lake)
    partitioned = CrossmatchStep(broadcast.catalogs, broadcast_max_rows=0)
    new = broadcast.new_objects(spark, open_lake(spark, tmp_path / "fresh"), batch_objects(world["alerts"]))

    def rows(step):
        found = step.match(spark, lake, new).toArrow().to_pylist()
        return sorted((r["objectId"], r["source_id"], round(r["sep_arcsec"], 9), sorted(r["labels"])) for r in found)

    expected = rows(broadcast)
    assert len(expected) == sum(1 for cls in world["truth"].values() if cls != "asteroid")
    assert rows(partitioned) == expected


def _fresh_run(world, tmp_path, step, write=None):
    """Run ``step`` on both nights into a fresh lake; returns the sorted rows of both tables.

    The step's catalogs are read from the world's lake first (a step reads them once, on first use).
    """
    step.sources(world["lake"].spark, world["lake"])
    lake = open_lake(world["lake"].spark, tmp_path)
    alerts, nights = world["alerts"], world["nights"]
    for batch_id, night in enumerate(nights):
        context = BatchContext(alerts.sparkSession, lake, APP, batch_id, {"alerts": alerts.where(alerts.night == night)},
                               world["config"])
        (write or step)(context)
    matches = sorted(
        (r["objectId"], r["source_id"], round(r["sep_arcsec"], 9), sorted(r["properties"]), sorted(r["labels"]),
         r["night"]) for r in DeltaTable(lake.path("xmatch")).to_pyarrow_table().to_pylist())
    registry = sorted(
        (r["objectId"], round(r["ra"], 9), round(r["dec"], 9), r["n_matches"], r["known_sso"], r["probable_star"],
         r["batch"], r["night"]) for r in DeltaTable(lake.path("xmatch_objects")).to_pyarrow_table().to_pylist())
    return matches, registry


def test_one_job_partitioned_and_dataframe_writes_agree(world, first_two_batches, tmp_path):
    """The one-job path (broadcast catalog, or partitioned through its slice around the batch) and
    the DataFrame path (delta-spark's) write the same rows as the stream did."""
    expected = _fresh_run(world, tmp_path / "broadcast", build_step(world["config"], world["lake"]))
    matches, registry = expected
    assert len(registry) == len(world["truth"]) and len(matches) == sum(
        1 for cls in world["truth"].values() if cls != "asteroid")
    catalogs = first_two_batches[0].catalogs
    assert _fresh_run(world, tmp_path / "partitioned", CrossmatchStep(catalogs, broadcast_max_rows=0)) == expected
    frames = CrossmatchStep(catalogs, broadcast_max_rows=0)
    assert _fresh_run(world, tmp_path / "frames", frames, frames._write_dataframes) == expected


def test_a_crash_between_the_two_commits_is_repaired_by_the_replay(world, tmp_path):
    """xmatch committed, the registry not (its commit removed from the log): the replay commits the
    registry alone and xmatch gets no row twice."""
    step = build_step(world["config"], world["lake"])
    step.sources(world["lake"].spark, world["lake"])
    lake = open_lake(world["lake"].spark, tmp_path)
    context = _context(dict(world, lake=lake), 0, world["alerts"].where(world["alerts"].night == world["nights"][0]))
    first = step(context)
    assert first["xmatch"].rows > 0 and first["xmatch_objects"].rows > 0
    registry_log = tmp_path / "xmatch_objects" / "_delta_log"
    (registry_log / "00000000000000000000.json").unlink()
    assert not lake.exists("xmatch_objects")
    replay = step(context)
    assert replay["xmatch"].skipped and replay["xmatch_objects"].rows == first["xmatch_objects"].rows
    assert DeltaTable(lake.path("xmatch")).version() == 0
    assert lake.count("xmatch") == first["xmatch"].rows
    assert lake.count("xmatch_objects") == first["xmatch_objects"].rows


def test_demo_catalog_leaves_out_objects_never_observed():
    """An object whose field the schedule never observes has no parameters (and never alerts):
    the demo catalog leaves it out instead of failing on its missing magnitudes."""
    from lenga.sim.catalog import demo_catalog

    sim = SimConfig(seed=1, n_objects=600, n_nights=1, surveys="ztf")
    unobserved = [o for o in build_population(sim, "ztf") if not o.params]
    assert any(o.model.host == "star" for o in unobserved)  # the case this guards
    catalog = demo_catalog(sim, n_field=0)
    assert catalog.num_rows > 0 and not np.isnan(catalog["mag_r"].to_numpy(zero_copy_only=False)).all()
