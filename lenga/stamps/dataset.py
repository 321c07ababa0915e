"""Training sets: the first detection of simulated objects of every stamp class, as alert rows.

For each stamp class, objects are drawn from every light-curve model registered with that
``stamp_class`` (:data:`lenga.sim.lightcurves.LIGHT_CURVE_CLASSES`, cycling through the models so
each contributes; new models are picked up without a change here) until ``n_per_class`` of them
are detected. Each object's first detection is serialised by the survey's record builder
(:mod:`lenga.sim.ztf`, :mod:`lenga.sim.lsst`: the same packets the stream receives, cutouts as
gzipped or plain FITS) and mapped to an alerts-table row by the decoder's own ``extract``
(:mod:`lenga.survey`); only the Avro encoding is skipped. Images and features then go through
exactly the inference path (:func:`lenga.stamps.features.model_inputs`); tests check the
features equal those of the
same alert decoded by :mod:`lenga.decode`.

Robustness to masked pixels: real ZTF cutouts have NaN regions (CCD edges, bad pixels) on real
sources too, so :func:`mask_augment` blanks an off-centre border strip of a fraction of the
training stamps of every class; otherwise "has NaN pixels" would be learnt as "bogus".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lenga import schema
from lenga.sim import lsst as sim_lsst
from lenga.sim import ztf as sim_ztf
from lenga.sim.classes import LIGHT_CURVE_CLASSES
from lenga.sim.population import assign_ids, make_object, sky_positions
from lenga.sim.survey import SURVEYS, night_conditions
from lenga.stamps import CLASSES
from lenga.stamps.features import model_inputs
from lenga.stamps.preprocess import CROP
from lenga.survey import lsst, ztf

# Simulated period: the survey's alert history before a window of alert nights starting
# 2025-05-01 (as lenga.sim.night); first detections fall anywhere in it.
START_MJD = 60796
WINDOW_NIGHTS = 20
# Give up on a class when this many objects per wanted detection were drawn (a model the survey
# cannot detect should fail loudly, not loop).
MAX_DRAWS_PER_OBJECT = 20
# Fraction of training stamps given a masked border strip, and its depth range [pixels].
MASK_FRACTION = 0.1
MASK_DEPTH = (1, 8)
SURVEY_CODE = {"ztf": 1, "lsst": 2}
LSST_SCHEMA = "10.0"


@dataclass
class StampSet:
    """Inputs and truth of simulated alerts: ``images`` (N, 3, 21, 21), ``features`` (N, F),
    ``labels`` (N,) indices into :data:`lenga.stamps.CLASSES`, ``kinds`` the light-curve model or
    artefact behind each alert (for per-kind diagnostics)."""

    survey: str
    images: np.ndarray
    features: np.ndarray
    labels: np.ndarray
    kinds: np.ndarray

    def __len__(self) -> int:
        return self.labels.size


def _models(stamp_class: str) -> list:

    models = sorted((m for m in LIGHT_CURVE_CLASSES.values() if m.stamp_class == stamp_class), key=lambda m: m.name)
    if not models:
        raise ValueError(f"no light-curve model is registered with stamp_class {stamp_class!r}")
    return models


def first_detections(survey_name: str, n_per_class: int, seed: int) -> tuple[list, list[int], list[int]]:
    """Simulated objects with at least one detection, ``n_per_class`` per stamp class, with the
    epoch index of their first detection and their class index."""

    survey = SURVEYS[survey_name]
    code = SURVEY_CODE[survey_name]
    history = int(np.ceil(survey.history_days))
    nights = night_conditions(survey, np.random.default_rng((seed, code)), START_MJD - history,
                              history + WINDOW_NIGHTS)
    window = (float(START_MJD), float(START_MJD + WINDOW_NIGHTS))
    objects, epochs, labels = [], [], []
    for label, stamp_class in enumerate(CLASSES):
        models = _models(stamp_class)
        kept = 0
        for draw in range(n_per_class * MAX_DRAWS_PER_OBJECT):
            model = models[draw % len(models)]
            key = (seed, code, label, draw)
            rng = np.random.default_rng(key)
            radec = sky_positions(rng, survey, 1, np.array([model.sky]))[0]
            o = make_object(survey, rng, len(objects), model, nights, window, tuple(radec), seed=key)
            if o.detected.any():
                objects.append(o)
                epochs.append(int(np.flatnonzero(o.detected)[0]))
                labels.append(label)
                kept += 1
                if kept == n_per_class:
                    break
        else:
            raise RuntimeError(f"{stamp_class}: only {kept} of {n_per_class} objects detected in "
                               f"{n_per_class * MAX_DRAWS_PER_OBJECT} draws on {survey_name}")
    return objects, epochs, labels


def _plain(record: dict) -> dict:
    """A ZTF record as a reader returns it: history values without fastavro's ``(branch, value)``
    union hints (lenga.sim.ztf names branches for the encoder)."""
    def unhint(point: dict) -> dict:
        return {k: v[1] if isinstance(v, tuple) else v for k, v in point.items()}

    return {**record, "prv_candidates": [unhint(p) for p in record["prv_candidates"]],
            "fp_hists": [unhint(p) for p in record["fp_hists"]]}


def assign_survey_ids(survey_name: str, objects: list) -> None:
    """Object and detection ids of the drawn objects, as lenga.sim.night gives a population."""

    if survey_name == "ztf":
        assign_ids(objects, source_id_base=0)
        sim_ztf.assign_candids(objects, offset=0)
    else:
        assign_ids(objects, source_id_base=sim_lsst.DIA_SOURCE_ID_BASE)
        sim_lsst.prepare(objects)


def alert_rows(survey_name: str, objects: list, epochs: list[int]) -> pa.Table:
    """The alerts-table rows (lenga.schema.ALERTS, before the decoder's batch completion) of the
    given detections of objects with ids, built by the simulator's record builders and the
    decoder's ``extract``."""

    if survey_name == "ztf":
        rows = [ztf.extract(_plain(sim_ztf.build_record(o, i))).alert for o, i in zip(objects, epochs, strict=True)]
    else:
        rows = [lsst.extract(sim_lsst.build_record(o, i, LSST_SCHEMA), LSST_SCHEMA).alert
                for o, i in zip(objects, epochs, strict=True)]
    return pa.Table.from_pylist(rows, schema=schema.ALERTS)


def mask_augment(images: np.ndarray, rng: np.random.Generator, fraction: float = MASK_FRACTION) -> np.ndarray:
    """Zero (the normalised value of a NaN pixel) a border strip of ``fraction`` of the stamps,
    on one random side, 1-7 pixels deep: never the central pixels where the source is."""
    out = images.copy()
    chosen = np.flatnonzero(rng.random(len(images)) < fraction)
    for k, side, depth in zip(chosen, rng.integers(0, 4, chosen.size), rng.integers(*MASK_DEPTH, chosen.size),
                              strict=True):
        depth = min(int(depth), CROP // 2 - 2)
        rotated = np.rot90(out[k], int(side), axes=(1, 2))  # a view: masking its top rows masks one side
        rotated[:, :depth, :] = 0.0
    return out


def build_stamp_set(survey_name: str, n_per_class: int, seed: int, augment: bool = True) -> StampSet:
    """A balanced simulated set of first detections with the inference path's inputs."""
    objects, epochs, labels = first_detections(survey_name, n_per_class, seed)
    assign_survey_ids(survey_name, objects)
    table = alert_rows(survey_name, objects, epochs)
    inputs = model_inputs(table, survey_name)
    images = inputs.images
    bad = [r for r in inputs.reasons if r is not None]
    if bad:
        raise RuntimeError(f"simulated cutouts failed to decode: {bad[:3]}")
    if augment:
        images = mask_augment(images, np.random.default_rng((seed, SURVEY_CODE[survey_name], len(CLASSES))))
    kinds = np.array([o.artifact or o.model.name for o in objects])
    return StampSet(survey_name, images, inputs.features, np.array(labels, np.int64), kinds)
