"""Run the streaming job to completion and summarise it (shared by the stream, demo and bench jobs)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from lenga.config import Config
from lenga.io.lake import Lake, open_lake
from lenga.io.session import await_query, build_session
from lenga.pipeline import TABLE_SPECS, BatchReport, BatchStep, start_stream


@dataclass
class RunSummary:
    """A finished (or stopped) streaming run."""

    lake_root: str
    backend: str
    wall_s: float
    batches: list[BatchReport] = field(default_factory=list)
    table_rows: dict[str, int] = field(default_factory=dict)

    @property
    def alerts_in(self) -> int:
        return sum(b.input_rows for b in self.batches)

    def step_rate(self, step: str) -> float:
        """Alerts/s through one enrichment step (its own time only)."""
        seconds = sum(b.step_seconds.get(step, 0.0) for b in self.batches)
        return self.alerts_in / seconds if seconds else float("inf")

    def written(self, table: str) -> int:
        return sum(b.tables[table].rows for b in self.batches if table in b.tables)

    @property
    def alerts_per_s(self) -> float:
        return self.alerts_in / self.wall_s if self.wall_s > 0 else 0.0

    def latency(self, quantile: float) -> float:
        seconds = [b.seconds for b in self.batches if b.input_rows]
        return float(np.quantile(seconds, quantile)) if seconds else 0.0


def enrichment_steps(config: Config, lake: Lake) -> list[BatchStep]:
    """The steps run after the core tables, in order: cross-match, stamp classifier. Each is skipped
    when it has nothing to do (no catalog ingested, no stamp model trained or the step disabled)."""
    from lenga.stamps.step import build_step as build_stamp_classifier
    from lenga.xmatch.step import build_step as build_crossmatch

    builders = (build_crossmatch, build_stamp_classifier)
    return [step for step in (build(config, lake) for build in builders) if step is not None]


def run_stream(config: Config, app_name: str = "lenga-stream", spark=None,
               steps: list[BatchStep] | None = None) -> RunSummary:
    """Start the configured query, wait for it (AvailableNow drains and stops), return a summary.

    ``steps`` defaults to :func:`enrichment_steps`; pass ``[]`` for the core tables only.
    """
    spark = spark or build_session(app_name, config.spark)
    lake = open_lake(spark, config.lake.root, config.lake.backend)
    if steps is None:
        steps = enrichment_steps(config, lake)
    started = time.perf_counter()
    query, writer = start_stream(spark, config, lake, steps)
    await_query(query)
    wall = time.perf_counter() - started
    tables = list(TABLE_SPECS) + sorted({t for b in writer.reports for t in b.tables} - set(TABLE_SPECS))
    return RunSummary(str(lake.root), type(lake).__name__, wall, writer.reports,
                      {name: lake.count(name) for name in tables})


def print_summary(summary: RunSummary, published: int | None = None) -> None:
    """A human summary of the run (rich table)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"lenga run: lake {summary.lake_root} ({summary.backend})")
    table.add_column("table")
    table.add_column("rows written this run", justify="right")
    table.add_column("rows in lake", justify="right")
    for name, total in summary.table_rows.items():
        table.add_row(name, f"{summary.written(name):,}", f"{total:,}")
    console = Console()
    console.print(table)
    if published is not None:
        console.print(f"alerts published: {published:,}")
    console.print(
        f"messages in: {summary.alerts_in:,}   quarantined: {summary.written('quarantine'):,}   "
        f"micro-batches: {len(summary.batches)}   wall: {summary.wall_s:.1f} s   "
        f"throughput: {summary.alerts_per_s:,.0f} alerts/s   "
        f"batch latency p50/p95: {summary.latency(0.5):.2f}/{summary.latency(0.95):.2f} s")
