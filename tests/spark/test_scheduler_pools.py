"""Scheduler pools of lenga's queries (conf/fairscheduler.xml, lenga.io.session.start_in_pool)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from lenga.config import PROJECT_ROOT, load_config
from lenga.io.session import POOL_PROPERTY, POOLS_FILE_CONF, start_in_pool


def test_a_query_runs_its_batches_in_its_pool_and_the_caller_keeps_its_own(spark, tmp_path):
    incoming = tmp_path / "in"
    incoming.mkdir()
    (incoming / "rows.json").write_text('{"x": 1}\n{"x": 2}\n')
    seen = []

    def record(df, batch_id):
        seen.append((df.sparkSession.sparkContext.getLocalProperty(POOL_PROPERTY), df.count()))

    builder = (spark.readStream.schema("x long").json(str(incoming)).writeStream.foreachBatch(record)
               .trigger(availableNow=True).option("checkpointLocation", str(tmp_path / "checkpoint")))
    start_in_pool(builder, "aggregation").awaitTermination()
    assert seen == [("aggregation", 2)]
    assert spark.sparkContext.getLocalProperty(POOL_PROPERTY) is None


def test_the_configured_pools_put_the_ingest_first():
    spark_conf = load_config().spark
    assert spark_conf["spark.scheduler.mode"] == "FAIR"
    pools = {pool.get("name"): pool for pool in ET.parse(PROJECT_ROOT / spark_conf[POOLS_FILE_CONF]).getroot()}
    assert set(pools) == {"ingest", "aggregation", "distribution"}  # the pools start_in_pool is given
    share = {name: int(pool.findtext("minShare")) for name, pool in pools.items()}
    assert share["ingest"] > share["aggregation"] == share["distribution"] == 0
