"""Simulate nights of alerts: the simulator's entry point.

:func:`simulate` draws ``n_objects`` objects per survey from a class mix, observes them over a
history period plus ``n_nights`` alert nights, and yields one :class:`SimAlert` per detection in
those nights, in time order, with its packet bytes and its truth. An object detected on several
nights gets several alerts whose history grows. The same seed always gives byte-identical messages.

``corrupt_fraction`` adds deliberately broken messages (truncated, random bytes, empty, wrong
schema) next to the valid ones, tagged in the truth, so tests and the demo can check quarantine.
:func:`expected_counts` gives the number of unique detections, upper limits and forced-photometry
points the valid messages contain, which is what the pipeline's tables must hold exactly once.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

import fastavro
import numpy as np

from lenga.sim import lsst, ztf
from lenga.sim.classes import LIGHT_CURVE_CLASSES
from lenga.sim.population import SimObject, assign_ids, make_object, sky_positions
from lenga.sim.survey import SURVEYS, night_conditions

# Default class mix: roughly the composition of the ZTF alert stream by object (variable stars
# and bogus dominate, Förster et al. 2021), with enough transients and AGN for the classifiers.
# (Kept at the first classes: the demo's cross-match tests list them.)
DEFAULT_CLASS_MIX = {"SNIa": 0.25, "RRL": 0.15, "QSO": 0.2, "LPV": 0.1, "star": 0.15, "asteroid": 0.15}
# Every class of the 15-class light-curve taxonomy plus constant stars and asteroids, weighted loosely
# like the ZTF alert stream by object (periodic stars and AGN dominate, supernovae are a few per cent;
# Förster et al. 2021, Sánchez-Sáez et al. 2021): pass it as ``SimConfig(class_mix=LC_CLASS_MIX)`` or
# as the ``simulate.class_mix`` setting.
LC_CLASS_MIX = {"SNIa": 0.06, "SNIbc": 0.02, "SNII": 0.04, "SLSN": 0.01, "QSO": 0.08, "AGN": 0.05, "Blazar": 0.02,
                "CV/Nova": 0.03, "YSO": 0.05, "LPV": 0.08, "E": 0.15, "DSCT": 0.04, "RRL": 0.1, "CEP": 0.02,
                "Periodic-Other": 0.1, "star": 0.1, "asteroid": 0.05}
DEFAULT_TOPICS = {"ztf": "ztf_alerts", "lsst": "lsst_alerts"}
# First alert night: 2025-05-01 (MJD 60796), when both ZTF and Rubin were observing.
DEFAULT_START_MJD = 60796
CORRUPT_KINDS = ("truncated", "random", "empty", "wrong_schema")
# A record schema that is not an alert: what a producer pushing the wrong schema would send.
FOREIGN_SCHEMA = fastavro.parse_schema(
    {
        "type": "record",
        "name": "lenga.sim.not_an_alert",
        "fields": [{"name": "objectId", "type": "string"}, {"name": "note", "type": "string"}],
    }
)
# Confluent schema id no Rubin schema has (version 99.99).
UNKNOWN_SCHEMA_ID = 9999
# Survey codes mixed into the seeds so the two surveys draw independent populations.
SURVEY_CODE = {"ztf": 1, "lsst": 2}


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. ``class_mix`` weights are normalised; ``surveys`` is a subset of
    ``("ztf", "lsst")``; ``lsst_schema`` is ``"9.0"`` or ``"10.0"``."""

    seed: int = 42
    n_objects: int = 200
    n_nights: int = 3
    surveys: tuple[str, ...] = ("ztf", "lsst")
    class_mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_CLASS_MIX))
    corrupt_fraction: float = 0.0
    lsst_schema: str = "10.0"
    start_mjd: int = DEFAULT_START_MJD
    topics: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TOPICS))

    def __post_init__(self):
        if isinstance(self.surveys, str):
            object.__setattr__(self, "surveys", tuple(s.strip() for s in self.surveys.split(",") if s.strip()))
        unknown = set(self.surveys) - set(SURVEYS)
        if unknown or not self.surveys:
            raise ValueError(f"surveys must be a non-empty subset of {sorted(SURVEYS)}, got {self.surveys}")
        bad = set(self.class_mix) - set(LIGHT_CURVE_CLASSES)
        if bad:
            raise ValueError(f"unknown classes {sorted(bad)} in class_mix; known: {sorted(LIGHT_CURVE_CLASSES)}")
        if not self.class_mix or min(self.class_mix.values()) < 0 or sum(self.class_mix.values()) <= 0:
            raise ValueError(f"class_mix needs non-negative weights with a positive sum, got {self.class_mix}")
        if not 0.0 <= self.corrupt_fraction <= 1.0:
            raise ValueError(f"corrupt_fraction must be in [0, 1], got {self.corrupt_fraction}")
        if self.n_objects < 1 or self.n_nights < 1:
            raise ValueError(f"n_objects and n_nights must be >= 1, got {self.n_objects}, {self.n_nights}")
        lsst.schema_id(self.lsst_schema)  # raises on an unsupported version
        missing = set(self.surveys) - set(self.topics)
        if missing:
            raise ValueError(f"no topic configured for {sorted(missing)}")

    @classmethod
    def from_dict(cls, values: Mapping) -> SimConfig:
        """Build from a mapping (the ``simulate:`` section of conf/lenga.yaml); unknown keys are an
        error so a typo does not silently fall back to a default."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown simulate settings {sorted(unknown)}; known: {sorted(known)}")
        values = dict(values)
        if "lsst_schema" in values:
            values["lsst_schema"] = str(values["lsst_schema"])
        if isinstance(values.get("surveys"), list):
            values["surveys"] = tuple(values["surveys"])
        return cls(**values)


@dataclass(frozen=True)
class SimAlert:
    """One Kafka message and its truth.

    ``detections`` (candid / diaSourceId), ``upper_limits`` ((objectId, jd, fid), ZTF only) and
    ``forced`` (ZTF (objectId, jd, fid), LSST diaForcedSourceId) list what the message contains.
    ``corrupt`` names the damage done to a broken message (None for a valid one); a broken message
    keeps the key and truth ids of the alert it was made from but contains nothing.
    """

    survey: str
    topic: str
    key: bytes
    value: bytes
    object_id: str
    candid: int
    class_name: str
    mjd: float
    corrupt: str | None = None
    detections: tuple = ()
    upper_limits: tuple = ()
    forced: tuple = ()


def build_population(config: SimConfig, survey_name: str) -> list[SimObject]:
    """Draw ``config.n_objects`` objects of one survey, with ids assigned."""
    survey = SURVEYS[survey_name]
    code = SURVEY_CODE[survey_name]
    rng = np.random.default_rng((config.seed, code))
    history = int(np.ceil(survey.history_days))
    nights = night_conditions(survey, rng, config.start_mjd - history, history + config.n_nights)
    window = (float(config.start_mjd), float(config.start_mjd + config.n_nights))
    names = list(config.class_mix)
    weights = np.array([config.class_mix[n] for n in names], dtype=float)
    classes = rng.choice(names, size=config.n_objects, p=weights / weights.sum())
    models = [LIGHT_CURVE_CLASSES[c] for c in classes]
    positions = sky_positions(rng, survey, config.n_objects, np.array([m.sky for m in models]))
    objects = [
        make_object(
            survey,
            np.random.default_rng((config.seed, code, k)),
            k,
            models[k],
            nights,
            window,
            tuple(positions[k]),
            seed=(config.seed, code, k),
        )
        for k in range(config.n_objects)
    ]
    if survey_name == "ztf":
        assign_ids(objects, source_id_base=0)
        ztf.assign_candids(objects, offset=int(rng.integers(26**4)))
    else:
        assign_ids(objects, source_id_base=lsst.DIA_SOURCE_ID_BASE)
        lsst.prepare(objects)
    return objects


def _alert(config: SimConfig, survey: str, o: SimObject, i: int) -> SimAlert:
    if survey == "ztf":
        value = ztf.encode(ztf.build_record(o, i))
        t = ztf.truth(o, i)
    else:
        value = lsst.encode(lsst.build_record(o, i, config.lsst_schema), config.lsst_schema)
        t = lsst.truth(o, i)
    return SimAlert(
        survey=survey,
        topic=config.topics[survey],
        key=t["object_id"].encode(),
        value=value,
        object_id=t["object_id"],
        candid=t["candid"],
        class_name=o.class_name,
        mjd=float(o.epochs.mjd[i]),
        detections=t["detections"],
        upper_limits=t["upper_limits"],
        forced=t["forced"],
    )


def corrupt(alert: SimAlert, kind: str, rng: np.random.Generator) -> SimAlert:
    """A broken copy of ``alert`` (same key and topic): what a faulty producer could send."""
    if kind == "truncated":
        value = alert.value[: len(alert.value) // 2]
    elif kind == "random":
        value = rng.bytes(len(alert.value))
    elif kind == "empty":
        value = b""
    elif kind == "wrong_schema":
        if alert.survey == "ztf":
            buf = io.BytesIO()
            note = {"objectId": alert.object_id, "note": "not a ZTF alert"}
            fastavro.writer(buf, FOREIGN_SCHEMA, [note], sync_marker=b"\x01" * 16)
            value = buf.getvalue()
        else:
            value = b"\x00" + UNKNOWN_SCHEMA_ID.to_bytes(4, "big") + alert.value[5:]
    else:
        raise ValueError(f"unknown corruption {kind!r}; expected one of {CORRUPT_KINDS}")
    return SimAlert(
        survey=alert.survey,
        topic=alert.topic,
        key=alert.key,
        value=value,
        object_id=alert.object_id,
        candid=alert.candid,
        class_name=alert.class_name,
        mjd=alert.mjd,
        corrupt=kind,
    )


def simulate(config: SimConfig) -> Iterator[SimAlert]:
    """Yield the alerts of ``config.n_nights`` nights for every configured survey, in time order.

    Exactly ``round(corrupt_fraction * n_valid)`` broken messages are added, each right after the
    valid alert it was made from, cycling through :data:`CORRUPT_KINDS`.
    """
    triggers = []
    window = (config.start_mjd, config.start_mjd + config.n_nights)
    for survey in config.surveys:
        objects = build_population(config, survey)
        for o in objects:
            in_window = (o.epochs.mjd >= window[0]) & (o.epochs.mjd < window[1]) & o.detected
            for i in np.flatnonzero(in_window):
                triggers.append((float(o.epochs.mjd[i]), SURVEY_CODE[survey], o.index, survey, o, int(i)))
    triggers.sort(key=lambda t: t[:3])
    rng = np.random.default_rng((config.seed, 0))
    n_corrupt = round(config.corrupt_fraction * len(triggers))
    broken = set(rng.choice(len(triggers), size=n_corrupt, replace=False).tolist()) if n_corrupt else set()
    n_broken = 0
    for k, (_, _, _, survey, o, i) in enumerate(triggers):
        alert = _alert(config, survey, o, i)
        yield alert
        if k in broken:
            yield corrupt(alert, CORRUPT_KINDS[n_broken % len(CORRUPT_KINDS)], rng)
            n_broken += 1


def expected_counts(alerts: Iterable[SimAlert]) -> dict:
    """Counts the pipeline must reproduce from these messages, overall and per survey.

    ``alerts``/``corrupt``: valid and broken messages; ``objects``: distinct objectIds with a valid
    alert; ``detections``, ``upper_limits``, ``forced_photometry``: distinct entries over every
    valid message (a detection repeated in later alerts' histories counts once).
    """
    per: dict[str, dict[str, set | int]] = {}
    for a in alerts:
        s = per.setdefault(
            a.survey,
            {"alerts": 0, "corrupt": 0, "objects": set(), "detections": set(), "upper_limits": set(), "forced": set()},
        )
        if a.corrupt:
            s["corrupt"] += 1
            continue
        s["alerts"] += 1
        s["objects"].add(a.object_id)
        s["detections"].update(a.detections)
        s["upper_limits"].update(a.upper_limits)
        s["forced"].update(a.forced)
    by_survey = {
        name: {
            "alerts": s["alerts"],
            "corrupt": s["corrupt"],
            "objects": len(s["objects"]),
            "detections": len(s["detections"]),
            "upper_limits": len(s["upper_limits"]),
            "forced_photometry": len(s["forced"]),
        }
        for name, s in per.items()
    }
    keys = ("alerts", "corrupt", "objects", "detections", "upper_limits", "forced_photometry")
    total = {k: sum(c[k] for c in by_survey.values()) for k in keys}
    return {**total, "by_survey": by_survey}


def file_name(alert: SimAlert) -> str:
    """``<survey>_<objectId>_<candid>.avro``; broken messages get ``_corrupt-<kind>`` before it."""
    tag = f"_corrupt-{alert.corrupt}" if alert.corrupt else ""
    return f"{alert.survey}_{alert.object_id}_{alert.candid}{tag}.avro"


def write_directory(alerts: Iterable[SimAlert], path: str | Path) -> int:
    """Write one file per message into ``path`` (created if needed); returns the number written."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for alert in alerts:
        (out / file_name(alert)).write_bytes(alert.value)
        n += 1
    return n
