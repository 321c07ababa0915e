"""Configuration is validated once at start-up, with the dotted path of the faulty key."""

from __future__ import annotations

import pytest

from lenga.config import ConfigError, load_config, parse_override


def test_defaults_load_and_overrides_apply(tmp_path):
    user = tmp_path / "site.yaml"
    user.write_text("lake:\n  root: /data/lake\nsource:\n  kafka:\n    topics: [ztf_public]\n")
    config = load_config(user, ["source.kafka.max_offsets_per_trigger=500", "spark.spark.driver.memory=3g"])
    assert config.lake.root == "/data/lake"
    assert config.source.kafka.topics == ["ztf_public"]
    assert config.source.kafka.max_offsets_per_trigger == 500
    assert config.spark["spark.driver.memory"] == "3g"
    assert config.spark["spark.master"] == "local[*]"  # merged, not replaced


@pytest.mark.parametrize(("override", "message"), [
    ("source.kind=ftp", "config.source.kind: must be 'kafka' or 'files'"),
    ("lake.bakend=delta-rs", "config.lake: unknown key(s) ['bakend']"),
    ("source.kafka.min_partitions=many", "config.source.kafka.min_partitions: expected int"),
    ("source.kafka.max_offsets_per_trigger=0", "max_offsets_per_trigger: must be >= 1"),
    ("stream.trigger=once", "config.stream.trigger"),
    ("nonsense.key=1", "unknown section(s) ['nonsense']"),
    ("source.kafka.options={'fetch.wait.max.ms': 5}", "keys must start with 'kafka.'"),
])
def test_bad_settings_fail_with_the_key_path(override, message):
    with pytest.raises(ConfigError) as error:
        load_config(overrides=[override])
    assert message in str(error.value)


def test_spark_keys_keep_their_dots():
    assert parse_override("spark.spark.sql.shuffle.partitions=8") == {"spark": {"spark.sql.shuffle.partitions": 8}}
    with pytest.raises(ConfigError):
        parse_override("no-equals-sign")
