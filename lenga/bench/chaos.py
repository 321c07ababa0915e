"""Chaos runs of lenga's three streaming queries: kill -9 at random times, restart, compare.

Each query is driven as a user drives it, through ``spark-submit.sh`` (``stream``, ``aggregate``,
``distribute``, trigger ``available_now``) in its own process group, with small micro-batches so
that a run has many commits to be killed between:

- **ingest** (``stream``) reads a simulated night from topics of an embedded Tansu broker into a
  fresh lake (holding only the demo catalog, so the cross-match writes ``xmatch``);
- **aggregate** reads a copy of the reference ingest lake (one Delta version per micro-batch);
- **distribute** reads the reference lake after aggregation (read only) and publishes two filters
  (``thin`` payload of every alert, ``lightcurve`` payload of objects with 3+ detections) to topics
  of its own.

A run starts the job, sends SIGKILL to its whole process group (driver, JVM, Python workers) after a
delay drawn from the run's seed, restarts it from the same checkpoint, ``kills`` times, then lets
the last start drain its input and exit. Delays are drawn between the reference run's time to its
first micro-batch (earlier kills only hit the JVM's start) and that plus 60 % of its processing
time; a start that finishes before its kill is recorded as such (``kills_delivered``).

Every table the query writes is then compared with an uninterrupted reference run as a multiset of
rows, order-independently: ``lost`` (copies in the reference missing from the run), ``duplicated``
(surplus copies of reference rows) and ``unexpected`` (rows the reference does not have, e.g. a
changed value), plus ``duplicate_keys`` (rows minus distinct table keys). The columns in
:data:`VOLATILE_COLUMNS` are left out of the comparison: they record which micro-batch wrote or last
updated a row, not what it holds (they would match when the restarted query plans the same batches,
which is not part of the promise). Map values are compared as sets of entries; binary values by
their SHA-1.

Output topics are **at-least-once** (lenga.io.kafka_sink, lenga.stream.distribute: every message is
acknowledged before the batch commits; a batch replayed after a crash sends its messages again, with
the same key = objectId and ``candid`` header). The comparison tests exactly that promise: no
reference message lost, no message that is not a reference message (decoded Avro records compared),
and duplicates are counted, allowed, and must disappear when de-duplicated by (key, candid).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import fastavro
import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from deltalake import DeltaTable

from lenga.curves.magstats import OBJECTS_SPEC
from lenga.features.curve_rows import KEYS as FEATURE_KEYS
from lenga.io.broker import EmbeddedBroker
from lenga.io.kafka import create_topics, publish
from lenga.sim.catalog import write_demo_catalog
from lenga.sim.night import SimConfig, expected_counts, simulate
from lenga.stream.steps.lc_classifier import SPEC as LC_SPEC
from lenga.stream.steps.stamps import STAMP_TABLE
from lenga.tables import TABLE_SPECS
from lenga.xmatch.catalog import DEFAULT_CATALOGS_FILE, load_catalog_specs
from lenga.xmatch.tables import XMATCH, XMATCH_OBJECTS

ROOT = Path(__file__).resolve().parents[2]
SUBMIT = ROOT / "spark-submit.sh"
QUERIES = ("ingest", "aggregate", "distribute")

#: Tables written by each query, with the keys that identify a row.
TABLE_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "ingest": {
        **{name: spec.keys for name, spec in TABLE_SPECS.items()},
        STAMP_TABLE.name: STAMP_TABLE.keys,
        XMATCH.name: XMATCH.keys,
        XMATCH_OBJECTS.name: XMATCH_OBJECTS.keys,
    },
    "aggregate": {OBJECTS_SPEC.name: OBJECTS_SPEC.keys, "features": FEATURE_KEYS, LC_SPEC.name: LC_SPEC.keys},
    "distribute": {},
}
#: Columns saying which micro-batch wrote a row, not what it holds: not compared.
VOLATILE_COLUMNS = frozenset({"ingest_batch_id", "last_batch_id", "batch_id", "batch"})

#: The distribution query's filters in a chaos run ({prefix}: the run's own topics).
FILTERS = """version: 1
filters:
  - name: everything
    payload: thin
    topic: {prefix}_everything
    where: "true"
  - name: curves
    payload: lightcurve
    topic: {prefix}_curves
    where: objects.ndet >= 3
"""
FILTER_NAMES = ("everything", "curves")
#: A partition read is complete once no message came for this long past its high watermark.
QUIET_S = 2.0


class ChaosError(RuntimeError):
    """A job failed on its own (not by our kill) or did not finish in time."""


@dataclass
class ChaosSettings:
    """The simulated night and the jobs' settings shared by every run."""

    work: Path
    objects: int = 100            # per survey
    nights: int = 3
    sim_seed: int = 7
    corrupt_fraction: float = 0.02
    alerts_per_batch: int = 25     # ingest micro-batch size (source.kafka.max_offsets_per_trigger)
    versions_per_batch: int = 1    # aggregate / distribute micro-batch size (Delta versions of their input)
    spark_master: str = "local[2]"
    timeout_s: float = 900.0       # one uninterrupted start at most

    def common_sets(self) -> list[str]:
        return ["--set", f"spark.spark.master={self.spark_master}", "--set", "spark.spark.sql.shuffle.partitions=2"]


@dataclass
class Attempt:
    """One start of a job: killed after ``kill_after_s``, or ran to its exit code ``rc``."""

    kill_after_s: float | None
    killed: bool
    rc: int | None
    seconds: float
    commits: int


def committed_batches(checkpoint: Path) -> int:
    commits = checkpoint / "commits"
    return len([p for p in commits.iterdir() if p.name.isdigit()]) if commits.is_dir() else 0


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def drive(command: list[str], checkpoint: Path, log: Path, kill_delays: list[float], timeout_s: float,
          during: Callable[[subprocess.Popen], None] | None = None) -> list[Attempt]:
    """Start ``command``; SIGKILL its process group after each of ``kill_delays`` seconds and restart
    it; the last start runs to its exit. Stops early when a start exits by itself (input drained).
    ``during`` (e.g. a broker outage) runs once, on the first start, while the job runs. Raises
    :class:`ChaosError` when a start fails on its own or the last one times out."""
    attempts: list[Attempt] = []
    for delay in [*kill_delays, None]:
        started = time.monotonic()
        with open(log, "ab") as out:
            out.write(f"\n=== start (kill after {delay} s): {' '.join(command)}\n".encode())
            out.flush()
            process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        try:
            if during is not None and not attempts:
                during(process)
            process.wait(timeout=delay if delay is not None else timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            attempts.append(Attempt(delay, True, None, time.monotonic() - started, committed_batches(checkpoint)))
            if delay is None:
                raise ChaosError(f"{command[1]} did not finish in {timeout_s:.0f} s; see {log}") from None
            continue
        except BaseException:
            _kill_group(process)
            raise
        attempts.append(Attempt(delay, False, process.returncode, time.monotonic() - started,
                                committed_batches(checkpoint)))
        if process.returncode != 0:
            raise ChaosError(f"{command[1]} exited with {process.returncode}; see {log}")
        break
    return attempts


# --- comparing tables and topics ---------------------------------------------------------------------

def _canonical(value, kind: pa.DataType):
    """A hashable, run-independent form of one Arrow value."""
    if value is None:
        return None
    if pa.types.is_map(kind):
        return tuple(sorted((repr(_canonical(k, kind.key_type)), repr(_canonical(v, kind.item_type)))
                            for k, v in value))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return tuple(_canonical(v, kind.value_type) for v in value)
    if pa.types.is_struct(kind):
        return tuple((f.name, _canonical(value.get(f.name), f.type)) for f in kind)
    if isinstance(value, float):
        return "nan" if value != value else repr(value)
    if isinstance(value, bytes):
        return hashlib.sha1(value).hexdigest()
    return value


def table_rows(path: Path) -> tuple[Counter, int, pa.Table] | None:
    """(multiset of canonical rows without :data:`VOLATILE_COLUMNS`, row count, the table) or None
    when the table does not exist."""
    if not (path / "_delta_log").is_dir():
        return None
    table = DeltaTable(str(path)).to_pyarrow_table()
    names = sorted(n for n in table.column_names if n not in VOLATILE_COLUMNS)
    columns = [[_canonical(v, table.schema.field(n).type) for v in table.column(n).to_pylist()] for n in names]
    rows = Counter(repr(row) for row in zip(*columns, strict=True)) if columns else Counter()
    return rows, table.num_rows, table


def compare_multisets(reference: Counter, run: Counter) -> dict[str, int]:
    lost = sum(max(0, n - run.get(row, 0)) for row, n in reference.items())
    duplicated = sum(max(0, n - reference[row]) for row, n in run.items() if row in reference)
    unexpected = sum(n for row, n in run.items() if row not in reference)
    return {"lost": lost, "duplicated": duplicated, "unexpected": unexpected}


def compare_tables(reference_lake: Path, lake: Path, keys: dict[str, tuple[str, ...]],
                   reference: dict | None = None) -> dict[str, dict]:
    """Per table: rows, reference rows, lost / duplicated / unexpected rows, duplicate keys."""
    reference = reference if reference is not None else {n: table_rows(reference_lake / n) for n in keys}
    result = {}
    for name, key in keys.items():
        ref, got = reference[name], table_rows(lake / name)
        if ref is None or got is None:
            result[name] = {"present": got is not None, "reference_present": ref is not None,
                            "lost": ref[1] if ref else 0, "duplicated": 0,
                            "unexpected": got[1] if got else 0, "duplicate_keys": 0}
            continue
        distinct_keys = got[2].select(list(key)).group_by(list(key)).aggregate([]).num_rows if key else got[1]
        result[name] = {"rows": got[1], "reference_rows": ref[1], **compare_multisets(ref[0], got[0]),
                        "duplicate_keys": got[1] - distinct_keys}
    return result


def topic_messages(bootstrap: str, topics: dict[str, str]) -> dict[str, list[tuple]]:
    """Every message of each topic (filter name → topic) from the beginning, as (key, candid header,
    decoded Avro records) tuples."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"chaos-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "log_level": 0})
    try:
        out: dict[str, list[tuple]] = {}
        for name, topic in topics.items():
            metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
            partitions = sorted(metadata.partitions) if metadata is not None and not metadata.error else []
            messages: list[tuple] = []
            for partition in partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
                # Past the high watermark until the partition is quiet: the embedded broker reports
                # the base offset of its last record batch + 1 as the high watermark, not the end.
                deadline, quiet_until, position = time.monotonic() + 120, time.monotonic() + QUIET_S, low
                while position < high or time.monotonic() < quiet_until:
                    if time.monotonic() > deadline:
                        raise ChaosError(f"could not read {topic}[{partition}] up to offset {high}")
                    message = consumer.poll(0.2)
                    if message is None or message.error():
                        continue
                    position = message.offset() + 1
                    quiet_until = time.monotonic() + QUIET_S
                    headers = dict(message.headers() or [])
                    records = list(fastavro.reader(io.BytesIO(message.value())))
                    messages.append((message.key(), headers.get("candid"), repr(_plain(records))))
            out[name] = messages
        return out
    finally:
        consumer.close()


def _plain(value):
    """Decoded Avro records in a comparable form (floats with NaN equal, bytes hashed)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _plain(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, float):
        return "nan" if value != value else repr(value)
    if isinstance(value, bytes):
        return hashlib.sha1(value).hexdigest()
    return value


def compare_topics(reference: dict[str, list[tuple]], run: dict[str, list[tuple]]) -> dict[str, dict]:
    """The at-least-once promise per filter: nothing lost, nothing unexpected; duplicates counted and
    gone once de-duplicated by (key, candid)."""
    result = {}
    for name, ref_messages in reference.items():
        got = run.get(name, [])
        counts = compare_multisets(Counter(ref_messages), Counter(got))
        distinct = {(m[0], m[1]) for m in got}
        deduplicated = {m[:2]: m for m in got}
        result[name] = {"messages": len(got), "reference_messages": len(ref_messages), **counts,
                        "distinct_key_candid": len(distinct),
                        "after_dedup_equal": sorted(deduplicated.values()) == sorted(ref_messages)}
    return result


def promise_kept(query: str, tables: dict, topics: dict) -> bool:
    """Tables: exactly once (0 lost, 0 duplicated, 0 unexpected, 0 duplicate keys); topics: at least
    once (0 lost, 0 unexpected, equal to the reference after de-duplication)."""
    tables_ok = all(t["lost"] == 0 and t["duplicated"] == 0 and t["unexpected"] == 0 and t["duplicate_keys"] == 0
                    for t in tables.values())
    topics_ok = all(t["lost"] == 0 and t["unexpected"] == 0 and t["after_dedup_equal"] for t in topics.values())
    return tables_ok and topics_ok


# --- the runs ----------------------------------------------------------------------------------------

@dataclass
class Reference:
    lake: Path
    seconds: float
    first_batch_s: float
    batches: int
    rows: dict = field(default_factory=dict)          # table → table_rows(...)
    messages: dict = field(default_factory=dict)      # filter → messages


class Chaos:
    """One simulated night on an embedded broker, the reference runs, and chaos runs of the queries."""

    def __init__(self, settings: ChaosSettings, log: Callable[[str], None] = print):
        self.settings = settings
        self.work = Path(settings.work)
        self.log = log
        self.broker: EmbeddedBroker | None = None
        self.topics: list[str] = []
        self.truth: dict = {}
        self.references: dict[str, Reference] = {}

    # setup
    def __enter__(self) -> Chaos:
        self.work.mkdir(parents=True, exist_ok=True)
        self.broker = EmbeddedBroker(log_dir=self.work / "logs").start()
        return self

    def __exit__(self, *exc) -> None:
        if self.broker is not None:
            self.broker.stop()

    def publish_night(self) -> None:
        s = self.settings
        prefix = f"chaos_{uuid.uuid4().hex[:8]}"
        sim = SimConfig(seed=s.sim_seed, n_objects=s.objects, n_nights=s.nights, corrupt_fraction=s.corrupt_fraction,
                        topics={"ztf": f"{prefix}_ztf", "lsst": f"{prefix}_lsst"})
        alerts = list(simulate(sim))
        self.truth = expected_counts(alerts)
        self.topics = list(sim.topics.values())
        create_topics(self.broker.bootstrap_servers, self.topics, partitions=2)
        publish(((a.topic, a.key, a.value) for a in alerts), self.broker.bootstrap_servers)
        self.log(f"[chaos] {len(alerts)} messages ({self.truth['objects']} objects, {self.truth['corrupt']} corrupt) "
                 f"on {self.topics}")
        # The template lake: only the demo catalog (written, then ingested by the ingest-catalog job).
        template = self.work / "template"
        specs, _ = load_catalog_specs(DEFAULT_CATALOGS_FILE)
        demo = next(spec for spec in specs if spec.name == "demo").in_lake(str(template))
        write_demo_catalog(sim, demo.path)
        self._run_plain([str(SUBMIT), "ingest-catalog", "--name", "demo", "--lake", str(template),
                         *s.common_sets()], self.work / "logs" / "catalog.log")
        self.sim = sim

    def _run_plain(self, command: list[str], log: Path) -> None:
        drive(command, self.work / "none", log, [], self.settings.timeout_s)

    # commands
    def command(self, query: str, lake: Path, checkpoint: Path, filters: Path | None = None) -> list[str]:
        s = self.settings
        if query == "ingest":
            return [str(SUBMIT), "stream", "--bootstrap", self.broker.bootstrap_servers, "--lake", str(lake),
                    "--checkpoint", str(checkpoint), "--trigger", "available_now",
                    "--set", f"source.kafka.topics={json.dumps(self.topics)}",
                    "--set", f"source.kafka.max_offsets_per_trigger={s.alerts_per_batch}", *s.common_sets()]
        if query == "aggregate":
            return [str(SUBMIT), "aggregate", "--lake", str(lake), "--checkpoint", str(checkpoint),
                    "--trigger", "available_now",
                    "--set", f"aggregation.max_versions_per_trigger={s.versions_per_batch}", *s.common_sets()]
        return [str(SUBMIT), "distribute", "--bootstrap", self.broker.bootstrap_servers, "--lake", str(lake),
                "--checkpoint", str(checkpoint), "--filters", str(filters), "--trigger", "available_now",
                "--set", f"filters.max_versions_per_trigger={s.versions_per_batch}", *s.common_sets()]

    def input_lake(self, query: str) -> Path:
        """The lake a query starts from: the template (ingest), a copy of the ingest reference
        (aggregate), the aggregate reference itself, read only (distribute)."""
        if query == "ingest":
            return self.work / "template"
        return self.reference("ingest" if query == "aggregate" else "aggregate").lake

    def _prepare(self, query: str, run_dir: Path) -> tuple[Path, Path, Path | None, dict[str, str]]:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        checkpoint = run_dir / "checkpoint"
        if query == "distribute":
            prefix = f"chaos_{uuid.uuid4().hex[:10]}"
            filters = run_dir / "filters.yaml"
            filters.write_text(FILTERS.format(prefix=prefix))
            return self.input_lake(query), checkpoint, filters, {n: f"{prefix}_{n}" for n in FILTER_NAMES}
        lake = run_dir / "lake"
        shutil.copytree(self.input_lake(query), lake)
        return lake, checkpoint, None, {}

    def reference(self, query: str) -> Reference:
        """The uninterrupted run of ``query`` (and of those before it), once."""
        if query in self.references:
            return self.references[query]
        run_dir = self.work / "reference" / query
        lake, checkpoint, filters, topics = self._prepare(query, run_dir)
        first: list[float] = []

        def watch_first_batch(process: subprocess.Popen) -> None:
            started = time.monotonic()
            while process.poll() is None and not (checkpoint / "offsets" / "0").exists():
                time.sleep(0.1)
            first.append(time.monotonic() - started)

        attempts = drive(self.command(query, lake, checkpoint, filters), checkpoint, run_dir / "job.log", [],
                         self.settings.timeout_s, during=watch_first_batch)
        ref = Reference(lake, attempts[-1].seconds, first[0], committed_batches(checkpoint))
        ref.rows = {name: table_rows(lake / name) for name in TABLE_KEYS[query]}
        if topics:
            ref.messages = topic_messages(self.broker.bootstrap_servers, topics)
        self.references[query] = ref
        counts = {n: r[1] if r else None for n, r in ref.rows.items()} | {n: len(m) for n, m in ref.messages.items()}
        self.log(f"[chaos] reference {query}: {ref.batches} micro-batches, {ref.seconds:.0f} s "
                 f"(first batch planned at {ref.first_batch_s:.0f} s); {counts}")
        if query == "distribute":
            for name, messages in ref.messages.items():
                if len(set(messages)) != len(messages):
                    raise ChaosError(f"the reference run published duplicates on {name}")
        return ref

    def kill_delays(self, query: str, kills: int, rng: random.Random) -> list[float]:
        ref = self.reference(query)
        low, span = ref.first_batch_s, 0.6 * max(ref.seconds - ref.first_batch_s, 1.0)
        return [round(rng.uniform(low, low + span), 2) for _ in range(kills)]

    def run(self, query: str, kills: int, seed: int, keep: bool = False,
            during: Callable[[subprocess.Popen], None] | None = None, name: str | None = None) -> dict:
        """One chaos run: ``kills`` kill -9 at delays drawn from ``seed``, then compare."""
        ref = self.reference(query)
        delays = self.kill_delays(query, kills, random.Random(f"{query}:{seed}"))
        run_dir = self.work / "runs" / (name or f"{query}-{seed}")
        lake, checkpoint, filters, topics = self._prepare(query, run_dir)
        started = time.monotonic()
        error = None
        try:
            attempts = drive(self.command(query, lake, checkpoint, filters), checkpoint, run_dir / "job.log", delays,
                             self.settings.timeout_s, during=during)
        except ChaosError as exc:
            attempts, error = [], str(exc)
        tables = compare_tables(ref.lake, lake, TABLE_KEYS[query], ref.rows) if not error else {}
        messages = compare_topics(ref.messages, topic_messages(self.broker.bootstrap_servers, topics)) \
            if topics and not error else {}
        ok = error is None and promise_kept(query, tables, messages)
        result = {"query": query, "seed": seed, "kill_delays_s": delays,
                  "kills_delivered": sum(a.killed for a in attempts), "starts": len(attempts),
                  "attempts": [asdict(a) for a in attempts], "seconds": round(time.monotonic() - started, 1),
                  "tables": tables, "topics": messages, "ok": ok, "error": error}
        if ok and not keep:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            result["kept"] = str(run_dir)
        lost = sum(t["lost"] for t in tables.values()) + sum(t["lost"] for t in messages.values())
        dup = sum(t["duplicated"] for t in tables.values())
        dup_messages = sum(t["duplicated"] for t in messages.values())
        self.log(f"[chaos] {query} seed {seed}: {result['kills_delivered']}/{kills} kills, {len(attempts)} starts, "
                 f"{result['seconds']:.0f} s: lost {lost}, duplicated rows {dup}, duplicate messages "
                 f"{dup_messages} -> {'ok' if ok else 'FAILED ' + (error or '')}")
        return result

    def outage(self, query: str, seconds: float) -> dict:
        """The broker frozen (SIGSTOP) for ``seconds`` once the job has committed a micro-batch, then
        resumed (SIGCONT); the job must finish by itself with the reference's tables and topics."""
        broker = self.broker

        def freeze(process: subprocess.Popen) -> None:
            checkpoint = Path(process.args[process.args.index("--checkpoint") + 1])
            while process.poll() is None and committed_batches(checkpoint) < 1:
                time.sleep(0.1)
            if process.poll() is not None:
                return
            os.kill(broker.pid, signal.SIGSTOP)
            try:
                self.log(f"[chaos] {query}: broker stopped for {seconds:.0f} s after "
                         f"{committed_batches(checkpoint)} micro-batch(es)")
                time.sleep(seconds)
            finally:
                os.kill(broker.pid, signal.SIGCONT)

        result = self.run(query, 0, 0, during=freeze, name=f"{query}-outage")
        result["outage_s"] = seconds
        return result


def summarise(runs: list[dict]) -> dict:
    """Totals over the runs of one query."""
    tables: dict[str, dict[str, int]] = {}
    topics: dict[str, dict[str, int]] = {}
    for run in runs:
        for target, source in ((tables, run["tables"]), (topics, run["topics"])):
            for name, counts in source.items():
                total = target.setdefault(name, {})
                for key in ("lost", "duplicated", "unexpected", "duplicate_keys"):
                    if key in counts:
                        total[key] = total.get(key, 0) + counts[key]
    return {"runs": len(runs), "ok": sum(r["ok"] for r in runs),
            "kills_delivered": sum(r["kills_delivered"] for r in runs),
            "seconds": round(sum(r["seconds"] for r in runs), 1), "tables": tables, "topics": topics}


def run_chaos(queries: list[str], runs: int, kills: int, seed: int, settings: ChaosSettings,
              outage_s: float | None = None, json_path: str | os.PathLike | None = None,
              log: Callable[[str], None] = print) -> dict:
    """References, then ``runs`` chaos runs per query (seeds ``seed`` .. ``seed + runs - 1``), then
    an optional broker outage run per Kafka query; the report is rewritten to ``json_path`` after
    every run (so a long session can be followed and a partial one still counts)."""
    started = time.monotonic()
    report: dict = {"command": " ".join(sys.argv), "settings": {k: str(v) if isinstance(v, Path) else v
                                                               for k, v in asdict(settings).items()},
                    "runs_per_query": runs, "kills_per_run": kills, "first_seed": seed, "queries": {}}

    def save() -> None:
        report["seconds"] = round(time.monotonic() - started, 1)
        if json_path:
            partial = Path(f"{json_path}.tmp")
            partial.write_text(json.dumps(report, indent=1, default=str))
            partial.replace(json_path)

    with Chaos(settings, log) as chaos:
        chaos.publish_night()
        report["truth"] = {k: v for k, v in chaos.truth.items() if k != "by_survey"}
        for query in queries:
            ref = chaos.reference(query)
            entry = report["queries"].setdefault(query, {"reference": {
                "seconds": round(ref.seconds, 1), "first_batch_s": round(ref.first_batch_s, 1), "batches": ref.batches,
                "rows": {n: r[1] if r else None for n, r in ref.rows.items()},
                "messages": {n: len(m) for n, m in ref.messages.items()}}, "runs": []})
            save()
            for i in range(runs):
                entry["runs"].append(chaos.run(query, kills, seed + i))
                entry["summary"] = summarise(entry["runs"])
                save()
        if outage_s:
            for query in queries:
                if query in ("ingest", "distribute"):
                    report["queries"][query]["outage"] = chaos.outage(query, outage_s)
                    save()
    report["ok"] = all(r["ok"] for q in report["queries"].values() for r in [*q["runs"], *([q["outage"]] if
                                                                                           "outage" in q else [])])
    save()
    return report


def default_work_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="lenga-chaos-"))
