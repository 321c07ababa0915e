"""Filters as users write them (``conf/filters.yaml``) and the ``filters:`` section of ``conf/lenga.yaml``.

A filter is a name, a Spark SQL predicate over the enriched alert (``where``), a payload (``thin``,
``lightcurve`` or ``full``) and a Kafka topic; a watchlist filter also carries a list of targets
(name, ra, dec, radius_arcsec) that an alert must fall within (cone match, lenga.filters.watchlist).

Parsing here is structural only (types, names, ranges) and needs no Spark; the predicates are
compiled against the enriched alert's schema by lenga.stream.predicate. Every error names the file,
the filter and the key, because the file is edited while the stream runs: a bad edit is reported
and the previous filters stay in force (lenga.filters.reload).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from lenga.config import CONF_DIR, Config, ConfigError

#: Payload kinds, each with its own Avro schema under lenga/filters/schemas/.
PAYLOADS = ("thin", "lightcurve", "full")
#: The filters file format this module reads (``version:`` at its top).
FILE_FORMAT_VERSION = 1
DEFAULT_FILTERS_FILE = CONF_DIR / "filters.yaml"
# A filter name becomes part of a topic name and a Kafka header: keep it a plain identifier.
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
# Kafka's legal topic names: ASCII alphanumerics, '.', '_', '-', at most 249 characters.
TOPIC_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
# Topic of a filter that names none: <prefix><filter name>.
DEFAULT_TOPIC_PREFIX = "lenga_"


class FilterError(ValueError):
    """A filters file (or one filter in it) that cannot be used; the message names the key at fault."""


@dataclass(frozen=True)
class WatchTarget:
    """One watchlist entry: alerts within ``radius_arcsec`` of (ra, dec) match it."""

    name: str
    ra: float
    dec: float
    radius_arcsec: float


@dataclass(frozen=True)
class FilterSpec:
    """One filter of the file, validated structurally (its predicate is compiled later)."""

    name: str
    where: str
    payload: str
    topic: str
    description: str = ""
    watchlist: tuple[WatchTarget, ...] = ()


@dataclass(frozen=True)
class FilterSet:
    """Every filter of one version of the file; ``digest`` (sha256 of its bytes) identifies it."""

    filters: tuple[FilterSpec, ...]
    digest: str
    text: str

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.filters]


_FILTER_KEYS = {"name", "where", "payload", "topic", "description", "watchlist"}
_TARGET_KEYS = {"name", "ra", "dec", "radius_arcsec"}


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FilterError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _target(item, where: str) -> WatchTarget:
    if not isinstance(item, dict):
        raise FilterError(f"{where}: expected a mapping with keys {sorted(_TARGET_KEYS)}, got {item!r}")
    if set(item) != _TARGET_KEYS:
        raise FilterError(f"{where}: keys must be exactly {sorted(_TARGET_KEYS)}, got {sorted(item)}")
    name = item["name"]
    if not isinstance(name, str) or not name:
        raise FilterError(f"{where}.name: expected a non-empty string")
    ra, dec, radius = (_number(item[k], f"{where}.{k}") for k in ("ra", "dec", "radius_arcsec"))
    if not 0.0 <= ra < 360.0:
        raise FilterError(f"{where}.ra: {ra} is outside [0, 360) degrees")
    if not -90.0 <= dec <= 90.0:
        raise FilterError(f"{where}.dec: {dec} is outside [-90, 90] degrees")
    if radius <= 0:
        raise FilterError(f"{where}.radius_arcsec: must be > 0, got {radius}")
    return WatchTarget(name, ra, dec, radius)


def _filter(item, where: str) -> FilterSpec:
    if not isinstance(item, dict):
        raise FilterError(f"{where}: expected a mapping, got {type(item).__name__}")
    unknown = sorted(set(item) - _FILTER_KEYS)
    if unknown:
        raise FilterError(f"{where}: unknown key(s) {unknown}; known: {sorted(_FILTER_KEYS)}")
    name = item.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise FilterError(f"{where}.name: {name!r} must match {NAME_PATTERN.pattern}")
    where = f"{where} ({name})"
    watchlist = item.get("watchlist") or []
    if not isinstance(watchlist, list):
        raise FilterError(f"{where}.watchlist: expected a list of targets")
    targets = tuple(_target(t, f"{where}.watchlist[{i}]") for i, t in enumerate(watchlist))
    # A watchlist filter may omit `where`: the cone match alone selects.
    predicate = item.get("where", "true" if targets else None)
    if not isinstance(predicate, str) or not predicate.strip():
        raise FilterError(f"{where}.where: a Spark SQL predicate (string) is required")
    payload = item.get("payload", "thin")
    if payload not in PAYLOADS:
        raise FilterError(f"{where}.payload: must be one of {list(PAYLOADS)}, not {payload!r}")
    topic = item.get("topic", DEFAULT_TOPIC_PREFIX + name)
    if not isinstance(topic, str) or not TOPIC_PATTERN.match(topic):
        raise FilterError(f"{where}.topic: {topic!r} is not a legal Kafka topic name")
    description = item.get("description", "")
    if not isinstance(description, str):
        raise FilterError(f"{where}.description: expected a string")
    return FilterSpec(name, " ".join(predicate.split()), payload, topic, description.strip(), targets)


def text_digest(text: str) -> str:
    """sha256 of a filters file's text: what identifies a version of the filters."""
    return hashlib.sha256(text.encode()).hexdigest()


def parse_filters(text: str, source: str = "filters") -> FilterSet:
    """Parse and structurally validate the text of a filters file.

    Raises FilterError naming ``source`` and the key at fault; an empty list of filters is valid
    (the stream then publishes nothing).
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FilterError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise FilterError(f"{source}: expected a mapping with 'version' and 'filters'")
    unknown = sorted(set(data) - {"version", "filters"})
    if unknown:
        raise FilterError(f"{source}: unknown key(s) {unknown}; known: ['filters', 'version']")
    if data.get("version") != FILE_FORMAT_VERSION:
        raise FilterError(f"{source}.version: must be {FILE_FORMAT_VERSION}, got {data.get('version')!r}")
    items = data.get("filters") or []
    if not isinstance(items, list):
        raise FilterError(f"{source}.filters: expected a list")
    specs = tuple(_filter(item, f"{source}.filters[{i}]") for i, item in enumerate(items))
    for attribute in ("name", "topic"):
        values = [getattr(s, attribute) for s in specs]
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise FilterError(f"{source}.filters: {attribute} used by more than one filter: {repeated}")
    return FilterSet(specs, text_digest(text), text)


def read_filters(path: str | Path) -> FilterSet:
    """Read and parse a filters file (FilterError if unreadable or invalid)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise FilterError(f"{path}: cannot read the filters file: {exc}") from exc
    return parse_filters(text, str(path))


@dataclass
class FilterSettings:
    """The ``filters:`` section of ``conf/lenga.yaml`` (every key optional)."""

    file: str | None = None                  # default: conf/filters.yaml
    bootstrap_servers: str | None = None     # default: source.kafka.bootstrap_servers
    schema_registry_url: str | None = None   # set: Confluent wire format; null: Avro object container
    producer_options: dict = field(default_factory=dict)  # extra kafka.* producer options
    checkpoint: str | None = None            # default: <stream.checkpoint>/../distribute
    trigger: str | None = None               # default: stream.trigger
    max_versions_per_trigger: int | None = None
    query_name: str = "lenga-distribute"

    def __post_init__(self):
        if self.trigger not in (None, "available_now", "processing_time"):
            raise ConfigError("config.filters.trigger: must be available_now or processing_time")
        if self.max_versions_per_trigger is not None and self.max_versions_per_trigger < 1:
            raise ConfigError("config.filters.max_versions_per_trigger: must be >= 1")
        if not isinstance(self.producer_options, dict):
            raise ConfigError("config.filters.producer_options: expected a mapping")
        bad = [k for k in self.producer_options if not str(k).startswith("kafka.")]
        if bad:
            raise ConfigError(f"config.filters.producer_options: keys must start with 'kafka.': {bad}")
        if self.schema_registry_url is not None and not re.match(r"^https?://", self.schema_registry_url):
            raise ConfigError("config.filters.schema_registry_url: must be an http(s) URL or null")

    @classmethod
    def from_config(cls, config: Config) -> FilterSettings:
        section = config.section("filters")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(f"config.filters: unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(**section)

    def filters_file(self) -> Path:
        return Path(self.file) if self.file else DEFAULT_FILTERS_FILE

    def checkpoint_for(self, config: Config) -> str:
        return self.checkpoint or str(Path(config.stream.checkpoint).parent / "distribute")

    def bootstrap_for(self, config: Config) -> str:
        servers = self.bootstrap_servers or config.source.kafka.bootstrap_servers
        if not servers:
            raise ConfigError("config.filters.bootstrap_servers: not set (nor source.kafka.bootstrap_servers)")
        return servers
