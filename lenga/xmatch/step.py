"""The stream's cross-match step: the new objects of each micro-batch against the ingested catalogs.

Runs after the core tables of a micro-batch (``lenga.pipeline.BatchStep``):

1. the batch's alerts become objects (``udfs.xmatch.batch_objects``: one mean position per object,
   its first night in the batch, the alert-context flags ``known_sso``/``probable_star``);
2. objects already matched against a catalog's name *and* version are dropped, using the registry
   table ``xmatch_objects`` (one row per object and catalog version it was matched against): an
   object is matched once, not once per alert, and again only when the catalog version changes;
3. ``udfs.xmatch.crossmatch_objects`` matches the rest against every catalog: broadcast when the
   catalog has at most ``broadcast_max_rows`` rows (collected and broadcast once per step instance,
   i.e. once per stream start), else the partitioned join on ``hpx`` against the catalog's match
   columns cached where they lie (``MEMORY_AND_DISK``, also once per step instance: re-reading and
   decoding 10^7 Parquet rows per micro-batch cost 3x the cached scan, measured in bench.py);
4. the matches are appended to ``xmatch`` and the matched objects to ``xmatch_objects``, each in one
   Delta transaction tagged (app_id, batch_id), the registry last: a replayed batch adds nothing,
   and a crash between the two commits is repaired by the replay.

``xmatch`` has one schema for every catalog (catalogs keep different columns of different types):
``source_id`` as a string (Gaia's integers and AllWISE's designations alike, as ALeRCE's
``oid_catalog``), the kept numeric columns in the map ``properties`` (double) and the kept text
columns in the map ``labels``: ``properties['parallax']``, ``labels['type']``.

The context flags are per object and catalog row of ``xmatch_objects`` until the ``objects`` table
(issue 3) exists to carry them.
"""

from __future__ import annotations

import logging
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
from pyspark import Broadcast, StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lenga.config import CONF_DIR, Config
from lenga.io.lake import PARTITION_COLUMN, Lake, TableSpec, WriteResult
from lenga.xmatch.catalog import HPX_COLUMN, CatalogSpec, load_catalog_specs
from lenga.xmatch.store import StoredCatalog, catalog_table, stored_catalog
from udfs.xmatch import batch_objects, broadcast_catalog, choose_strategy, crossmatch_objects

if TYPE_CHECKING:
    from lenga.pipeline import BatchContext

log = logging.getLogger(__name__)

DEFAULT_CATALOGS_FILE = CONF_DIR / "catalogs.yaml"
# Keys of the optional ``xmatch:`` section of the configuration.
SETTINGS = ("catalogs_file",)

OBJECT_KEYS = ["survey", "objectId"]
REGISTRY_KEYS = [*OBJECT_KEYS, "catalog", "catalog_version"]


def _field(name: str, type_: pa.DataType, description: str) -> pa.Field:
    return pa.field(name, type_, metadata={b"description": description.encode()})


_COMMON = [
    _field("survey", pa.string(), "'ztf' or 'lsst'"),
    _field("objectId", pa.string(), "survey object id (lenga.schema)"),
    _field("catalog", pa.string(), "catalog name (conf/catalogs.yaml)"),
    _field("catalog_version", pa.string(), "catalog version matched against (as stored in the lake)"),
]
_NIGHT = _field(PARTITION_COLUMN, pa.int32(), "first night of the object in the micro-batch that matched it")

XMATCH = TableSpec(
    "xmatch",
    pa.schema([
        *_COMMON,
        _field("source_id", pa.string(), "catalog source id, as text"),
        _field("sep_arcsec", pa.float64(), "angular separation object - source, arcsec"),
        _field("properties", pa.map_(pa.string(), pa.float64()), "kept numeric catalog columns"),
        _field("labels", pa.map_(pa.string(), pa.string()), "kept text catalog columns"),
        _NIGHT,
    ]),
    keys=(*REGISTRY_KEYS, "source_id"),
)

XMATCH_OBJECTS = TableSpec(
    "xmatch_objects",
    pa.schema([
        *_COMMON,
        _field("ra", pa.float64(), "object position matched: mean direction of its alerts, deg"),
        _field("dec", pa.float64(), "object position matched: mean direction of its alerts, deg"),
        _field("n_matches", pa.int32(), "rows in xmatch for this object and catalog version"),
        _field("known_sso", pa.bool_(), "an alert of the object is at a known solar-system object"),
        _field("probable_star", pa.bool_(), "an alert of the object is on a PS1 star (ZTF sgscore1/distpsnr1)"),
        _field("batch", pa.int64(), "micro-batch that matched the object"),
        _NIGHT,
    ]),
    keys=tuple(REGISTRY_KEYS),
)


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
        """Each catalog as ``crossmatch_objects`` takes it, read (and broadcast) on first use only."""
        if self._sources is None:
            self._sources = []
            for stored in self.catalogs:
                catalog = stored.read(lake)
                if choose_strategy(stored.rows, self.broadcast_max_rows) == "broadcast":
                    catalog = broadcast_catalog(spark, catalog, stored.spec)
                else:
                    catalog = catalog.select(*_match_columns(stored.spec)).persist(StorageLevel.MEMORY_AND_DISK)
                self._sources.append(catalog)
        return self._sources

    def __call__(self, batch: BatchContext) -> dict[str, WriteResult]:
        """Match the batch's new objects; returns the write results of ``xmatch`` and ``xmatch_objects``."""
        lake, app_id, batch_id = batch.lake, batch.app_id, batch.batch_id
        if lake.replayed(XMATCH_OBJECTS, app_id, batch_id):  # the registry is written last: all done
            return {spec.name: WriteResult(spec.name, skipped=True) for spec in (XMATCH, XMATCH_OBJECTS)}
        objects = batch_objects(batch.tables["alerts"])
        new = self.new_objects(batch.spark, lake, objects).persist()
        try:
            found = self.match(batch.spark, lake, new).persist()
            try:
                results = {XMATCH.name: lake.append(XMATCH, found, app_id, batch_id)}
                counts = found.groupBy(*REGISTRY_KEYS).agg(F.count(F.lit(1)).cast("int").alias("n_matches"))
                registry = (new.join(counts, REGISTRY_KEYS, "left").fillna(0, ["n_matches"])
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
                      .join(F.broadcast(objects.select(*OBJECT_KEYS)), OBJECT_KEYS, "left_semi"))
        return wanted.join(F.broadcast(registered), REGISTRY_KEYS, "left_anti")

    def match(self, spark: SparkSession, lake: Lake, new: DataFrame) -> DataFrame:
        """``xmatch`` rows of the new (object, catalog) pairs, every catalog in one DataFrame."""
        nights = F.broadcast(new.select(*OBJECT_KEYS, "catalog", PARTITION_COLUMN))
        parts = []
        for stored, source in zip(self.catalogs, self.sources(spark, lake), strict=True):
            spec = stored.spec
            objects = new.where(F.col("catalog") == spec.name).select(*OBJECT_KEYS, "ra", "dec")
            found = crossmatch_objects(objects, source, spec, self.broadcast_max_rows, stored.rows)
            numeric, text = _kept_columns(stored)
            parts.append(found.select(
                *OBJECT_KEYS, "catalog", "catalog_version",
                F.col("source_id").cast("string").alias("source_id"),
                "sep_arcsec",
                _as_map(numeric, "double").alias("properties"),
                _as_map(text, "string").alias("labels"),
            ))
        matches = reduce(DataFrame.unionByName, parts)
        return matches.join(nights, [*OBJECT_KEYS, "catalog"])


def _match_columns(spec: CatalogSpec) -> list[str]:
    """The catalog columns a match reads: index, position, id and kept columns."""
    return list(dict.fromkeys([HPX_COLUMN, spec.ra_column, spec.dec_column, spec.id_column, *spec.columns]))


def _kept_columns(stored: StoredCatalog) -> tuple[list[str], list[str]]:
    """The spec's kept columns split into numeric (properties) and text (labels) by their stored type."""
    numeric, text = [], []
    for column in stored.spec.columns:
        kind = stored.table.schema.field(column).type
        is_number = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
        (numeric if is_number or pa.types.is_boolean(kind) else text).append(column)
    return numeric, text


def _as_map(columns: list[str], value_type: str):
    """A map column ``{name: value}`` of ``columns`` cast to ``value_type`` (empty map if none)."""
    pairs = [item for c in columns for item in (F.lit(c), F.col(c).cast(value_type))]
    return F.create_map(*pairs).cast(f"map<string,{value_type}>")


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
