"""Labelled light curves from the simulator, with features computed exactly as in the stream.

Each training object is a simulator object (:func:`lenga.sim.population.make_object`, the same
physics and survey model as the demo stream) observed over a baseline of ``baseline_days`` (drawn
per object), turned into the row the aggregation query emits for it (``udfs.curves.CURVES_SCHEMA``:
its de-duplicated curve as arrays) and passed through the stream's own feature function
(``udfs.features.curve_features`` → :func:`lenga.features.extract_features`). The curve holds what
the alerts would have carried: every detection (magpsf of |difference flux| with its sign, and the
signed flux in nJy), and, for ZTF, the upper limits of the 30 days before each detection (an alert's
``prv_candidates`` window). Forced photometry is left out: the features do not read it.

Objects are kept only when the stream would classify them (``min_detections`` in one of
``detection_bands``, ALeRCE's criterion), so each class gets ``n_per_class`` *classifiable* objects.
Object ``k`` of class ``c`` is drawn from ``default_rng((seed, c, k))`` and objects are generated in
fixed chunks of keys, so the set depends only on the seed and sizes, not on the number of processes.
"""

from __future__ import annotations

import multiprocessing

import numpy as np
import pandas as pd

from lenga.curves.points import CORRECTION_COLUMNS, CURVE_DTYPES, DETECTION, NO_CANDID
from lenga.features import FeatureConfig
from lenga.features.curve_rows import curve_features, curves_table
from lenga.lc_classifier.model import LEAF_CLASSES
from lenga.lc_classifier.settings import TrainingSetConfig
from lenga.photometry import MAG_ERR_PER_REL_FLUX
from lenga.schema import UPPER_LIMIT
from lenga.sim.classes import LIGHT_CURVE_CLASSES
from lenga.sim.population import SimObject, make_object
from lenga.sim.survey import SURVEYS, night_conditions, njy_to_mag

#: Objects simulated per task: enough for extract_features to run vectorised, small enough to balance;
#: small sets use chunks of twice their size (the first n_per_class by key do not depend on it).
CHUNK = 100
MIN_CHUNK = 10
#: First night of every training baseline (any date works; this is ZTF's first public season).
START_MJD = 58300
#: Days at the start of a baseline before alerts flow (so transients can rise inside the baseline).
WARMUP_DAYS = 30.0
#: Give up on a class whose objects almost never reach min_detections (a broken model, not bad luck).
MIN_ACCEPTANCE = 0.02
def simulate_object(config: TrainingSetConfig, class_index: int, key: int) -> SimObject:
    """Object ``key`` of leaf class ``LEAF_CLASSES[class_index]``: survey, baseline and physics drawn
    from ``default_rng((seed, class_index, key))``."""
    rng = np.random.default_rng((config.seed, class_index, key))
    names = list(config.survey_mix)
    weights = np.array([config.survey_mix[n] for n in names], dtype=float)
    survey = SURVEYS[names[rng.choice(len(names), p=weights / weights.sum())]]
    n_nights = int(rng.uniform(*config.baseline_days))
    nights = night_conditions(survey, rng, START_MJD, n_nights)
    window = (float(START_MJD + WARMUP_DAYS), float(START_MJD + n_nights))
    model = LIGHT_CURVE_CLASSES[LEAF_CLASSES[class_index]]
    return make_object(survey, rng, key, model, nights, window, (0.0, 0.0), seed=(config.seed, class_index, key))


def classifiable(points: dict[str, np.ndarray], config: TrainingSetConfig) -> bool:
    """True when the stream would classify the curve: ``min_detections`` in one detection band."""
    bands = points["band"][points["kind"] == DETECTION]
    return any(int((bands == b).sum()) >= config.min_detections for b in config.detection_bands)


def one_alert(points: dict[str, np.ndarray], rng: np.random.Generator, history_days: float) -> dict[str, np.ndarray]:
    """The curve a single alert of the object carries: one of its detections, drawn at random, and
    the points of the ``history_days`` before it (the alert's ``prv_candidates`` window). Most real
    ZTF alerts of variable stars reach a broker this way, with no longer history behind them."""
    t_alert = rng.choice(points["mjd"][points["kind"] == DETECTION])
    keep = (points["mjd"] >= t_alert - history_days) & (points["mjd"] <= t_alert)
    return {name: values[keep] for name, values in points.items()}


def training_curve(config: TrainingSetConfig, class_index: int, key: int
                   ) -> tuple[SimObject, dict[str, np.ndarray] | None]:
    """Object ``key`` and the curve it contributes (None when it was never detected): its whole
    curve, or with probability ``single_alert_fraction`` what one of its alerts carries
    (:func:`one_alert`)."""
    o = simulate_object(config, class_index, key)
    if not o.detected.any():
        return o, None
    points = curve_points(o)
    rng = np.random.default_rng((config.seed, class_index, key, 1))
    if rng.random() < config.single_alert_fraction:
        points = one_alert(points, rng, o.survey.history_days)
    return o, points


def curve_points(o: SimObject) -> dict[str, np.ndarray]:
    """The object's light curve as the aggregation stores it: one array per ``CURVE_COLUMNS`` entry,
    in time order.

    Detections carry both magnitude and signed flux, as the decoder completes them; ZTF upper limits
    are the non-detected epochs within ``history_days`` before some detection (what the alerts'
    histories deliver); LSST alerts deliver no upper limits.
    """
    t, det = o.epochs.mjd, o.detected
    t_det = t[det]
    if o.survey.name == "ztf":
        # an alert's history reaches history_days back: the next detection must come within that
        nxt = np.searchsorted(t_det, t, side="right")
        later = np.where(nxt < t_det.size, t_det[np.minimum(nxt, t_det.size - 1)], np.inf)
        keep = det | (later - t <= o.survey.history_days)
    else:
        keep = det
    flux, err = o.phot.flux[keep], o.phot.flux_err[keep]
    is_det = det[keep]
    with np.errstate(divide="ignore"):
        magpsf, sigmapsf = njy_to_mag(flux), MAG_ERR_PER_REL_FLUX * err / np.abs(flux)
    nan = np.full(is_det.size, np.nan)
    return {
        "kind": np.where(is_det, DETECTION, UPPER_LIMIT).astype(object),
        "candid": np.where(is_det, np.arange(is_det.size), NO_CANDID),
        "mjd": t[keep],
        "band": o.epochs.band[keep].astype(object),
        "magpsf": np.where(is_det, magpsf, nan),
        "sigmapsf": np.where(is_det, sigmapsf, nan),
        "psfFlux": np.where(is_det, flux, nan),
        "psfFluxErr": np.where(is_det, err, nan),
        "isdiffpos": flux > 0,
        "diffmaglim": np.where(is_det, nan, o.epochs.depth[keep]),
        "ra": np.full(is_det.size, o.ra),
        "dec": np.full(is_det.size, o.dec),
        # the simulator has no reference-image sources: nothing to correct
        **{c: np.full(is_det.size, None if CURVE_DTYPES[c] == "boolean" else np.nan) for c in CORRECTION_COLUMNS},
    }


def _chunk(args: tuple[TrainingSetConfig, FeatureConfig, int, int, int]) -> tuple[int, int, pd.DataFrame, int]:
    """Features of the classifiable objects among keys [chunk * size, (chunk + 1) * size)."""

    config, features_config, class_index, chunk, size = args
    surveys, ids, curves = [], [], []
    for key in range(chunk * size, (chunk + 1) * size):
        o, points = training_curve(config, class_index, key)
        if points is not None and classifiable(points, config):
            surveys.append(o.survey.name)
            ids.append(f"sim{class_index:02d}_{key:07d}")
            curves.append(points)
    if not curves:
        return class_index, chunk, pd.DataFrame(), 0
    features = curve_features(curves_table(surveys, ids, curves), features_config)
    features["key"] = features["objectId"].str.split("_").str[1].astype(int)
    features["class_name"] = LEAF_CLASSES[class_index]
    return class_index, chunk, features, len(curves)


def build(config: TrainingSetConfig, features_config: FeatureConfig, processes: int = 1,
          classes: tuple[str, ...] = LEAF_CLASSES) -> pd.DataFrame:
    """Feature rows of ``n_per_class`` classifiable objects per class, with ``class_name``.

    Chunks of keys are simulated in waves (``processes`` worker processes) until every class has
    enough; each class keeps its first ``n_per_class`` objects by key, so the result does not depend
    on ``processes``. Raises if a class's acceptance falls below :data:`MIN_ACCEPTANCE`.
    """
    wanted = [LEAF_CLASSES.index(c) for c in classes]
    size = min(CHUNK, max(MIN_CHUNK, 2 * config.n_per_class))
    done: dict[int, dict[int, pd.DataFrame]] = {c: {} for c in wanted}
    tried = dict.fromkeys(wanted, 0)
    accepted = dict.fromkeys(wanted, 0)
    # spawn, not fork: children forked after xgboost/light-curve started their threads can hang
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) if processes > 1 else _Serial() as pool:
        while True:
            tasks = []
            for c in wanted:
                rows = sum(len(f) for f in done[c].values())
                if rows >= config.n_per_class:
                    continue
                if tried[c] >= 5 * size and accepted[c] < MIN_ACCEPTANCE * tried[c]:
                    raise RuntimeError(f"class {LEAF_CLASSES[c]}: only {accepted[c]} of {tried[c]} simulated "
                                       f"objects reach {config.min_detections} detections")
                rate = max(accepted[c] / tried[c], MIN_ACCEPTANCE) if tried[c] else 0.5
                n_chunks = int(np.ceil((config.n_per_class - rows) / rate / size))
                first = len(done[c])
                tasks += [(config, features_config, c, first + k, size) for k in range(n_chunks)]
            if not tasks:
                break
            for c, chunk, features, n_accepted in pool.imap_unordered(_chunk, tasks):
                done[c][chunk] = features
                tried[c] += size
                accepted[c] += n_accepted
    parts = []
    for c in wanted:
        frame = pd.concat([done[c][k] for k in sorted(done[c])], ignore_index=True)
        parts.append(frame.sort_values("key", kind="stable").head(config.n_per_class))
    return pd.concat(parts, ignore_index=True).drop(columns="key")


class _Serial:
    """A one-process stand-in for ``multiprocessing.Pool`` (no worker start-up for small sets)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def imap_unordered(func, tasks):
        return map(func, tasks)
