"""Spark sessions for lenga jobs, and detection of the optional connector jars.

The same job runs with or without the spark-sql-kafka / spark-avro / delta-spark jars: on a
cluster ``spark-submit.sh`` passes them with ``--packages``; locally (or air-gapped) they are absent
and lenga's Python data sources and the delta-rs storage backend take over. Which one is used is
decided here, once, by asking the JVM whether the classes exist: never by guessing.
"""

from __future__ import annotations

import os
import sys

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

from lenga.config import PROJECT_ROOT
from lenga.io.delta_source import DeltaDataSource
from lenga.io.jvm_archive import java_options
from lenga.io.kafka_source import KafkaDataSource

KAFKA_PROVIDER_CLASS = "org.apache.spark.sql.kafka010.KafkaSourceProvider"
DELTA_CATALOG_CLASS = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
#: The Python worker daemon of local sessions (see its docstring: pyspark imported with cached bytecode).
LOCAL_DAEMON_MODULE = "lenga.io.worker_daemon"
#: The scheduler pools file (conf/fairscheduler.xml) and the local property naming a job's pool.
POOLS_FILE_CONF = "spark.scheduler.allocation.file"
POOL_PROPERTY = "spark.scheduler.pool"


def build_session(app_name: str, spark_conf: dict[str, str] | None = None,
                  class_archive: bool = True) -> SparkSession:
    """A SparkSession with lenga's defaults, its Python data sources registered.

    ``spark_conf`` comes from ``conf/lenga.yaml`` (section ``spark``); a master set by
    ``spark-submit`` wins over the configured local master. A local session's JVM maps the class
    archive of :mod:`lenga.io.jvm_archive` when one exists (``class_archive``: creating one).
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.appName(app_name)
    conf = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.streaming.stateStore.providerClass":
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
        **(spark_conf or {}),
    }
    pools = conf.get(POOLS_FILE_CONF)
    if pools and not os.path.isabs(pools):
        conf[POOLS_FILE_CONF] = str(PROJECT_ROOT / pools)
    if "PYSPARK_GATEWAY_PORT" in os.environ:
        # Launched by spark-submit: its --master and --conf already configured the JVM.
        conf.pop("spark.master", None)
    elif str(conf.get("spark.master", "")).startswith("local"):
        conf.setdefault("spark.python.daemon.module", LOCAL_DAEMON_MODULE)
        archive = java_options() if class_archive else ""
        if archive:
            conf["spark.driver.extraJavaOptions"] = f"{conf.get('spark.driver.extraJavaOptions', '')} {archive}".strip()
    for key, value in conf.items():
        builder = builder.config(key, str(value))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    register_data_sources(spark)
    return spark


def await_query(query) -> None:
    """Block until a streaming query ends (AvailableNow drains and stops); Ctrl-C stops it cleanly."""
    try:
        query.awaitTermination()
    except KeyboardInterrupt:
        query.stop()


def register_data_sources(spark: SparkSession) -> None:
    """Register lenga's generic Python data sources (``lenga_kafka``, ``lenga_delta``); the sources
    that understand alerts are registered by the queries that read them."""
    spark.dataSource.register(KafkaDataSource)
    spark.dataSource.register(DeltaDataSource)


def has_jvm_class(spark: SparkSession, class_name: str) -> bool:
    """True when ``class_name`` is on the driver's classpath (i.e. its jar was shipped)."""
    jvm = spark.sparkContext._jvm
    try:
        jvm.java.lang.Class.forName(class_name, False, jvm.Thread.currentThread().getContextClassLoader())
        return True
    except Exception:  # noqa: BLE001 - py4j wraps ClassNotFoundException
        return False


def kafka_format(spark: SparkSession) -> str:
    """``kafka`` when the built-in connector is present, else lenga's Python source."""
    return "kafka" if has_jvm_class(spark, KAFKA_PROVIDER_CLASS) else "lenga_kafka"


def delta_spark_available(spark: SparkSession) -> bool:
    return has_jvm_class(spark, DELTA_CATALOG_CLASS)


def chained_query(df: DataFrame, name: str, writer, checkpoint: str, trigger: str,
                  processing_time: str) -> DataStreamWriter:
    """The ``foreachBatch`` writer of one of lenga's queries (ingest, aggregation, distribution):
    named, checkpointed, and triggered ``available_now`` (drain, then stop) or every
    ``processing_time``."""
    builder = df.writeStream.queryName(name).foreachBatch(writer).option("checkpointLocation", checkpoint)
    if trigger == "available_now":
        return builder.trigger(availableNow=True)
    return builder.trigger(processingTime=processing_time)


def start_in_pool(builder: DataStreamWriter, pool: str) -> StreamingQuery:
    """Start a streaming query whose jobs run in the scheduler pool ``pool`` (conf/fairscheduler.xml:
    ``ingest``, ``aggregation``, ``distribution``): the query's thread inherits the local property
    set here, on the starting thread, for the time of the start."""
    context = SparkSession.active().sparkContext
    previous = context.getLocalProperty(POOL_PROPERTY)
    context.setLocalProperty(POOL_PROPERTY, pool)
    try:
        return builder.start()
    finally:
        context.setLocalProperty(POOL_PROPERTY, previous)
