"""The stream's cross-match step: the new objects of each micro-batch against the ingested catalogs.

Runs after the core tables of a micro-batch (``lenga.stream.ingest.BatchStep``):

1. the batch's alerts become objects (``lenga.xmatch.objects``: one mean position per object, its
   first night in the batch, the alert-context flags ``known_sso``/``probable_star``);
2. objects already matched against a catalog's name *and* version are dropped, using the registry
   table ``xmatch_objects`` (one row per object and catalog version it was matched against): an
   object is matched once, not once per alert, and again only when the catalog version changes;
3. the rest are matched against every catalog: broadcast when the catalog has at most
   ``broadcast_max_rows`` rows (collected and broadcast once per step instance, i.e. once per stream
   start), else the partitioned join on ``hpx`` against the catalog's match columns cached where they
   lie (``MEMORY_AND_DISK``, also once per step instance: re-reading and decoding 10^7 Parquet rows
   per micro-batch cost 3x the cached scan);
4. the matches are appended to ``xmatch`` and the matched objects to ``xmatch_objects``
   (``lenga.xmatch.tables``), each in one Delta transaction tagged (app_id, batch_id), the registry
   last: a replayed batch adds nothing, and a crash between the two commits is repaired by the replay.

When the lake commits files written by executors (delta-rs), steps 1-3 and the writing of both
tables' files are one Spark job (``udfs.xmatch.crossmatch_batch_writer``) and the driver makes the two
commits. A partitioned catalog joins it through its slice around the batch's objects
(``udfs.xmatch.catalog_slice``: one more job, which scans the cached catalog). Measured on batches of
10^4 new objects (2 x 10^4 alerts, ``python -m lenga.bench.xmatch``): the former chain of thirteen
Spark jobs cost ~5 CPU-seconds a batch against a 10^6 catalog and ~10 against 10^7, nearly all of it
fixed per-job cost in the JVM, while the matching itself takes milliseconds; now ~0.6 and ~4.
With delta-spark the steps run as DataFrames, each table appended with ``Lake.append``.
"""

from __future__ import annotations

import logging
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark import Broadcast, StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lenga.config import Config
from lenga.healpix import block_pixels
from lenga.io.lake import TABLE_ADD_ACTION_SCHEMA, Lake
from lenga.stream.catalogs import StoredCatalog, catalog_table, stored_catalog
from lenga.tables import PARTITION_COLUMN, WriteResult
from lenga.xmatch.catalog import (
    DEFAULT_CATALOGS_FILE,
    HPX_COLUMN,
    CatalogSpec,
    float_column,
    load_catalog_specs,
)
from lenga.xmatch.match import OBJECT_COLUMNS
from lenga.xmatch.objects import ALERT_COLUMNS, OBJECT_KEYS
from lenga.xmatch.tables import REGISTRY_KEYS, XMATCH, XMATCH_OBJECTS, kept_columns
from udfs.xmatch import (
    as_match_rows,
    batch_objects,
    broadcast_catalog,
    catalog_slice,
    choose_strategy,
    crossmatch_batch_writer,
    crossmatch_objects,
)

if TYPE_CHECKING:
    from lenga.stream.steps.base import BatchContext

log = logging.getLogger(__name__)

# Keys of the optional ``xmatch:`` section of the configuration.
SETTINGS = ("catalogs_file",)

__all__ = ["XMATCH", "XMATCH_OBJECTS", "CrossmatchStep", "build_step"]


class CrossmatchStep:
    """``BatchStep`` matching each micro-batch's new objects against the lake's catalogs."""

    name = "xmatch"

    def __init__(self, catalogs: list[StoredCatalog], broadcast_max_rows: int):
        if not catalogs:
            raise ValueError("CrossmatchStep needs at least one ingested catalog")
        self.catalogs = list(catalogs)
        self.broadcast_max_rows = broadcast_max_rows
        self._sources: list[DataFrame | Broadcast] | None = None

    def sources(self, spark: SparkSession, lake: Lake) -> list[DataFrame | Broadcast]:
        """Each catalog's match columns as ``crossmatch_objects`` takes them, read (and broadcast)
        on first use only."""
        if self._sources is None:
            self._sources = []
            for stored in self.catalogs:
                catalog = stored.read(lake).select(*_match_columns(stored.spec))
                if choose_strategy(stored.rows, self.broadcast_max_rows) == "broadcast":
                    catalog = broadcast_catalog(spark, catalog, stored.spec)
                else:
                    catalog = catalog.persist(StorageLevel.MEMORY_AND_DISK)
                self._sources.append(catalog)
        return self._sources

    def __call__(self, batch: BatchContext) -> dict[str, WriteResult]:
        """Match the batch's new objects; returns the write results of ``xmatch`` and ``xmatch_objects``."""
        if batch.lake.replayed(XMATCH_OBJECTS, batch.app_id, batch.batch_id):  # the registry is written last
            return {spec.name: WriteResult(spec.name, skipped=True) for spec in (XMATCH, XMATCH_OBJECTS)}
        if batch.lake.commits_executor_files:
            return self._write_in_one_job(batch)
        return self._write_dataframes(batch)

    def _write_in_one_job(self, batch: BatchContext) -> dict[str, WriteResult]:
        """One Spark job writes both tables' files (``crossmatch_batch_writer``); the driver commits
        ``xmatch`` then ``xmatch_objects``. After a crash between the two commits, the replay finds
        the same new objects (the registry is not committed), writes their files again and commits
        only the registry: the files of the first attempt stay uncommitted, invisible.

        A partitioned catalog takes part through its slice around the batch's objects
        (``catalog_slice``), broadcast for this batch only."""
        lake, app_id, batch_id = batch.lake, batch.app_id, batch.batch_id
        shared, slices = self._batch_catalogs(batch)
        try:
            writer = crossmatch_batch_writer(
                [(stored.spec, source) for stored, source in zip(self.catalogs, shared, strict=True)],
                _committed_files(lake, XMATCH_OBJECTS.name),
                {spec.name: lake.path(spec.name) for spec in (XMATCH, XMATCH_OBJECTS)},
                batch_id,
            )
            alerts = batch.tables["alerts"].select(*ALERT_COLUMNS).repartition(*OBJECT_KEYS)
            actions = alerts.mapInArrow(writer, TABLE_ADD_ACTION_SCHEMA).collect()
        finally:
            for piece in slices:
                piece.destroy()
        return lake.commit_tables([XMATCH, XMATCH_OBJECTS], actions, app_id, batch_id)

    def _batch_catalogs(self, batch: BatchContext) -> tuple[list[Broadcast], list[Broadcast]]:
        """Every catalog as a broadcast Arrow table for this batch: the whole catalog when it is
        small, else its slice around the batch's objects (their positions computed in one job);
        and the slices, to destroy after the batch."""
        sources = self.sources(batch.spark, batch.lake)
        if all(isinstance(source, Broadcast) for source in sources):
            return sources, []
        positions = batch_objects(batch.tables["alerts"]).select("ra", "dec").toArrow()
        ra, dec = float_column(positions, "ra", "objects"), float_column(positions, "dec", "objects")
        shared, slices = [], []
        for stored, source in zip(self.catalogs, sources, strict=True):
            if not isinstance(source, Broadcast):
                _, pixels = block_pixels(ra, dec, stored.spec.order)
                source = batch.spark.sparkContext.broadcast(catalog_slice(source, pixels))
                slices.append(source)
            shared.append(source)
        return shared, slices

    def _write_dataframes(self, batch: BatchContext) -> dict[str, WriteResult]:
        """The steps as DataFrames, each table appended with ``Lake.append`` (any lake, any catalog)."""
        lake, app_id, batch_id = batch.lake, batch.app_id, batch.batch_id
        objects = batch_objects(batch.tables["alerts"])
        new = self.new_objects(batch.spark, lake, objects).persist()
        try:
            found = self.match(batch.spark, lake, new).persist()
            try:
                results = {XMATCH.name: lake.append(XMATCH, found, app_id, batch_id)}
                counts = found.groupBy(*REGISTRY_KEYS).agg(F.count(F.lit(1)).cast("int").alias("n_matches"))
                registry = (new.join(counts, list(REGISTRY_KEYS), "left").fillna(0, ["n_matches"])
                            .withColumn("batch", F.lit(batch_id).cast("long")))
                results[XMATCH_OBJECTS.name] = lake.append(XMATCH_OBJECTS, registry, app_id, batch_id)
            finally:
                found.unpersist()
        finally:
            new.unpersist()
        return results

    def new_objects(self, spark: SparkSession, lake: Lake, objects: DataFrame) -> DataFrame:
        """One row per (object, catalog) not yet matched against that catalog's current version."""
        versions = spark.createDataFrame(
            [(c.spec.name, c.spec.version) for c in self.catalogs], "catalog string, catalog_version string")
        wanted = objects.crossJoin(F.broadcast(versions))
        if not lake.exists(XMATCH_OBJECTS.name):
            return wanted
        # Only the registry rows of this batch's objects: a semi-join on the (small) batch side, so
        # the registry, which grows with every object ever seen, is scanned but never shuffled.
        registered = (lake.read(XMATCH_OBJECTS).select(*REGISTRY_KEYS)
                      .join(F.broadcast(objects.select(*OBJECT_KEYS)), list(OBJECT_KEYS), "left_semi"))
        return wanted.join(F.broadcast(registered), list(REGISTRY_KEYS), "left_anti")

    def match(self, spark: SparkSession, lake: Lake, new: DataFrame) -> DataFrame:
        """``xmatch`` rows of the new (object, catalog) pairs, every catalog in one DataFrame."""
        nights = F.broadcast(new.select(*OBJECT_KEYS, "catalog", PARTITION_COLUMN))
        parts = []
        for stored, source in zip(self.catalogs, self.sources(spark, lake), strict=True):
            spec = stored.spec
            objects = new.where(F.col("catalog") == spec.name).select(*OBJECT_COLUMNS)
            found = crossmatch_objects(objects, source, spec, self.broadcast_max_rows, stored.rows)
            parts.append(as_match_rows(found, *kept_columns(spec, stored.table.schema)))
        matches = reduce(DataFrame.unionByName, parts)
        return matches.join(nights, [*OBJECT_KEYS, "catalog"])


def _match_columns(spec: CatalogSpec) -> list[str]:
    """The catalog columns a match reads: index, position, id and kept columns."""
    return list(dict.fromkeys([HPX_COLUMN, spec.ra_column, spec.dec_column, spec.id_column, *spec.columns]))


def _committed_files(lake: Lake, table: str) -> list[str]:
    """Paths of a delta-rs lake table's committed data files (none if the table does not exist)."""
    from deltalake import DeltaTable

    if not lake.exists(table):
        return []
    return [uri.removeprefix("file://") for uri in DeltaTable(lake.path(table)).file_uris()]


def build_step(config: Config, lake: Lake, catalogs_file: str | Path | None = None) -> CrossmatchStep | None:
    """The cross-match step for the catalogs of ``catalogs_file`` that are ingested in ``lake``.

    The file is ``catalogs_file``, else ``xmatch.catalogs_file`` of the configuration, else
    conf/catalogs.yaml. Catalogs not in the lake are skipped with a logged line (None if none is
    left). A catalog stored at another HEALPix order or without a configured column is an error:
    matching it would silently miss pairs. Matches carry the version stored in the lake.
    """
    settings = config.section("xmatch")
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ValueError(f"xmatch: unknown setting(s) {unknown}; known: {list(SETTINGS)}")
    path = catalogs_file or settings.get("catalogs_file") or DEFAULT_CATALOGS_FILE
    specs, broadcast_max_rows = load_catalog_specs(path)
    catalogs = []
    for spec in specs:
        spec = spec.in_lake(lake.root)
        stored = stored_catalog(lake, spec)
        if stored is None:
            log.warning("xmatch: catalog %r is not in the lake (%s): skipped; ingest it with "
                        "./spark-submit.sh ingest-catalog --name %s", spec.name, lake.path(catalog_table(spec.name)),
                        spec.name)
            continue
        problems = stored.problems(spec)
        if problems:
            raise ValueError(f"catalog {spec.name!r} in {lake.path(catalog_table(spec.name))}: {'; '.join(problems)}; "
                             f"re-ingest it with ./spark-submit.sh ingest-catalog --name {spec.name}")
        if stored.spec.version != spec.version:
            log.info("xmatch: catalog %r: the lake holds version %r, %s declares %r; matching against %r",
                        spec.name, stored.spec.version, path, spec.version, stored.spec.version)
        catalogs.append(stored)
    if not catalogs:
        log.warning("xmatch: no catalog of %s is in the lake: no cross-match step", path)
        return None
    return CrossmatchStep(catalogs, broadcast_max_rows)
