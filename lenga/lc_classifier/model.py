"""Hierarchical light-curve classifier: ALeRCE's two-level scheme with gradient-boosted trees.

Sánchez-Sáez et al. (2021, AJ 161, 141, sec. 4) classify in two levels: a top model separates
Periodic / Stochastic / Transient, one model per branch separates that branch's leaf classes, and
the leaf probability is ``P(leaf) = P(branch) x P(leaf | branch)``, so the leaf probabilities of an
object sum to one and agree with the top level. They use balanced random forests; lenga uses xgboost
(histogram trees) with the same class balancing: every training object is weighted by the inverse of
its class's frequency within the model being trained (Chen et al. 2004, weighted RF; xgboost
``sample_weight``), so rare classes count as much as frequent ones.

Models are saved in xgboost's own UBJSON format (``<model>.ubj``, portable across xgboost versions,
no pickle) next to ``metadata.json`` (feature list, classes, versions). Inference uses
``Booster.inplace_predict`` on a float32 matrix: no DMatrix copy, and trees evaluated in C++.
"""

from __future__ import annotations

import json
import multiprocessing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb

from lenga.scores import softmax
from lenga.taxonomy import ALERCE_CLASSES

#: Top-level classes and, per branch, its leaf classes (ALeRCE taxonomy).
TOP_CLASSES = tuple(ALERCE_CLASSES)
LEAF_CLASSES = tuple(c for leaves in ALERCE_CLASSES.values() for c in leaves)
BRANCH_OF = {leaf: branch for branch, leaves in ALERCE_CLASSES.items() for leaf in leaves}
METADATA_FILE = "metadata.json"
TOP_MODEL = "top"
#: Feature-table columns that are not features: keys, bookkeeping, and what depends on how long
#: lenga has watched an object rather than on the object (detection counts), or on the alert context
#: that simulated curves lack (the model must see in the stream what it saw in training).
NON_FEATURE_PREFIXES = ("n_det_",)
#: Optional column of a training frame: an object's weight relative to the others of its class.
SAMPLE_WEIGHT = "sample_weight"
NON_FEATURE_COLUMNS = frozenset({"survey", "objectId", "feature_version", "night", "lastmjd", "ndet", "hpx",
                                 "last_batch_id", "class_name", "sgscore1", "distpsnr1", "sgscore2", "distpsnr2",
                                 "srmag1", "extendedness", SAMPLE_WEIGHT})
#: ``metadata.json`` key of the probability temperatures (:meth:`HierarchicalClassifier.predict_proba`).
TEMPERATURES = "temperatures"


@dataclass(frozen=True)
class XGBSettings:
    """xgboost hyper-parameters (shared by the four models). ``nthread`` and ``seed`` make training
    reproducible: histogram construction and the row subsampling are deterministic given both."""

    n_estimators: int = 300
    max_depth: int = 6
    learning_rate: float = 0.1
    subsample: float = 0.8
    colsample_bytree: float = 0.5
    min_child_weight: float = 1.0
    # 1 thread per model: on this shared 2-core machine libgomp's spinning threads made nthread=2 13x
    # slower in wall time (95 s vs 7.4 s for 20 rounds, load average 15); train.py runs the four
    # models in parallel processes instead.
    nthread: int = 1
    seed: int = 0

    def params(self, n_classes: int) -> dict:
        return {"objective": "multi:softprob", "num_class": n_classes, "tree_method": "hist",
                "max_depth": self.max_depth, "eta": self.learning_rate, "subsample": self.subsample,
                "colsample_bytree": self.colsample_bytree, "min_child_weight": self.min_child_weight,
                "nthread": self.nthread, "seed": self.seed, "eval_metric": "mlogloss"}


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The model's input columns among a features frame's columns (numeric, not bookkeeping)."""
    return [c for c in frame.columns if c not in NON_FEATURE_COLUMNS and not c.startswith(NON_FEATURE_PREFIXES)
            and pd.api.types.is_numeric_dtype(frame[c])]


#: Largest float32: features beyond it (and +-inf, e.g. a ratio over a zero) are clipped to it, so the
#: trees still see "very large" instead of a value xgboost refuses.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def as_matrix(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The float32 model input: ``columns`` of ``frame``, NaN kept (missing), +-inf and overflows clipped."""
    x = frame[columns].to_numpy(dtype=np.float64)
    return np.clip(x, -FLOAT32_MAX, FLOAT32_MAX).astype(np.float32)


def balanced_weights(labels: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Per-object weights under which every class carries the same total weight (the mean weight is
    1); inside a class, objects keep the relative ``weights`` given (default: all equal, n / (k n_class))."""
    weights = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)
    classes, inverse = np.unique(labels, return_inverse=True)
    class_totals = np.bincount(inverse, weights=weights)
    return weights * len(labels) / (len(classes) * class_totals[inverse])


def _train_booster(x: np.ndarray, labels: np.ndarray, weights: np.ndarray, classes: tuple[str, ...],
                   settings: XGBSettings) -> xgb.Booster:
    codes = np.array([classes.index(c) for c in labels])
    matrix = xgb.DMatrix(x, label=codes, weight=balanced_weights(labels, weights), missing=np.nan)
    return xgb.train(settings.params(len(classes)), matrix, num_boost_round=settings.n_estimators)


def _train_raw(args: tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...], XGBSettings]) -> bytes:
    return bytes(_train_booster(*args).save_raw("ubj"))


def log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """log of the boosters' probabilities (floored at 1e-12), the logits temperature scaling divides."""
    return np.log(np.clip(probabilities, 1e-12, 1.0))


def tempered(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities with their log-probabilities divided by ``temperature`` (Guo et al. 2017,
    temperature scaling): > 1 softens over-confident predictions, 1 changes nothing; the ranking is kept."""
    if temperature == 1.0:
        return probabilities
    return softmax(log_probabilities(probabilities), temperature)


def _predict(booster: xgb.Booster, x: np.ndarray) -> np.ndarray:
    return np.asarray(booster.inplace_predict(x, missing=np.nan)).reshape(len(x), -1)


@dataclass
class HierarchicalClassifier:
    """The top model and one model per branch, with the feature columns they were trained on."""

    features: list[str]
    top: xgb.Booster
    branches: dict[str, xgb.Booster]
    metadata: dict = field(default_factory=dict)

    @classmethod
    def fit(cls, frame: pd.DataFrame, settings: XGBSettings, metadata: dict | None = None,
            processes: int = 1) -> HierarchicalClassifier:
        """Train on a features frame with a ``class_name`` column of leaf classes (and optionally
        :data:`SAMPLE_WEIGHT`, each object's weight relative to the others of its class).

        The four models are independent: with ``processes`` > 1 they train in that many worker
        processes (each with ``settings.nthread`` threads), which gives the same boosters.
        """
        unknown = sorted(set(frame["class_name"]) - set(LEAF_CLASSES))
        if unknown:
            raise ValueError(f"unknown leaf classes {unknown}; expected {LEAF_CLASSES}")
        features = feature_columns(frame)
        x = as_matrix(frame, features)
        leaf = frame["class_name"].to_numpy()
        branch = np.array([BRANCH_OF[c] for c in leaf])
        weights = frame[SAMPLE_WEIGHT].to_numpy(dtype=np.float64) if SAMPLE_WEIGHT in frame else np.ones(len(frame))
        tasks = [(x, branch, weights, TOP_CLASSES, settings)]
        tasks += [(x[branch == b], leaf[branch == b], weights[branch == b], ALERCE_CLASSES[b], settings)
                  for b in TOP_CLASSES]
        if processes > 1:
            # spawn, not fork: children forked from a process whose OpenMP pool is running hang
            with multiprocessing.get_context("spawn").Pool(processes) as pool:
                raw = pool.map(_train_raw, tasks)
        else:
            raw = [_train_raw(task) for task in tasks]
        metadata = {**(metadata or {}), "features": features}
        return cls.from_bytes(dict(zip((TOP_MODEL, *TOP_CLASSES), raw, strict=True)), metadata, settings.nthread)

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The float32 input matrix of ``frame`` in training column order (missing columns: error)."""
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise ValueError(f"features frame lacks {len(missing)} model input column(s), e.g. {missing[:5]}; "
                             f"was it computed with feature version {self.metadata.get('feature_version')}?")
        return as_matrix(frame, self.features)

    def predict_parts(self, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The boosters' own probabilities: top level (n, 3), and per branch P(leaf | branch)."""
        return _predict(self.top, x), {b: _predict(self.branches[b], x) for b in TOP_CLASSES}

    def predict_proba(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(top, leaf) probabilities: (n, 3) in TOP_CLASSES order and (n, 15) in LEAF_CLASSES order,
        ``P(leaf) = P(branch) P(leaf | branch)``, each level calibrated by its temperature
        (``metadata["temperatures"]``: ``top`` and ``branch``, fitted on real data by
        :mod:`lenga.lc_classifier.train`; 1 when absent)."""
        temperature = self.metadata.get(TEMPERATURES, {})
        top, branches = self.predict_parts(x)
        top = tempered(top, temperature.get("top", 1.0))
        leaf = np.concatenate([top[:, [k]] * tempered(branches[b], temperature.get("branch", 1.0))
                               for k, b in enumerate(TOP_CLASSES)], axis=1)
        return top, leaf

    def save(self, directory: str | Path) -> None:
        """``top.ubj``, ``<branch>.ubj`` and ``metadata.json`` in ``directory``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.top.save_model(out / f"{TOP_MODEL}.ubj")
        for name, booster in self.branches.items():
            booster.save_model(out / f"{name}.ubj")
        meta = {**self.metadata, "features": self.features, "top_classes": list(TOP_CLASSES),
                "leaf_classes": {b: list(ALERCE_CLASSES[b]) for b in TOP_CLASSES}}
        (out / METADATA_FILE).write_text(json.dumps(meta, indent=1) + "\n")

    @classmethod
    def load(cls, directory: str | Path, nthread: int = 1) -> HierarchicalClassifier:
        """Read a saved model; ``nthread`` threads per prediction (1 in a Spark task)."""
        root = Path(directory)
        path = root / METADATA_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no light-curve classifier in {root} ({METADATA_FILE} missing); "
                                    "train one with ./spark-submit.sh train_lc_classifier")
        meta = json.loads(path.read_text())
        if meta["top_classes"] != list(TOP_CLASSES):
            raise ValueError(f"{root}: model classes {meta['top_classes']} differ from {list(TOP_CLASSES)}")
        return cls.from_bytes({name: (root / f"{name}.ubj").read_bytes() for name in (TOP_MODEL, *TOP_CLASSES)},
                              meta, nthread)

    def to_bytes(self) -> dict[str, bytes]:
        """Every booster as UBJSON bytes (what the stream broadcasts to its executors)."""
        return {TOP_MODEL: bytes(self.top.save_raw("ubj")),
                **{b: bytes(m.save_raw("ubj")) for b, m in self.branches.items()}}

    @classmethod
    def from_bytes(cls, raw: dict[str, bytes], metadata: dict, nthread: int = 1) -> HierarchicalClassifier:
        def booster(name: str) -> xgb.Booster:
            model = xgb.Booster(params={"nthread": nthread})
            model.load_model(bytearray(raw[name]))
            return model

        return cls(list(metadata["features"]), booster(TOP_MODEL), {b: booster(b) for b in TOP_CLASSES},
                   dict(metadata))
