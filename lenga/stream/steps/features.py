"""The aggregation's features step: light-curve features of every touched object → ``features`` (MERGE).

Runs after the ``objects`` MERGE of each aggregation micro-batch (``lenga.stream.aggregate.ObjectStep``):

1. the batch's curves (one row per touched object, its whole de-duplicated light curve) with at
   least ``min_points_per_band`` points go to :func:`lenga.features.extract_features`, thousands
   of curves per call, and each row gets the object's ``hpx`` from this batch's ``objects`` rows:
   in the stream inside the aggregation's single Python pass (the step is a
   ``lenga.stream.aggregate.PassStep``: ``udfs.features.located_features`` next to the objects rows of
   the same curves), in batch jobs (lenga.stream.reclassify) by one ``mapInArrow``
   (``udfs.features.curve_features_batches``) joined with ``tables["objects"]``; objects without
   ``min_points_per_band`` detections in some band get no row;
2. each row gets the batch id;
3. the rows are upserted (MERGE on survey, objectId, feature_version) in one Delta transaction
   tagged (app_id, batch_id): a replayed batch finds its id and writes nothing; and they are put
   in ``tables["features"]`` for the steps after this one (the light-curve classifier).

**Layout: one row per (survey, objectId, feature_version), partitioned by ``hpx``** (the objects
table's nested HEALPix order-2 pixel of the mean position), with ``night`` (of the last detection)
as a column. A features row is rewritten every time its object is detected again; partitioned by
the night of the last detection, the row would move from its previous night, which can be any
earlier night (an object silent for a year), so the MERGE would have to read every night to find
it. The sky pixel is stable (it changes only when the mean position crosses a border, and the
MERGE reads the neighbours for that), so each MERGE reads and rewrites only the files of the sky
regions the batch touched, however large the table grows. "Features of last night's objects" is a
filter on ``night`` (file statistics skip most files) or a join with that night's ``alerts``.

**Versions.** Rows of an older ``FEATURE_VERSION`` stay (their key differs) until deleted; a
reader selects ``feature_version``. The columns depend on ``conf/features.yaml`` (bands, harmonics,
colours, context): changing them means a new version and a new table.
"""

from __future__ import annotations

from functools import partial

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from lenga.config import Config, ConfigError
from lenga.curves.points import CONTEXT_COLUMNS, OBJECT_KEY, target_pixels
from lenga.features.config import FeatureConfig, load_feature_config
from lenga.features.curve_rows import HPX, KEYS, TABLE, features_spec, located_features, udf_schema
from lenga.io.lake import Lake
from lenga.stream.steps.base import ObjectBatchContext, RowFunction
from lenga.tables import WriteResult
from udfs.features import curve_features_batches


class FeaturesStep:
    """``ObjectStep`` computing and upserting the features of each aggregation micro-batch."""

    name = TABLE

    def __init__(self, config: FeatureConfig):
        missing = sorted(set(config.context_columns) - set(CONTEXT_COLUMNS))
        if missing:
            raise ConfigError(f"config.features.context_columns: {missing} are not kept by the aggregation; "
                              f"choose among {CONTEXT_COLUMNS}")
        self.config = config
        self.spec = features_spec(config)
        schema = udf_schema(config)
        self._udf_schema_bytes = schema.serialize().to_pybytes()
        self._udf_spark_schema = from_arrow_schema(schema)
        #: What it computes in the aggregation's single pass (``lenga.stream.aggregate.PassStep``).
        self.row_schema = self.spec.schema.remove(self.spec.schema.get_field_index("last_batch_id"))

    def row_function(self, spark: SparkSession) -> RowFunction:
        """Features of the pass's curves with enough points, with their objects' ``hpx``."""

        return partial(located_features, self.config, self.row_schema)

    def rows(self, batch: ObjectBatchContext) -> DataFrame:
        """The ``features`` rows of the batch's curves (lazy): the rows the aggregation's pass
        computed, else computed here from ``batch.curves`` and ``batch.tables["objects"]``."""

        if self.name in batch.computed:
            features = batch.computed[self.name]
        else:
            curves = batch.curves.where(F.size("mjd") >= self.config.min_points_per_band)  # cheap pre-filter
            features = curves.mapInArrow(curve_features_batches(self.config, self._udf_schema_bytes),
                                         self._udf_spark_schema)
            located = F.broadcast(batch.tables["objects"].select(*OBJECT_KEY, HPX))  # one row per touched object
            features = features.join(located, on=OBJECT_KEY)
        return (features.withColumn("last_batch_id", F.lit(batch.batch_id).cast("long"))
                .select(*self.spec.schema.names))

    def __call__(self, batch: ObjectBatchContext) -> dict[str, WriteResult]:
        return self._merge(batch, self.rows(batch))

    def insert_missing(self, batch: ObjectBatchContext) -> dict[str, WriteResult]:
        """For batch jobs over stored curves (lenga.stream.reclassify): every row goes to the later steps,
        but only rows whose (survey, objectId, feature_version) is not in the table are written, so
        a re-run writes nothing and rows the stream wrote keep their batch id."""
        rows = self.rows(batch).persist(StorageLevel.MEMORY_AND_DISK)
        missing = rows
        if batch.lake.exists(self.spec.name):
            missing = rows.join(batch.lake.read(self.spec).select(*KEYS), on=list(KEYS), how="left_anti")
        result = ({self.spec.name: WriteResult(self.spec.name)} if missing.isEmpty()
                  else self._merge(batch, missing))
        batch.tables[self.spec.name] = rows
        return result

    def _merge(self, batch: ObjectBatchContext, rows: DataFrame) -> dict[str, WriteResult]:
        spec = self.spec
        if batch.lake.replayed(spec, batch.app_id, batch.batch_id):
            batch.tables[spec.name] = rows
            return {spec.name: WriteResult(spec.name, skipped=True)}
        rows = rows.persist(StorageLevel.MEMORY_AND_DISK)  # the MERGE and the later steps read it
        batch.tables[spec.name] = rows
        pixels = rows.agg(F.collect_set(HPX)).first()[0]
        result = batch.lake.merge(spec, rows, batch.app_id, batch.batch_id,
                                  target_partitions={HPX: target_pixels(list(pixels))})
        return {spec.name: result}


def build_step(config: Config, lake: Lake) -> FeaturesStep:
    """The features step configured by ``conf/features.yaml`` and the ``features`` config section."""
    return FeaturesStep(load_feature_config(config.section("features")))
