"""lenga's ZTF 4.02 schema against ZTF's reference .avsc files, and the LSST schemas in use."""

import json

import fastavro
import pytest

from lenga.sim import lsst, ztf

REFERENCE_TYPES = ("candidate", "prv_candidate", "fp_hist", "cutout", "alert")


def _canonical(schema_obj, named, seen=None):
    """Fields, types and order of a parsed schema, named types expanded once (docs ignored)."""
    seen = set() if seen is None else seen
    if isinstance(schema_obj, str):
        if schema_obj in named and schema_obj not in seen:
            return _canonical(named[schema_obj], named, seen)
        return schema_obj
    if isinstance(schema_obj, list):
        return [_canonical(s, named, seen) for s in schema_obj]
    kind = schema_obj["type"]
    if kind == "record":
        if schema_obj["name"] in seen:
            return schema_obj["name"]
        seen.add(schema_obj["name"])
        return {
            "record": schema_obj["name"],
            "fields": [
                (f["name"], _canonical(f["type"], named, seen), f.get("default", "<none>")) for f in schema_obj["fields"]
            ],
        }
    if kind == "array":
        return {"array": _canonical(schema_obj["items"], named, seen)}
    return _canonical(kind, named, seen)


def test_ztf_schema_matches_reference(shared_data):
    folder = shared_data / "ztf" / "ztf-avro-alert" / "schema"
    named: dict = {}
    for name in REFERENCE_TYPES:
        parsed = fastavro.parse_schema(json.loads((folder / f"{name}.avsc").read_text()), named_schemas=named)
    reference = _canonical(parsed, named)
    ours = _canonical(ztf.schema(), ztf.schema()["__named_schemas"])
    assert ours == reference
    assert len(ours["fields"]) == 10
    candidate = dict((f[0], f[1]) for f in ours["fields"])["candidate"]
    assert len(candidate["fields"]) == 103
    assert [f[0] for f in ours["fields"]][6] == "fp_hists"


def test_ztf_schema_file_is_not_a_copy(shared_data):
    """The hook checks md5 sums: lenga's file must be its own (one combined, normalised JSON)."""
    folder = shared_data / "ztf" / "ztf-avro-alert" / "schema"
    ours = ztf.SCHEMA_PATH.read_bytes()
    for name in REFERENCE_TYPES:
        assert (folder / f"{name}.avsc").read_bytes() != ours
    assert json.loads(ours)["name"] == "ztf.alert"
    assert json.loads(ours)["version"] == "4.02"


@pytest.mark.parametrize("version, schema_id", [("9.0", 900), ("10.0", 1000)])
def test_lsst_schema_from_package(version, schema_id):
    s = lsst.schema(version)
    major, minor = version.split(".")
    assert s["name"] == f"lsst.v{major}_{minor}.alert"
    assert lsst.schema_id(version) == schema_id
    names = [f["name"] for f in s["fields"]]
    assert names[:4] == ["diaSourceId", "observation_reason", "target_name", "diaSource"]


def test_lsst_unknown_version_is_rejected():
    with pytest.raises(ValueError, match="unsupported LSST schema version"):
        lsst.schema_id("7.1")
