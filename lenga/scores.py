"""Scores of a classifier on a labelled set, as brokers report them on the real sky, and the
temperature scaling that calibrates its probabilities.

Real labelled sets are very unbalanced (a thousand SNe Ia beside a handful of CVs), so the headline
figure is the **balanced recall**: the mean of the per-class recalls over the classes with at least
``min_n`` examples (ALeRCE's "macro recall", Sánchez-Sáez et al. 2021; classes with fewer examples
are listed but not averaged, their recall being noise). Probabilities are judged by the **expected
calibration error** (Guo et al. 2017, ICML): the top probability of each prediction is binned, and
the gap between each bin's mean probability and its accuracy is averaged, weighted by the bin's size.
**Temperature scaling** (same paper) divides a classifier's logits (or log-probabilities) by one
number fitted on held-out labelled predictions: rankings are kept, only the confidence moves.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

#: Classes with fewer examples than this are reported but left out of the balanced recall.
MIN_CLASS_SIZE = 5
#: Equal-width probability bins of the expected calibration error.
CALIBRATION_BINS = 10
#: Temperatures are searched within this range.
TEMPERATURE_RANGE = (0.05, 20.0)


def class_report(true, predicted, classes, min_n: int = MIN_CLASS_SIZE) -> dict:
    """``per_class.<class>.{n, recall, precision}`` for every class with examples or predictions, and
    ``balanced_recall`` over the classes with ``n >= min_n`` (None when there is none)."""
    true, predicted = np.asarray(true, dtype=object), np.asarray(predicted, dtype=object)
    per_class = {}
    for name in classes:
        actual, called = true == name, predicted == name
        n, n_called = int(actual.sum()), int(called.sum())
        if n == 0 and n_called == 0:
            continue
        hits = int((actual & called).sum())
        per_class[name] = {"n": n, "recall": hits / n if n else None,
                           "precision": hits / n_called if n_called else None}
    counted = [v["recall"] for v in per_class.values() if v["n"] >= min_n]
    return {"n": int(len(true)), "per_class": per_class, "min_class_size": min_n,
            "balanced_recall": float(np.mean(counted)) if counted else None}


def calibration(probability, correct, bins: int = CALIBRATION_BINS) -> dict:
    """Expected calibration error of the top probabilities ``probability`` (one per prediction, with
    ``correct`` True where that prediction was right), and the reliability diagram's bins
    (``mean_probability``, ``accuracy``, ``n``; empty bins are left out)."""
    probability, correct = np.asarray(probability, dtype=float), np.asarray(correct, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(probability, edges[1:-1]), 0, bins - 1)
    rows, error = [], 0.0
    for b in range(bins):
        inside = index == b
        if not inside.any():
            continue
        mean_p, accuracy = float(probability[inside].mean()), float(correct[inside].mean())
        error += inside.sum() / max(len(probability), 1) * abs(mean_p - accuracy)
        rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "mean_probability": mean_p,
                     "accuracy": accuracy, "n": int(inside.sum())})
    return {"ece": float(error) if len(probability) else None, "bins": rows}


def softmax(values: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``values / temperature`` (logits, or log-probabilities to re-temper them)."""
    scaled = np.asarray(values, dtype=np.float64) / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def negative_log_likelihood(values: np.ndarray, truth: np.ndarray, temperature: float) -> float:
    """Mean -log of ``softmax(values / temperature)`` at the true classes (indices)."""
    p = softmax(values, temperature)
    return float(-np.log(np.clip(p[np.arange(len(truth)), truth], 1e-12, None)).mean())


def fit_temperature(values: np.ndarray, truth: np.ndarray) -> float:
    """The temperature in :data:`TEMPERATURE_RANGE` minimising :func:`negative_log_likelihood`
    (1 when there is nothing to fit on)."""
    if len(truth) == 0:
        return 1.0
    lo, hi = np.log(TEMPERATURE_RANGE)
    result = minimize_scalar(lambda log_t: negative_log_likelihood(values, truth, float(np.exp(log_t))),
                             bounds=(lo, hi), method="bounded")
    return float(np.exp(result.x))
