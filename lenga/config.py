"""Configuration: ``conf/lenga.yaml`` read once, validated, and handed to jobs as typed objects.

Every tunable lives in YAML; jobs never carry their own constants. Validation happens at start-up
with messages that name the offending key, so a typo fails in the first second, not mid-night.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# spark-submit.sh exports LENGA_CONF_DIR: on a cluster the code runs from a zip, not the checkout.
CONF_DIR = Path(os.environ.get("LENGA_CONF_DIR", Path(__file__).resolve().parents[1] / "conf"))
DEFAULT_CONF = CONF_DIR / "lenga.yaml"
#: The checkout that ``conf/`` belongs to: relative paths in the configuration (models, catalogs)
#: are resolved against it, never against ``__file__`` (inside the shipped zip on a cluster).
PROJECT_ROOT = CONF_DIR.parent


class ConfigError(ValueError):
    """A configuration problem, with the dotted path of the key at fault."""


def _build(cls, data: Any, where: str):
    """Instantiate dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    values = {}
    for name, value in data.items():
        expected = fields[name].type
        sub = _NESTED.get((cls.__name__, name))
        if sub is not None:
            values[name] = _build(sub, value, f"{where}.{name}")
            continue
        values[name] = _check(value, expected, f"{where}.{name}")
    obj = cls(**values)
    validate = getattr(obj, "validate", None)
    if validate:
        validate(where)
    return obj


_SCALARS = {"int": int, "float": (int, float), "str": str, "bool": bool}


def _check(value: Any, annotation: str, where: str) -> Any:
    """Check a scalar against a (string) annotation such as ``int``, ``str | None``, ``list[str]``."""
    options = [a.strip() for a in str(annotation).split("|")]
    if value is None:
        if "None" in options:
            return None
        raise ConfigError(f"{where}: must not be null")
    for option in options:
        if option in _SCALARS and isinstance(value, _SCALARS[option]) and not (
                option in ("int", "float") and isinstance(value, bool)):
            return float(value) if option == "float" else value
        if option.startswith("list") and isinstance(value, list):
            return list(value)
        if option.startswith("dict") and isinstance(value, dict):
            return dict(value)
    raise ConfigError(f"{where}: expected {annotation}, got {value!r}")


@dataclass
class KafkaConfig:
    bootstrap_servers: str | None = None
    topics: list[str] = field(default_factory=lambda: ["ztf_alerts", "lsst_alerts"])
    starting_offsets: str = "earliest"
    max_offsets_per_trigger: int | None = 20000
    min_partitions: int | None = None
    options: dict = field(default_factory=dict)

    def validate(self, where: str) -> None:
        if not self.topics:
            raise ConfigError(f"{where}.topics: at least one topic is needed")
        if self.max_offsets_per_trigger is not None and self.max_offsets_per_trigger < 1:
            raise ConfigError(f"{where}.max_offsets_per_trigger: must be >= 1")
        if self.min_partitions is not None and self.min_partitions < 1:
            raise ConfigError(f"{where}.min_partitions: must be >= 1")
        bad = [k for k in self.options if not k.startswith("kafka.")]
        if bad:
            raise ConfigError(f"{where}.options: keys must start with 'kafka.': {bad}")


@dataclass
class FilesConfig:
    path: str | None = None
    max_files_per_trigger: int | None = 2000


@dataclass
class SourceConfig:
    kind: str = "kafka"
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    files: FilesConfig = field(default_factory=FilesConfig)

    def validate(self, where: str) -> None:
        if self.kind not in ("kafka", "files"):
            raise ConfigError(f"{where}.kind: must be 'kafka' or 'files', not {self.kind!r}")


@dataclass
class StreamConfig:
    trigger: str = "available_now"
    processing_time: str = "10 seconds"
    checkpoint: str = "./checkpoints/stream"
    query_name: str = "lenga"

    def validate(self, where: str) -> None:
        if self.trigger not in ("available_now", "processing_time"):
            raise ConfigError(f"{where}.trigger: must be available_now or processing_time")


@dataclass
class LakeConfig:
    root: str = "./lake"
    backend: str = "auto"

    def validate(self, where: str) -> None:
        if self.backend not in ("auto", "delta-spark", "delta-rs"):
            raise ConfigError(f"{where}.backend: must be auto, delta-spark or delta-rs")


@dataclass
class Config:
    spark: dict = field(default_factory=dict)
    source: SourceConfig = field(default_factory=SourceConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    lake: LakeConfig = field(default_factory=LakeConfig)
    simulate: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict, repr=False)

    def section(self, name: str) -> dict:
        """A section owned by another module (validated there), e.g. ``features``."""
        return copy.deepcopy(self.raw.get(name, {}))


_NESTED = {
    ("Config", "source"): SourceConfig,
    ("Config", "stream"): StreamConfig,
    ("Config", "lake"): LakeConfig,
    ("SourceConfig", "kafka"): KafkaConfig,
    ("SourceConfig", "files"): FilesConfig,
}
# Sections validated by the module that owns them (loaded lazily so jobs import only what they use).
OWNED_SECTIONS = ("aggregation", "features", "catalogs", "xmatch", "lc_classifier", "stamp_classifier", "filters", "benchmark")


def deep_merge(base: dict, override: dict) -> dict:
    """``override`` merged into ``base``, mapping by mapping (the flat ``spark`` section merges key by key)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> dict:
    """``section.key=value`` (value parsed as YAML) → nested dict."""
    if "=" not in text:
        raise ConfigError(f"--set expects section.key=value, got {text!r}")
    dotted, value = text.split("=", 1)
    parts = dotted.split(".")
    if parts[0] == "spark":  # Spark keys contain dots themselves
        parts = ["spark", ".".join(parts[1:])]
    node: dict = {}
    cursor = node
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = yaml.safe_load(value)
    return node


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                extra: dict | None = None) -> Config:
    """Read ``conf/lenga.yaml``, merge a user file, ``--set`` overrides and ``extra``; validate."""
    with open(DEFAULT_CONF) as handle:
        data = yaml.safe_load(handle) or {}
    if path is not None:
        with open(path) as handle:
            data = deep_merge(data, yaml.safe_load(handle) or {})
    for text in overrides or []:
        data = deep_merge(data, parse_override(text))
    if extra:
        data = deep_merge(data, extra)
    known = {f.name for f in dataclasses.fields(Config)} - {"raw"}
    unknown = sorted(set(data) - known - set(OWNED_SECTIONS))
    if unknown:
        raise ConfigError(f"config: unknown section(s) {unknown}; known: {sorted(known | set(OWNED_SECTIONS))}")
    config = _build(Config, {k: v for k, v in data.items() if k in known}, "config")
    config.raw = data
    config.spark = {str(k): str(v) for k, v in config.spark.items()}
    return config


def add_config_arguments(parser) -> None:
    """``--conf FILE`` and ``--set key=value`` for every job."""
    parser.add_argument("--conf", help="YAML file merged over conf/lenga.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one setting, e.g. --set source.kafka.max_offsets_per_trigger=5000")
