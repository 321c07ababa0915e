"""lenga.io.worker_daemon: local sessions' Python workers import pyspark from the installed package
(cached bytecode), not from pyspark.zip; anything but pip's layout is left alone."""

from __future__ import annotations

import os
from pathlib import Path

import pyspark

from lenga.io.pyspark_path import prefer_installed_pyspark

INSTALLED = Path(pyspark.__file__).parent


def test_zips_of_an_installed_pyspark_go_last():
    lib = INSTALLED / "python" / "lib"
    path = [str(lib / "pyspark.zip"), str(lib / "py4j-0.10.9.9-src.zip"), "/repo", "/site-packages"]
    assert prefer_installed_pyspark(path, str(INSTALLED)) == [*path[2:], *path[:2]]


def test_a_spark_distribution_is_left_alone(tmp_path):
    # A Spark distribution: python/lib/pyspark.zip but no package at the Spark home.
    (tmp_path / "python" / "lib").mkdir(parents=True)
    path = [str(tmp_path / "python" / "lib" / "pyspark.zip"), "/repo"]
    assert prefer_installed_pyspark(path, str(tmp_path)) == path
    assert prefer_installed_pyspark(path, None) == path


def test_local_workers_import_the_installed_pyspark(spark):
    assert spark.conf.get("spark.python.daemon.module") == "lenga.io.worker_daemon"

    def origin(_):
        import pyspark as worker_pyspark

        yield os.path.dirname(worker_pyspark.__file__)

    assert spark.sparkContext.parallelize([0], 1).mapPartitions(origin).collect() == [str(INSTALLED)]


def test_reused_workers_collect_only_the_young_generations_between_tasks(spark):
    def collector(_):
        import sys

        yield type(sys.modules["pyspark.daemon"].gc).__name__

    assert spark.sparkContext.parallelize([0], 1).mapPartitions(collector).collect() == ["YoungGenerationsGC"]


def test_data_source_planners_import_the_installed_pyspark(spark):
    """Spark starts its data-source planners with the stock daemon, pyspark.zip first on their path:
    the venv's sitecustomize (./spark-submit.sh setup) moves it behind the installed package."""
    from dataclasses import dataclass

    from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition

    @dataclass
    class Origin(InputPartition):
        path: str

    class OriginReader(DataSourceReader):
        def partitions(self):  # runs in the planning process (pyspark.sql.worker.plan_data_source_read)
            import pyspark as planner_pyspark

            return [Origin(os.path.dirname(planner_pyspark.__file__))]

        def read(self, partition):
            yield (partition.path,)

    class OriginSource(DataSource):
        @classmethod
        def name(cls):
            return "lenga_test_pyspark_origin"

        def schema(self):
            return "path string"

        def reader(self, schema):
            return OriginReader()

    spark.dataSource.register(OriginSource)
    assert [row.path for row in spark.read.format("lenga_test_pyspark_origin").load().collect()] == [str(INSTALLED)]
