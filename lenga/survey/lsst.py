"""Rubin/LSST alert record (``lsst.vX_Y.alert``, v7.x to v11.x, https://github.com/lsst/alert_packet)
to lenga rows.

* ``diaSource`` -> the alert row and one detection; ``prvDiaSources`` -> history detections;
* ``prvDiaForcedSources`` -> forced photometry (already nJy);
* v7 ``prvDiaNondetectionLimits`` -> upper limits, ``diaNoise`` (nJy, 1 sigma) as ``psfFluxErr``
  (:mod:`lenga.decode` turns it into a 5-sigma ``diffmaglim`` like ZTF's).

Versions differ in the alert id: v7 has a top-level ``alertId``; v8+ identify the alert by
``diaSourceId``. Fields are looked up by name, so Fink's re-serialised records (writer schema
``topLevelRecord`` with the same nested fields plus broker columns) map the same way.

A solar-system alert has no diaObject (``diaObjectId`` null or 0): its objectId is
``sso:<ssObjectId>`` and ``diaObjectId`` is null, so 0 never groups unrelated asteroids together.
"""

from __future__ import annotations

import functools

import fastavro
from lsst.alert.packet import SchemaRegistry

from lenga import schema
from lenga.night import CERRO_PACHON_LONGITUDE_DEG
from lenga.survey import Extracted, InvalidAlert, finite, plausible_mjd, require_position_and_time

SURVEY = "lsst"
SITE_LONGITUDE_DEG = CERRO_PACHON_LONGITUDE_DEG
#: Prefix of objectIds of solar-system alerts without a diaObject.
SSO_PREFIX = "sso:"

#: diaSource fields copied to the alert row unchanged (schema.ALERTS documents them).
CONTEXT_COLUMNS = schema.LSST_CONTEXT_COLUMNS


@functools.cache
def _registry() -> SchemaRegistry:
    """Every official schema shipped by lsst-alert-packet, by id (major*100 + minor): ~0.3 s once."""
    return SchemaRegistry.all_schemas_from_filesystem()


def wire_schema(schema_id: int) -> dict | None:
    """Parsed official alert schema for a Confluent wire-format schema id, None if unknown (only
    known ids are cached: a stream of damaged ids must not grow a cache)."""
    return _parsed_schema(schema_id) if schema_id in _registry().known_ids else None


@functools.cache
def _parsed_schema(schema_id: int) -> dict:
    return fastavro.parse_schema(_registry().get_by_id(schema_id).definition)


def schema_version(schema_id: int) -> str:
    """Schema id -> version string, e.g. 701 -> '7.1', 1000 -> '10.0'."""
    major, minor = divmod(schema_id, 100)
    return f"{major}.{minor}"


def _object_ids(record: dict, source: dict) -> tuple[str, int | None]:
    dia_object_id = source.get("diaObjectId") or (record.get("diaObject") or {}).get("diaObjectId")
    if dia_object_id:
        return str(dia_object_id), dia_object_id
    sso = record.get("ssSource") or record.get("ssObject") or {}
    ss_object_id = source.get("ssObjectId") or sso.get("ssObjectId")
    if not ss_object_id:
        raise InvalidAlert("LSST alert has neither a diaObjectId nor an ssObjectId")
    return f"{SSO_PREFIX}{ss_object_id}", None


def _detection(source: dict, base: dict, from_history: bool) -> dict | None:
    mjd = source.get("midpointMjdTai")
    if source.get("band") is None or not (plausible_mjd(mjd) and finite(source.get("psfFlux"))):
        return None
    return {
        **base,
        "candid": source["diaSourceId"],
        "mjd": mjd,
        "band": source["band"],
        "ra": source.get("ra"),
        "dec": source.get("dec"),
        "psfFlux": source["psfFlux"],
        "psfFluxErr": source.get("psfFluxErr"),
        "reliability": source.get("reliability"),
        "from_history": from_history,
    }


def _non_detection(point: dict, base: dict, kind: str, flux: str | None, flux_err: str) -> dict | None:
    mjd = point.get("midpointMjdTai")
    if point.get("band") is None or not plausible_mjd(mjd) or not finite(point.get(flux_err)):
        return None
    if flux is not None and not finite(point.get(flux)):
        return None
    return {**base, "kind": kind, "mjd": mjd, "band": point["band"],
            "psfFlux": None if flux is None else point[flux], "psfFluxErr": point[flux_err]}


def extract(record: dict, schemavsn: str | None = None) -> Extracted:
    """Map one LSST alert record (as fastavro returns it) to the alert row and its history rows.

    Raises InvalidAlert when the alert's own diaSource cannot be stored (NaN position, time or
    psfFlux, no band, no object id).
    """
    source = record["diaSource"]
    require_position_and_time(source["ra"], source["dec"], source["midpointMjdTai"])
    object_id, dia_object_id = _object_ids(record, source)
    candid = source["diaSourceId"]
    base = {"survey": SURVEY, "objectId": object_id, "diaObjectId": dia_object_id, "alert_candid": candid}
    own = _detection(source, base, from_history=False)
    if own is None:
        raise InvalidAlert(f"invalid LSST diaSource photometry: band={source.get('band')!r}, "
                           f"psfFlux={source.get('psfFlux')}")

    detections = [own]
    prv = record.get("prvDiaSources") or []
    detections.extend(row for s in prv if (row := _detection(s, base, from_history=True)) is not None)
    forced = record.get("prvDiaForcedSources") or []
    limits = record.get("prvDiaNondetectionLimits") or []
    non_detections = [
        row for p in forced
        if (row := _non_detection(p, base, schema.FORCED, "psfFlux", "psfFluxErr")) is not None
    ]
    non_detections.extend(
        row for p in limits
        if (row := _non_detection(p, base, schema.UPPER_LIMIT, None, "diaNoise")) is not None
    )
    n_dropped = len(prv) + len(forced) + len(limits) - (len(detections) - 1) - len(non_detections)

    alert = {name: source.get(name) for name in CONTEXT_COLUMNS}
    alert.update(
        own,
        alertId=record.get("alertId", record.get("diaSourceId")),
        schemavsn=schemavsn,
        n_prv_detections=len(prv),
        n_prv_non_detections=len(limits),
        n_forced=len(forced),
        n_dropped_points=n_dropped,
        cutoutScience=record.get("cutoutScience"),
        cutoutTemplate=record.get("cutoutTemplate"),
        cutoutDifference=record.get("cutoutDifference"),
    )
    return Extracted(alert, detections, non_detections)
