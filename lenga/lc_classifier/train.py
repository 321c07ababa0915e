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

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from lenga.features import FEATURE_VERSION, FeatureConfig
from lenga.lc_classifier.evaluate import evaluate, plot_confusion
from lenga.lc_classifier.model import (
    LEAF_CLASSES,
    TOP_CLASSES,
    HierarchicalClassifier,
    as_matrix,
    feature_columns,
)
from lenga.lc_classifier.settings import LCClassifierSettings, TrainingSetConfig
from lenga.lc_classifier.trainingset import build

#: Version of the classifier (model code + training recipe); stored with every classification.
CLASSIFIER_VERSION = "1.1.0"
#: What each classifier version changed, with its held-out scores (the model card lists them).
HISTORY = {
    "1.0.0": "features 1.2.0, 2,000 objects per class: top macro F1 0.963, leaf 0.843, lowest leaf recall "
             "AGN 0.52",
    "1.1.0": "features 1.3.0 (positive_fraction, the sign of the difference flux: stochastic variables are "
             "detected on both sides of their reference image, supernovae never), 4,000 objects per class",
}
REPORT_FILE = "report.json"
CARD_FILE = "README.md"


def labelled_set(config: TrainingSetConfig, features_config: FeatureConfig, processes: int,
                 cache_dir: str | Path | None, log: Callable[[str], None]) -> pd.DataFrame:
    """The simulated feature set of ``config``, from the cache when present."""
    name = f"seed{config.seed}_n{config.n_per_class}_features{FEATURE_VERSION}.parquet"
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
    """Simulate, fit, evaluate and write everything to ``out_dir``; returns the report."""
    t = settings.training
    bands = tuple(settings.detection_bands)
    train_config = t.training_set(settings.min_detections, bands)
    test_config = t.training_set(settings.min_detections, bands, held_out=True)
    train_set = labelled_set(train_config, features_config, t.processes, cache_dir, log)
    test_set = labelled_set(test_config, features_config, t.processes, cache_dir, log)
    started = time.perf_counter()
    metadata = {"classifier_version": CLASSIFIER_VERSION, "feature_version": FEATURE_VERSION,
                "min_detections": settings.min_detections, "detection_bands": list(bands),
                "training": {"n_per_class": t.n_per_class, "seed": t.seed, "baseline_days": list(t.baseline_days),
                             "survey_mix": t.survey_mix, "n_objects": len(train_set),
                             "per_survey": train_set["survey"].value_counts().to_dict()},
                "xgboost": asdict(t.xgboost), "command": command,
                "feature_ranges": feature_ranges(train_set)}
    model = HierarchicalClassifier.fit(train_set, t.xgboost, metadata, processes=t.processes)
    fit_s = time.perf_counter() - started
    log(f"fitted 4 models on {len(train_set):,} objects x {len(model.features)} features in {fit_s:.0f} s")
    report, matrices = evaluate(model, test_set)
    report = {"classifier_version": CLASSIFIER_VERSION, "feature_version": FEATURE_VERSION,
              "held_out": {"seed": t.test_seed, "n_per_class": t.test_per_class,
                           "per_survey": test_set["survey"].value_counts().to_dict()},
              "fit_seconds": round(fit_s, 1), **report}
    out = Path(out_dir)
    model.save(out)
    (out / REPORT_FILE).write_text(json.dumps(report, indent=1) + "\n")
    plot_confusion(matrices["top"], TOP_CLASSES, f"top level, held-out seed {t.test_seed}: macro F1 "
                   f"{report['top']['macro_f1']:.3f}", out / "confusion_top.png")
    plot_confusion(matrices["leaf"], LEAF_CLASSES, f"leaf level, held-out seed {t.test_seed}: macro F1 "
                   f"{report['leaf']['macro_f1']:.3f}", out / "confusion_leaf.png")
    (out / CARD_FILE).write_text(model_card(model.metadata, report))
    return report


def model_card(metadata: dict, report: dict) -> str:
    """The model card (Mitchell et al. 2019 headings, trimmed): what, data, how trained, metrics, limits."""
    t = metadata["training"]
    rows = "\n".join(f"| {c} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
                     for c, v in report["leaf"]["per_class"].items())
    top_rows = "\n".join(f"| {c} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
                         for c, v in report["top"]["per_class"].items())
    x = metadata["xgboost"]
    history = "\n".join(f"- {version}: {text}" for version, text in HISTORY.items())
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
Simulated only (`lenga.sim`: the 15 class models of `lenga/sim/classes/`, observed through the ZTF and
LSST survey models with seasons, weather, depths and 5-sigma detection; curves shaped as the
aggregation stores them; features by `lenga.features` {metadata['feature_version']}, the stream's code).
{t['n_per_class']:,} classifiable objects per class, {t['n_objects']:,} in all (per survey:
{t['per_survey']}), seed {t['seed']}, baselines {t['baseline_days'][0]:.0f}-{t['baseline_days'][1]:.0f} days,
survey mix {t['survey_mix']}. Class balancing: inverse class-frequency sample weights in every model.
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

## Versions
{history}

## Limitations
- Trained on simulations: real light curves differ (systematics, class-specific physics the models
  simplify, the real mix of classes and of light-curve lengths). `python -m lenga.bench.reports.lc_classifier`
  compares feature ranges of real alerts with the training set's. Scores on real labelled data (as
  ALeRCE's 0.96/0.99 top and 0.57/0.76 leaf precision/recall) are not measured here.
- No alert context (star/galaxy score, distance to the nearest source), no cross-match colours: QSO/AGN
  caught only during one bright excursion (all detections above the reference, short histories) pass
  for transients, dipping YSOs for periodic stars (the main top-level errors), and QSO vs AGN rests
  on time scales and amplitudes alone.
- Balanced training: probabilities assume equal class priors, not the stream's class mix.
"""
