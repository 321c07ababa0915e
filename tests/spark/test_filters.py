"""Filters: file parsing and validation, predicate compilation, hot reload, watchlist cone match,
payload schemas and encodings."""

from __future__ import annotations

import http.server
import io
import json
import os
import struct
import threading

import astropy.units as u
import fastavro
import numpy as np
import pyarrow as pa
import pytest
from astropy.coordinates import SkyCoord

from lenga.config import ConfigError, load_config
from lenga.filters.config import (
    DEFAULT_FILTERS_FILE,
    FilterError,
    FilterSettings,
    WatchTarget,
    parse_filters,
    read_filters,
)
from lenga.filters.payloads import (
    MESSAGE_SCHEMA,
    decode_message,
    encode_batch,
    encode_records,
    field_names,
    published_schema,
)
from lenga.filters.registry import RegistryError, fetch_schema, register_schema
from lenga.filters.reload import FilterReloader
from lenga.filters.watchlist import cone_match
from lenga.stream.distribute import ENRICHED_SCHEMA, FILTER_INDEX, OPTIONAL_COLUMNS, select_alerts
from lenga.stream.predicate import compile_predicate

GOOD = """version: 1
filters:
  - name: bright
    where: magpsf < 18
"""


def one(**keys) -> str:
    lines = "".join(f"    {k}: {v}\n" for k, v in keys.items())
    return "version: 1\nfilters:\n  - " + lines[4:]


def test_parse_defaults_and_normalised_predicate():
    filters = parse_filters(one(name="a", where="'magpsf  <\n 18'"), "f.yaml")
    spec = filters.filters[0]
    assert (spec.name, spec.payload, spec.topic, spec.where) == ("a", "thin", "lenga_a", "magpsf < 18")
    assert filters.digest == parse_filters(one(name="a", where="'magpsf  <\n 18'")).digest
    assert filters.digest != parse_filters(one(name="a", where="magpsf < 19")).digest


@pytest.mark.parametrize(("text", "message"), [
    ("version: 2\nfilters: []\n", "f.yaml.version: must be 1"),
    ("version: 1\nfilter: []\n", "unknown key(s) ['filter']"),
    ("version: 1\nfilters: [\n", "not valid YAML"),
    (one(name="1bad", where="'true'"), "f.yaml.filters[0].name: '1bad' must match"),
    (one(name="a", where="'true'", payload="huge"), "filters[0] (a).payload: must be one of"),
    (one(name="a", where="'true'", topic="'bad topic'"), "filters[0] (a).topic: 'bad topic' is not a legal"),
    (one(name="a"), "filters[0] (a).where: a Spark SQL predicate (string) is required"),
    (one(name="a", where="'true'", colour="red"), "unknown key(s) ['colour']"),
    (one(name="a", watchlist="[{name: t, ra: 400, dec: 0, radius_arcsec: 1}]"),
     "filters[0] (a).watchlist[0].ra: 400.0 is outside [0, 360)"),
    (one(name="a", watchlist="[{name: t, ra: 1, dec: 0, radius_arcsec: 0}]"),
     "watchlist[0].radius_arcsec: must be > 0"),
    (one(name="a", watchlist="[{name: t, ra: 1, dec: .nan, radius_arcsec: 1}]"),
     "watchlist[0].dec: expected a finite number"),
    (one(name="a", watchlist="[{name: t, ra: 1, dec: 2}]"), "keys must be exactly"),
    (GOOD + "  - name: bright\n    where: 'true'\n", "name used by more than one filter: ['bright']"),
])
def test_invalid_files_name_the_key(text, message):
    with pytest.raises(FilterError) as error:
        parse_filters(text, "f.yaml")
    assert message in str(error.value)


def test_watchlist_filter_needs_no_predicate():
    spec = parse_filters(one(name="w", watchlist="[{name: t, ra: 1, dec: 2, radius_arcsec: 3}]")).filters[0]
    assert spec.where == "true" and spec.watchlist == (WatchTarget("t", 1.0, 2.0, 3.0),)


def test_settings_validation():
    config = load_config()
    settings = FilterSettings.from_config(config)
    assert settings.filters_file() == DEFAULT_FILTERS_FILE
    assert settings.checkpoint_for(config).endswith("distribute")
    with pytest.raises(ConfigError, match="config.filters: unknown key"):
        FilterSettings.from_config(load_config(overrides=["filters.registry=http://x"]))
    with pytest.raises(ConfigError, match="schema_registry_url: must be an http"):
        FilterSettings(schema_registry_url="registry:8081")
    with pytest.raises(ConfigError, match="producer_options: keys must start with 'kafka.'"):
        FilterSettings(producer_options={"acks": "all"})
    with pytest.raises(ConfigError, match="bootstrap_servers: not set"):
        settings.bootstrap_for(config)


def test_shipped_filters_compile(spark):
    filters = read_filters(DEFAULT_FILTERS_FILE)
    assert filters.names == ["young_sn", "periodic_variables", "watchlist"]
    assert [f.payload for f in filters.filters] == ["lightcurve", "lightcurve", "full"]
    assert len(filters.filters[2].watchlist) == 3
    for spec in filters.filters:
        compile_predicate(spark, spec, ENRICHED_SCHEMA)


@pytest.mark.parametrize(("where", "message"), [
    ("magpsff < 18", "UNRESOLVED_COLUMN"),
    ("magpsf <", "PARSE_SYNTAX_ERROR"),
    ("magpsf", "DATATYPE_MISMATCH"),
    ("count(*) > 1", "aggregate"),
    ("features['x'] > objects", "DATATYPE_MISMATCH"),
])
def test_bad_predicates_are_reported_with_the_filter_name(spark, where, message):
    spec = parse_filters(one(name="broken", where=repr(where))).filters[0]
    with pytest.raises(FilterError) as error:
        compile_predicate(spark, spec, ENRICHED_SCHEMA)
    text = str(error.value)
    assert text.startswith(f"filter 'broken': invalid predicate {where!r}: ")
    assert message.lower() in text.lower() and "JVM stacktrace" not in text


def test_predicates_over_every_enriched_part_compile(spark):
    for where in ["objects.ndet >= 3 AND objects.magmean_g < 19", "features['Amplitude_g'] > 0.3",
                  "exists(xmatch, m -> m.catalog = 'gaia' AND m.sep_arcsec < 1)", "NOT coalesce(known_sso, false)",
                  "stamp_probabilities['SN'] > 0.4 AND lc_probabilities['RRL'] > 0.5", "lc_lastmjd >= mjd",
                  "days_since_first_detection < 5 AND watchlist_target IS NULL"]:
        compile_predicate(spark, parse_filters(one(name="x", where=repr(where))).filters[0], ENRICHED_SCHEMA)


@pytest.mark.parametrize(("where", "uses"), [
    ("features['Amplitude_g'] > 0.3", {"features"}),
    ("exists(xmatch, m -> m.catalog = 'gaia') OR FEATURES['x'] IS NOT NULL", {"features", "xmatch"}),
    ("objects.ndet >= 3 AND survey = 'features'", set()),  # named in a string only
    ("size(xmatch) = 0 OR known_sso", {"xmatch"}),
    ("magpsf < 18", set()),
])
def test_compilation_finds_the_optional_columns_a_predicate_reads(spark, where, uses):
    spec = parse_filters(one(name="x", where=repr(where))).filters[0]
    assert compile_predicate(spark, spec, ENRICHED_SCHEMA, OPTIONAL_COLUMNS).uses == uses
    assert compile_predicate(spark, spec, ENRICHED_SCHEMA).uses == set()  # asked about nothing


def enriched_alerts(spark, rows: list[dict]):
    """A frame of ENRICHED_SCHEMA holding ``rows`` (columns not given are null)."""
    empty = {f.name: None for f in ENRICHED_SCHEMA.fields}
    return spark.createDataFrame([{**empty, **row} for row in rows], ENRICHED_SCHEMA)


def test_one_pass_selection_keeps_each_filters_semantics(spark):
    """Every filter's predicate in one pass: an alert appears once per filter selecting it; a watchlist
    filter's predicate sees its own match (and only matched alerts), the other filters see none; a
    null predicate selects nothing."""
    rows = [
        {"survey": "ztf", "objectId": "A", "candid": 1, "ra": 10.0, "dec": 20.0, "magpsf": 17.0, "night": 1,
         "objects": {"ndet": 4}},
        {"survey": "ztf", "objectId": "B", "candid": 2, "ra": 10.0, "dec": 20.0002, "magpsf": 19.0, "night": 1},
        {"survey": "ztf", "objectId": "C", "candid": 3, "ra": 50.0, "dec": -5.0, "magpsf": None, "night": 2},
    ]
    text = """version: 1
filters:
  - name: bright
    where: magpsf < 18 AND watchlist_target IS NULL
  - name: near
    where: watchlist_sep_arcsec < 0.5
    watchlist: [{name: T, ra: 10.0, dec: 20.0, radius_arcsec: 2.0}]
  - name: faint
    where: magpsf > 18 AND watchlist_target IS NULL
  - name: wide
    watchlist: [{name: T2, ra: 10.0, dec: 20.0, radius_arcsec: 2.0}]
"""
    filters = [compile_predicate(spark, s, ENRICHED_SCHEMA, OPTIONAL_COLUMNS) for s in parse_filters(text).filters]
    selected = select_alerts(enriched_alerts(spark, rows), filters).toPandas()
    got = sorted(zip(selected.candid, selected[FILTER_INDEX], selected.watchlist_target.fillna("-"), strict=True))
    assert got == [(1, 0, "-"), (1, 1, "T"), (1, 3, "T2"), (2, 2, "-"), (2, 3, "T2")]
    assert selected[selected.candid == 1].ndet.tolist() == [4, 4, 4]
    wide = selected[(selected[FILTER_INDEX] == 3) & (selected.candid == 2)].watchlist_sep_arcsec.iloc[0]
    assert wide == pytest.approx(0.72, abs=1e-6)
    assert {"objects", "features", "xmatch"}.isdisjoint(selected.columns)


def test_reload_keeps_the_last_valid_filters(tmp_path, spark):
    path = tmp_path / "filters.yaml"
    path.write_text(GOOD)
    built = []

    def build(filters):
        compiled = [compile_predicate(spark, s, ENRICHED_SCHEMA) for s in filters.filters]
        built.append(filters.names)
        return compiled

    reloader = FilterReloader(path, build)
    first, _ = reloader.current()
    assert first.names == ["bright"] and reloader.current()[0] is first and built == [["bright"]]

    def edit(text: str) -> None:
        path.write_text(text)
        stat = path.stat()  # a distinct mtime even on coarse file-system clocks
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000 * (len(built) + 5)))

    edit(GOOD.replace("magpsf < 18", "magpsf <"))
    assert reloader.current()[0] is first and "invalid predicate" in reloader.last_error
    edit(GOOD.replace("name: bright", "name: faint"))
    assert reloader.current()[0].names == ["faint"] and reloader.last_error is None and reloader.reloads == 1
    path.unlink()
    assert reloader.current()[0].names == ["faint"] and "cannot" in reloader.last_error.lower() or \
        "No such file" in reloader.last_error
    with pytest.raises(FilterError, match="must match"):
        bad = tmp_path / "bad.yaml"
        bad.write_text(one(name="_x", where="'true'"))
        FilterReloader(bad, build).current()


def test_cone_match_is_the_nearest_target_within_its_own_radius():
    rng = np.random.default_rng(3)
    targets = [WatchTarget("a", 10.0, 20.0, 30.0), WatchTarget("b", 10.004, 20.0, 5.0),
               WatchTarget("pole", 123.0, 89.999, 10.0), WatchTarget("wrap", 359.9999, 0.0, 3.0)]
    ra = np.concatenate([10 + rng.normal(0, 0.004, 300), [0.0002, 359.9995, np.nan, 300.0, 10.0]])
    dec = np.concatenate([20 + rng.normal(0, 0.004, 300), [0.0, 0.0, 1.0, 89.9995, 20.0]])
    names, seps = cone_match(ra, dec, targets)
    alerts = SkyCoord(ra * u.deg, dec * u.deg)
    for i in range(len(ra)):
        if not np.isfinite(ra[i]):
            assert names[i] is None and np.isnan(seps[i])
            continue
        inside = [(alerts[i].separation(SkyCoord(t.ra * u.deg, t.dec * u.deg)).arcsec, t.name) for t in targets]
        inside = sorted((s, n) for (s, n), t in zip(inside, targets, strict=True) if s <= t.radius_arcsec)
        if inside:
            assert names[i] == inside[0][1] and seps[i] == pytest.approx(inside[0][0], abs=1e-6)
        else:
            assert names[i] is None and np.isnan(seps[i])
    assert {"a", "b", "pole", "wrap"} <= set(names[names != None])  # noqa: E711 - numpy object array


def test_schemas_nest_and_each_record_field_is_documented():
    thin, lightcurve, full = (field_names(p) for p in ("thin", "lightcurve", "full"))
    assert lightcurve[:len(thin)] == thin and full[:len(lightcurve)] == lightcurve
    assert set(lightcurve) - set(thin) == {"detections", "non_detections"}
    assert set(full) - set(lightcurve) == {"cutoutScience", "cutoutTemplate", "cutoutDifference"}
    for payload in ("thin", "lightcurve", "full"):
        schema = published_schema(payload)
        assert schema["namespace"] == "lenga.output.v1" and schema["doc"]
        assert all(f.get("doc") for f in schema["fields"])
        fastavro.parse_schema(schema)


def record(payload: str, candid: int) -> dict:
    base = {name: None for name in field_names(payload)}
    base.update(schema_version=f"{payload}/1", filter="f", survey="ztf", objectId="ZTF25aaaaaab", candid=candid,
                mjd=60800.25, night=20250510, ra=10.5, dec=-3.25, band="g", magpsf=18.5,
                first_detection_mjd=60799.0, days_since_first_detection=1.25, stamp_probabilities={"SN": 0.9})
    if payload != "thin":
        base["detections"] = [{"mjd": 60799.0, "candid": 7, "band": "r", "ra": 10.5, "dec": -3.25, "magpsf": 19.0,
                               "sigmapsf": 0.1, "psfFlux": 9000.0, "psfFluxErr": 900.0, "isdiffpos": True}]
        base["non_detections"] = [{"mjd": 60798.0, "kind": "upper_limit", "band": "g", "diffmaglim": 20.5,
                                   "psfFlux": None, "psfFluxErr": 150.0}]
    if payload == "full":
        base["cutoutScience"] = b"\x1f\x8bFITS"
    return base


@pytest.mark.parametrize("payload", ["thin", "lightcurve", "full"])
def test_both_encodings_round_trip(payload):
    records = [record(payload, 1), record(payload, 2)]
    containers = encode_records(records, payload, None)
    assert [decode_message(m, payload) for m in containers] == records
    # The container embeds the schema without docs (size) but the same fields.
    embedded = fastavro.reader(io.BytesIO(containers[0])).writer_schema
    assert "doc" not in str(embedded) and [f["name"] for f in embedded["fields"]] == field_names(payload)
    wire = encode_records(records, payload, 42)
    assert all(struct.unpack(">bI", m[:5]) == (0, 42) for m in wire)
    assert [decode_message(m, payload, published_schema(payload)) for m in wire] == records
    with pytest.raises(ValueError, match="registry's schema is needed"):
        decode_message(wire[0], payload)


def test_encode_batch_keys_headers_and_bad_rows():
    records = [record("thin", 5), record("thin", 6)]
    probabilities = pa.map_(pa.string(), pa.float64())
    batch = pa.RecordBatch.from_pydict({
        name: pa.array([r[name] for r in records], probabilities if name == "stamp_probabilities" else None)
        for name in field_names("thin")})
    messages = encode_batch(batch, "thin", "topic_t", "f", None)
    assert messages.schema == MESSAGE_SCHEMA
    assert messages.column("key").to_pylist() == [b"ZTF25aaaaaab"] * 2
    assert [dict((h["key"], h["value"]) for h in hs)["candid"] for hs in messages.column("headers").to_pylist()] == [
        b"5", b"6"]
    assert [decode_message(v, "thin") for v in messages.column("value").to_pylist()] == records
    with pytest.raises(ValueError, match=r"(?s)thin payload of candid 5 does not fit lenga.output.v1.ThinAlert: .*ThinAlert.mjd. is None"):
        encode_records([{**records[0], "mjd": None}], "thin", None)


class _Registry(http.server.BaseHTTPRequestHandler):
    """The two endpoints of the Confluent schema registry REST API that lenga and a consumer use
    (POST /subjects/<subject>/versions, GET /schemas/ids/<id>), with the registry's id semantics:
    the same schema text gets the same id."""

    schemas: list[str] = []
    subjects: dict[str, list[int]] = {}

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802 - http.server's naming
        parts = self.path.strip("/").split("/")
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if len(parts) != 3 or parts[0] != "subjects" or parts[2] != "versions":
            return self._answer(404, {"error_code": 404, "message": "not found"})
        fastavro.parse_schema(json.loads(body["schema"]))
        if body["schema"] not in self.schemas:
            self.schemas.append(body["schema"])
        schema_id = self.schemas.index(body["schema"]) + 1
        self.subjects.setdefault(parts[1], []).append(schema_id)
        return self._answer(200, {"id": schema_id})

    def do_GET(self):  # noqa: N802
        parts = self.path.strip("/").split("/")
        if parts[:2] != ["schemas", "ids"] or not 0 < int(parts[2]) <= len(self.schemas):
            return self._answer(404, {"error_code": 40403, "message": "Schema not found"})
        return self._answer(200, {"schema": self.schemas[int(parts[2]) - 1]})

    def log_message(self, *args):
        pass


def test_registry_registration_and_wire_format_decoding():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        thin = register_schema(url, "lenga_a", published_schema("thin"))
        assert register_schema(url, "lenga_a", published_schema("thin")) == thin  # idempotent
        full = register_schema(url, "lenga_b", published_schema("full"))
        assert full != thin and _Registry.subjects["lenga_a-value"] == [thin, thin]
        message = encode_records([record("full", 9)], "full", full)[0]
        schema_id = struct.unpack(">bI", message[:5])[1]
        assert decode_message(message, "full", fetch_schema(url, schema_id)) == record("full", 9)
        with pytest.raises(RegistryError, match="HTTP 404.*Schema not found"):
            fetch_schema(url, 99)
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(RegistryError, match="lenga_a-value/versions"):
        register_schema(url, "lenga_a", published_schema("thin"))
