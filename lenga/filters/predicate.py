"""Compiling a filter's ``where`` (Spark SQL) against the enriched alert's schema.

The predicate is parsed and analysed on an empty DataFrame of the enriched schema, so an unknown
column, a type error, an aggregate or a syntax error is reported when the filters file is loaded,
with the filter's name and Spark's own explanation, never in the middle of a micro-batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from lenga.filters.config import FilterError, FilterSpec


@dataclass(frozen=True)
class CompiledFilter:
    """A filter whose predicate analysed cleanly against the enriched alert."""

    spec: FilterSpec
    condition: Column


def _explanation(exc: Exception) -> str:
    """Spark's message without its JVM stack trace (the first paragraph says what is wrong)."""
    return str(exc).strip().split("\n\n")[0].split("\nJVM stacktrace")[0]


def compile_predicate(spark: SparkSession, spec: FilterSpec, schema: StructType) -> CompiledFilter:
    """Parse and analyse ``spec.where`` over an empty frame of ``schema``; FilterError if it is not
    a valid boolean row predicate (unknown column, syntax, type, aggregate or window function)."""
    empty = spark.createDataFrame([], schema)
    try:
        condition = F.expr(spec.where)
        empty.where(condition)
    except (ParseException, AnalysisException) as exc:
        raise FilterError(f"filter {spec.name!r}: invalid predicate {spec.where!r}: {_explanation(exc)}") from exc
    return CompiledFilter(spec, condition)
