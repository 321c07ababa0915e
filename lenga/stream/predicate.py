"""Compiling a filter's ``where`` (Spark SQL) against the enriched alert's schema.

The predicate is parsed and analysed on an empty DataFrame of the enriched schema, so an unknown
column, a type error, an aggregate or a syntax error is reported when the filters file is loaded,
with the filter's name and Spark's own explanation, never in the middle of a micro-batch.

Some columns of the enriched alert are costly to build for every alert of a batch and appear in no
payload (the ``features`` map of a few hundred values, the ``xmatch`` array). Which of them a
predicate reads is found here once, by Spark's own analyser: the predicate is analysed again on the
schema without the column, and fails to resolve exactly when it uses it. The distribution query
then builds such a column only when a filter in force reads it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from lenga.filters.config import FilterError, FilterSpec


@dataclass(frozen=True)
class CompiledFilter:
    """A filter whose predicate analysed cleanly against the enriched alert; ``uses`` holds the
    optional columns (of those asked about at compilation) that the predicate reads."""

    spec: FilterSpec
    condition: Column
    uses: frozenset[str] = frozenset()


def _explanation(exc: Exception) -> str:
    """Spark's message without its JVM stack trace (the first paragraph says what is wrong)."""
    return str(exc).strip().split("\n\n")[0].split("\nJVM stacktrace")[0]


def _analyses(spark: SparkSession, condition: Column, schema: StructType) -> None:
    spark.createDataFrame([], schema).where(condition)


def compile_predicate(spark: SparkSession, spec: FilterSpec, schema: StructType,
                      optional: Iterable[str] = ()) -> CompiledFilter:
    """Parse and analyse ``spec.where`` over an empty frame of ``schema``; FilterError if it is not
    a valid boolean row predicate (unknown column, syntax, type, aggregate or window function).
    For each top-level column of ``optional``, tells whether the predicate reads it (``uses``)."""
    try:
        condition = F.expr(spec.where)
        _analyses(spark, condition, schema)
    except (ParseException, AnalysisException) as exc:
        raise FilterError(f"filter {spec.name!r}: invalid predicate {spec.where!r}: {_explanation(exc)}") from exc
    uses = set()
    for name in optional:
        if name.lower() not in spec.where.lower():  # cannot be referenced without being named
            continue
        try:
            _analyses(spark, condition, StructType([f for f in schema.fields if f.name != name]))
        except AnalysisException:
            uses.add(name)
    return CompiledFilter(spec, condition, frozenset(uses))
