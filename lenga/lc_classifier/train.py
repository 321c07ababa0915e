"""Train, evaluate and write the light-curve classifier (``./spark-submit.sh train_lc_classifier``).

1. simulate the training set (``training.seed``) and a held-out set from another seed
   (``training.test_seed``: other objects, other weather), features computed by the stream's code;
2. fit the hierarchical model (:mod:`lenga.lc_classifier.model`) with class balancing;
3. write to the model directory: the boosters (UBJSON) and ``metadata.json``, ``report.json``
   (held-out scores of both levels), ``confusion_top.png`` / ``confusion_leaf.png`` and the model card
   ``README.md`` (data, seed, command, feature version, metrics).

Simulated sets can be cached as Parquet (``cache_dir``), named by seed, size and feature version, so
re-training with other xgboost settings does not re-simulate; delete the cache after changing the
simulator.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from lenga.features import FEATURE_VERSION, FeatureConfig
from lenga.lc_classifier.calibration import fit_temperatures
from lenga.lc_classifier.domain import class_distances
from lenga.lc_classifier.evaluate import evaluate, plot_confusion, plot_reliability
from lenga.lc_classifier.inference import eligible, outside_fraction
from lenga.lc_classifier.model import (
    BRANCH_OF,
    LEAF_CLASSES,
    SAMPLE_WEIGHT,
    TEMPERATURES,
    TOP_CLASSES,
    HierarchicalClassifier,
    as_matrix,
    feature_columns,
    tempered,
)
from lenga.lc_classifier.realset import RealSetError, labelled_features, read_labels, read_lightcurves
from lenga.lc_classifier.settings import LCClassifierSettings, TrainingSetConfig
from lenga.lc_classifier.trainingset import build
from lenga.scores import calibration, class_report
from lenga.taxonomy import ALERCE_CLASSES

#: Version of the classifier (model code + training recipe); stored with every classification.
CLASSIFIER_VERSION = "1.2.0"
#: What each classifier version changed, with its held-out scores (the model card lists them).
HISTORY = {
    "1.0.0": "features 1.2.0, 2,000 objects per class: top macro F1 0.963, leaf 0.843, lowest leaf recall "
             "AGN 0.52",
    "1.1.0": "features 1.3.0 (positive_fraction, the sign of the difference flux: stochastic variables are "
             "detected on both sides of their reference image, supernovae never), 4,000 objects per class",
    "1.2.0": "the real sky: labelled real ZTF objects trained on beside the simulator (cross-validated), half "
             "of the simulated objects seen through one alert's 30-day history as most real variables are, "
             "probabilities calibrated by temperature on real objects",
}
REPORT_FILE = "report.json"
CARD_FILE = "README.md"


def labelled_set(config: TrainingSetConfig, features_config: FeatureConfig, processes: int,
                 cache_dir: str | Path | None, log: Callable[[str], None]) -> pd.DataFrame:
    """The simulated feature set of ``config``, from the cache when present."""
    recipe = hashlib.sha1(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:8]
    name = f"seed{config.seed}_n{config.n_per_class}_features{FEATURE_VERSION}_{recipe}.parquet"
    path = Path(cache_dir) / name if cache_dir else None
    if path is not None and path.is_file():
        log(f"reading the cached set {path}")
        return pd.read_parquet(path)
    started = time.perf_counter()
    frame = build(config, features_config, processes)
    log(f"simulated {len(frame):,} objects (seed {config.seed}) in {time.perf_counter() - started:.0f} s")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path)
    return frame


def real_objects(settings: LCClassifierSettings, features_config: FeatureConfig) -> pd.DataFrame:
    """The labelled real objects the stream would classify (features + ``class_name``), from
    ``training.real_dir``; an empty frame when it is None."""
    path = settings.training.real_path
    if path is None:
        return pd.DataFrame()
    if not path.is_dir():
        raise RealSetError(f"labelled real set {path} not found: pass --real DIR, or "
                           f"--set lc_classifier.training.real_dir=null to train on the simulator only")
    frame = labelled_features(read_labels(path), read_lightcurves(path), features_config)
    if frame.empty:
        return frame
    keep = eligible(frame, settings.min_detections, tuple(settings.detection_bands))
    return frame[keep].reset_index(drop=True)


def real_folds(labels: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Object-grouped folds (one row per object) stratified by class; classes with fewer objects
    than folds are stratified together."""
    from sklearn.model_selection import StratifiedKFold

    counts = pd.Series(labels).value_counts()
    strata = np.where(pd.Series(labels).map(counts).to_numpy() >= n_folds, labels, "rare")
    return list(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(labels, strata))


def with_real(sim: pd.DataFrame, real: pd.DataFrame, weight: float, max_share: float = 1.0) -> pd.DataFrame:
    """The simulated and real training objects in one frame; each real object weighs ``weight`` times
    the simulated objects of its class (so its influence does not depend on the simulated set's size),
    scaled down where a class's real objects would carry more than ``max_share`` of its weight."""
    per_class = sim["class_name"].value_counts()
    sim_total = real["class_name"].map(per_class).fillna(1.0).to_numpy(dtype=np.float64)
    real_weights = weight * sim_total
    real_total = pd.Series(real_weights).groupby(real["class_name"].to_numpy()).transform("sum").to_numpy()
    cap = max_share / (1.0 - max_share) * sim_total if max_share < 1.0 else np.inf
    real_weights *= np.minimum(1.0, cap / real_total)
    return pd.concat([sim.assign(**{SAMPLE_WEIGHT: 1.0}), real.assign(**{SAMPLE_WEIGHT: real_weights})],
                     ignore_index=True, join="inner")


def cross_validated(sim: pd.DataFrame, real: pd.DataFrame, settings: LCClassifierSettings,
                    log: Callable[[str], None]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Out-of-fold booster outputs on every real object (top probabilities, and per branch
    P(leaf | branch)): each fold's objects are predicted by a model trained on the simulator and
    the other folds."""
    t = settings.training
    top = np.zeros((len(real), len(TOP_CLASSES)))
    branches = {b: np.zeros((len(real), len(ALERCE_CLASSES[b]))) for b in TOP_CLASSES}
    for k, (train_rows, test_rows) in enumerate(real_folds(real["class_name"].to_numpy(), t.real_folds,
                                                           t.xgboost.seed)):
        started = time.perf_counter()
        model = HierarchicalClassifier.fit(with_real(sim, real.iloc[train_rows], t.real_weight, t.real_max_share),
                                           t.xgboost,
                                           processes=t.processes)
        fold_top, fold_branches = model.predict_parts(model.matrix(real.iloc[test_rows]))
        top[test_rows] = fold_top
        for b in TOP_CLASSES:
            branches[b][test_rows] = fold_branches[b]
        log(f"real fold {k + 1}/{t.real_folds}: {len(test_rows)} objects, {time.perf_counter() - started:.0f} s")
    return top, branches


def real_report(real: pd.DataFrame, top: np.ndarray, branches: dict[str, np.ndarray],
                temperatures: dict[str, float]) -> tuple[dict, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Scores of out-of-fold predictions on the real objects: per level the class report
    (:func:`lenga.scores.class_report`) and the calibration before and after the temperatures; and
    per level the (true, predicted) classes for the confusion matrices."""
    leaf_truth = real["class_name"].to_numpy(dtype=object)
    truth = {"top": np.array([BRANCH_OF[c] for c in leaf_truth], dtype=object), "leaf": leaf_truth}
    raw, calibrated = {}, {}
    for name, temperature in (("raw", {"top": 1.0, "branch": 1.0}), ("calibrated", temperatures)):
        scaled_top = tempered(top, temperature["top"])
        leaf = np.concatenate([scaled_top[:, [k]] * tempered(branches[b], temperature["branch"])
                               for k, b in enumerate(TOP_CLASSES)], axis=1)
        (raw if name == "raw" else calibrated).update(top=scaled_top, leaf=leaf)
    report, pairs = {"n_objects": len(real), "folds_note": "object-grouped, stratified; out-of-fold predictions"}, {}
    for level, classes in (("top", TOP_CLASSES), ("leaf", LEAF_CLASSES)):
        predicted = np.asarray(classes, dtype=object)[calibrated[level].argmax(axis=1)]
        correct = predicted == truth[level]
        report[level] = {**class_report(truth[level], predicted, classes),
                         "calibration_raw": calibration(raw[level].max(axis=1), correct),
                         "calibration": calibration(calibrated[level].max(axis=1), correct)}
        pairs[level] = (truth[level], predicted)
    return report, pairs


def feature_ranges(frame: pd.DataFrame) -> dict[str, list[float]]:
    """1st, 50th and 99th percentiles of every model feature's finite values (the domain-shift check
    of lenga.bench.reports.lc_classifier compares real features with them)."""
    x = as_matrix(frame, feature_columns(frame)).astype(np.float64)
    x[~np.isfinite(x)] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (a band no survey has)
        q = np.nanpercentile(x, [1, 50, 99], axis=0)
    return {name: [float(v) for v in q[:, k]] for k, name in enumerate(feature_columns(frame))
            if np.isfinite(q[:, k]).all()}


def train(settings: LCClassifierSettings, features_config: FeatureConfig, out_dir: str | Path, command: str,
          cache_dir: str | Path | None = None, log: Callable[[str], None] = print) -> dict:
    """Simulate, read the real set, cross-validate on it, fit, evaluate and write everything to
    ``out_dir``; returns the report."""
    t = settings.training
    bands = tuple(settings.detection_bands)
    train_config = t.training_set(settings.min_detections, bands)
    test_config = t.training_set(settings.min_detections, bands, held_out=True)
    train_set = labelled_set(train_config, features_config, t.processes, cache_dir, log)
    test_set = labelled_set(test_config, features_config, t.processes, cache_dir, log)
    real = real_objects(settings, features_config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    temperatures, real_scores = {"top": 1.0, "branch": 1.0}, None
    if len(real):
        log(f"{len(real):,} labelled real objects from {t.real_path} "
            f"({real['class_name'].value_counts().to_dict()}); {t.real_folds}-fold cross-validation")
        top, branches = cross_validated(train_set, real, settings, log)
        temperatures = fit_temperatures(top, branches, real["class_name"].to_numpy(dtype=object))
        real_scores, pairs = real_report(real, top, branches, temperatures)
        real_scores["domain"] = real_domain(real, train_set, test_set)
        write_real_figures(real_scores, pairs, out)
    started = time.perf_counter()
    metadata = {"classifier_version": CLASSIFIER_VERSION, "feature_version": FEATURE_VERSION,
                "min_detections": settings.min_detections, "detection_bands": list(bands),
                "training": {"n_per_class": t.n_per_class, "seed": t.seed, "baseline_days": list(t.baseline_days),
                             "single_alert_fraction": t.single_alert_fraction,
                             "survey_mix": t.survey_mix, "n_objects": len(train_set),
                             "per_survey": train_set["survey"].value_counts().to_dict(),
                             "real_dir": t.real_dir, "real_objects": len(real), "real_weight": t.real_weight,
                             "real_max_share": t.real_max_share,
                             "real_folds": t.real_folds,
                             "real_classes": real["class_name"].value_counts().to_dict() if len(real) else {}},
                "xgboost": asdict(t.xgboost), "command": command, TEMPERATURES: temperatures,
                "feature_ranges": feature_ranges(train_set)}
    fit_frame = with_real(train_set, real, t.real_weight, t.real_max_share) if len(real) else train_set
    model = HierarchicalClassifier.fit(fit_frame, t.xgboost, metadata, processes=t.processes)
    fit_s = time.perf_counter() - started
    log(f"fitted 4 models on {len(fit_frame):,} objects x {len(model.features)} features in {fit_s:.0f} s")
    report, matrices = evaluate(model, test_set)
    report = {"classifier_version": CLASSIFIER_VERSION, "feature_version": FEATURE_VERSION,
              "held_out": {"seed": t.test_seed, "n_per_class": t.test_per_class,
                           "per_survey": test_set["survey"].value_counts().to_dict()},
              "fit_seconds": round(fit_s, 1), **report, "real_cross_validated": real_scores}
    model.save(out)
    (out / REPORT_FILE).write_text(json.dumps(report, indent=1) + "\n")
    plot_confusion(matrices["top"], TOP_CLASSES, f"top level, held-out seed {t.test_seed}: macro F1 "
                   f"{report['top']['macro_f1']:.3f}", out / "confusion_top.png")
    plot_confusion(matrices["leaf"], LEAF_CLASSES, f"leaf level, held-out seed {t.test_seed}: macro F1 "
                   f"{report['leaf']['macro_f1']:.3f}", out / "confusion_leaf.png")
    (out / CARD_FILE).write_text(model_card(model.metadata, report))
    return report


def real_domain(real: pd.DataFrame, train_set: pd.DataFrame, whole_curves: pd.DataFrame) -> dict:
    """Distances between the real objects and two simulated sets (:mod:`lenga.lc_classifier.domain`):
    ``whole_curves`` (the held-out recipe: every object's whole curve, as classifier 1.1.0 was trained)
    and the training set (this recipe)."""
    features = feature_columns(train_set)
    result = {}
    for name, sim in (("whole_curves", whole_curves), ("training_set", train_set)):
        result[name] = {"mean_outside_1_99": float(outside_fraction(real, feature_ranges(sim)).mean()),
                        "per_class": class_distances(real, sim, features)}
    return result


def real_card_section(metadata: dict, scores: dict | None) -> str:
    """The model card's real-sky section: out-of-fold scores on the real objects, calibration."""
    if not scores:
        return "\n## Real sky\nNo labelled real set was used (`real_dir` null): real scores not measured.\n"

    def fmt(value):
        return "-" if value is None else f"{value:.3f}"

    parts = []
    for level in ("top", "leaf"):
        part = scores[level]
        rows = "\n".join(f"| {c} | {v['n']} | {fmt(v['recall'])} | {fmt(v['precision'])} |"
                         for c, v in part["per_class"].items())
        parts.append(f"""{level.capitalize()} level: **balanced recall {fmt(part['balanced_recall'])}** (classes
with >= {part['min_class_size']} objects); expected calibration error {fmt(part['calibration_raw']['ece'])}
before the temperature, **{fmt(part['calibration']['ece'])}** after.

| class | n | recall | precision |
|---|---|---|---|
{rows}
""")
    temperatures = metadata.get(TEMPERATURES, {})
    domain = scores.get("domain", {})
    before, after = domain.get("whole_curves", {}), domain.get("training_set", {})
    distance_rows = "\n".join(
        f"| {c} | {v['n_real']} | {v['median_ks']:.3f} | {after['per_class'].get(c, {}).get('median_ks', float('nan')):.3f} | "
        f"{', '.join(after['per_class'].get(c, {}).get('farthest', {}))} |" for c, v in before.get("per_class", {}).items())
    distances = f"""
Distance of the real objects from the simulated ones (`lenga/lc_classifier/domain.py`): median over
features of the two-sample KS statistic per class, for whole simulated curves (the recipe of 1.1.0) and
for this training set; share of real feature values outside the simulated 1-99% range:
{before.get('mean_outside_1_99', float('nan')):.3f} before, {after.get('mean_outside_1_99', float('nan')):.3f} after.

| class | real objects | median KS, whole curves | median KS, training set | farthest features (training set) |
|---|---|---|---|---|
{distance_rows}
""" if before else ""
    return f"""
## Real sky (cross-validated)
{scores['n_objects']} labelled real ZTF objects, {metadata['training'].get('real_folds', 5)} object-grouped folds
stratified by class: each object is predicted by a model trained on the simulator and the other folds
(the shipped model is then trained on all of them). Temperatures fitted on these out-of-fold
predictions: top {temperatures.get('top', 1):.3f}, branch {temperatures.get('branch', 1):.3f}.

{parts[0]}
{parts[1]}
![real top](confusion_real_top.png) ![real leaf](confusion_real_leaf.png) ![reliability](reliability_real.png)
{distances}"""


def write_real_figures(scores: dict, pairs: dict[str, tuple[np.ndarray, np.ndarray]], out: Path) -> None:
    """``confusion_real_{top,leaf}.png`` (out-of-fold, real objects) and ``reliability_real.png``."""
    from sklearn.metrics import confusion_matrix

    for level, classes in (("top", TOP_CLASSES), ("leaf", LEAF_CLASSES)):
        true, predicted = pairs[level]
        matrix = np.nan_to_num(confusion_matrix(true, predicted, labels=list(classes), normalize="true"))
        plot_confusion(matrix, classes, f"{level} level, real objects (cross-validated): balanced recall "
                       f"{scores[level]['balanced_recall']:.3f}", out / f"confusion_real_{level}.png")
    plot_reliability({f"{level}, {kind}": scores[level][key] for level in ("top", "leaf")
                      for kind, key in (("raw", "calibration_raw"), ("calibrated", "calibration"))},
                     "real objects, cross-validated", out / "reliability_real.png")


def model_card(metadata: dict, report: dict) -> str:
    """The model card (Mitchell et al. 2019 headings, trimmed): what, data, how trained, metrics, limits."""
    t = metadata["training"]
    rows = "\n".join(f"| {c} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
                     for c, v in report["leaf"]["per_class"].items())
    top_rows = "\n".join(f"| {c} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
                         for c, v in report["top"]["per_class"].items())
    x = metadata["xgboost"]
    history = "\n".join(f"- {version}: {text}" for version, text in HISTORY.items())
    real_section = real_card_section(metadata, report.get("real_cross_validated"))
    return f"""# lc_classifier {metadata['classifier_version']}: hierarchical light-curve classifier

ALeRCE's light-curve classifier scheme (Sánchez-Sáez et al. 2021, AJ 161, 141) with xgboost: a top
model (Periodic / Stochastic / Transient) and one model per branch; leaf probability
P(leaf) = P(branch) x P(leaf | branch). Written by `jobs/train_lc_classifier.py`; code in
`lenga/lc_classifier/`. Files: `top.ubj`, `Periodic.ubj`, `Stochastic.ubj`, `Transient.ubj`
(xgboost UBJSON), `metadata.json` (feature list, classes, settings), `report.json`,
`confusion_top.png`, `confusion_leaf.png`.

## Intended use
Classify, in lenga's aggregation stream, objects with at least {metadata['min_detections']} detections
in one of {metadata['detection_bands']} (ZTF or LSST). Not for objects with fewer points (they get no
row), nor for features of another version than **{metadata['feature_version']}**.

## Training data
Simulated (`lenga.sim`: the 15 class models of `lenga/sim/classes/`, observed through the ZTF and
LSST survey models with seasons, weather, depths and 5-sigma detection; curves shaped as the
aggregation stores them; features by `lenga.features` {metadata['feature_version']}, the stream's code).
{t['n_per_class']:,} classifiable objects per class, {t['n_objects']:,} in all (per survey:
{t['per_survey']}), seed {t['seed']}, baselines {t['baseline_days'][0]:.0f}-{t['baseline_days'][1]:.0f} days,
{100 * t.get('single_alert_fraction', 0):.0f}% of them seen only through one alert's history (the
detection and the 30 days of `prv_candidates` before it, as most real ZTF variables reach a broker),
survey mix {t['survey_mix']}.
Real: {t.get('real_objects', 0)} labelled ZTF objects of `{t.get('real_dir')}` that the stream would
classify ({t.get('real_classes', {})}), through the same curve and feature code
(`lenga/lc_classifier/realset.py`); each weighs {t.get('real_weight')} times the simulated objects of its class,
the real objects of a class together at most {t.get('real_max_share', 1.0)} of its weight.
Class balancing: inverse class-frequency sample weights in every model.
{len(metadata['features'])} input features (all numeric feature columns except the `n_det_*` counts and
the alert-context columns, which simulated curves do not have).

xgboost {x['n_estimators']} rounds, depth {x['max_depth']}, eta {x['learning_rate']}, subsample
{x['subsample']}, colsample_bytree {x['colsample_bytree']}, seed {x['seed']}, nthread {x['nthread']}.

Command: `{metadata['command']}`

## Held-out evaluation
Another simulated sky (seed {report['held_out']['seed']}, {report['held_out']['n_per_class']} objects per
class; per survey {report['held_out']['per_survey']}).

Top level: macro precision {report['top']['macro_precision']:.3f}, recall {report['top']['macro_recall']:.3f},
**F1 {report['top']['macro_f1']:.3f}**.

| class | precision | recall | F1 | n |
|---|---|---|---|---|
{top_rows}

Leaf level: macro precision {report['leaf']['macro_precision']:.3f}, recall {report['leaf']['macro_recall']:.3f},
**F1 {report['leaf']['macro_f1']:.3f}**.

| class | precision | recall | F1 | n |
|---|---|---|---|---|
{rows}

![top](confusion_top.png) ![leaf](confusion_leaf.png)
{real_section}
## Versions
{history}

## Limitations
- Mostly trained on simulations: the real set is small outside SNe Ia (classes with fewer than
  5 real objects are listed but their recall is noise). `./spark-submit.sh evaluate --real DIR` scores
  any labelled set; `python -m lenga.bench.reports.lc_classifier` compares feature ranges of real
  alerts with the training set's.
- No alert context (star/galaxy score, distance to the nearest source), no cross-match colours: QSO/AGN
  caught only during one bright excursion (all detections above the reference, short histories) pass
  for transients, dipping YSOs for periodic stars (the main top-level errors), and QSO vs AGN rests
  on time scales and amplitudes alone.
- Balanced training: probabilities assume equal class priors, not the stream's class mix.
"""
