"""Class reports and calibration error (lenga.scores) and temperature scaling (lenga.lc_classifier)."""

from __future__ import annotations

import numpy as np
import pytest

from lenga.lc_classifier.calibration import fit_temperatures
from lenga.lc_classifier.model import LEAF_CLASSES, TOP_CLASSES, log_probabilities, tempered
from lenga.scores import calibration, class_report, fit_temperature


def test_class_report_averages_recall_over_classes_with_enough_examples():
    true = ["a"] * 6 + ["b"] * 5 + ["c"] * 2
    predicted = ["a"] * 3 + ["b"] * 3 + ["b"] * 5 + ["a"] * 2
    report = class_report(true, predicted, ("a", "b", "c", "d"))
    assert report["per_class"]["a"] == {"n": 6, "recall": 0.5, "precision": 3 / 5}
    assert report["per_class"]["b"] == {"n": 5, "recall": 1.0, "precision": 5 / 8}
    assert report["per_class"]["c"] == {"n": 2, "recall": 0.0, "precision": None}
    assert "d" not in report["per_class"]
    assert report["balanced_recall"] == pytest.approx(0.75)  # c (2 examples) is not averaged


def test_calibration_error_is_zero_when_confidence_matches_accuracy_and_large_when_not():
    probability = np.full(100, 0.75)
    honest = calibration(probability, np.arange(100) < 75)
    assert honest["ece"] == pytest.approx(0.0)
    (only,) = honest["bins"]
    assert (only["low"], only["high"], only["n"]) == (pytest.approx(0.7), pytest.approx(0.8), 100)
    assert calibration(np.full(100, 0.99), np.arange(100) < 50)["ece"] == pytest.approx(0.49)


def test_temperature_softens_over_confident_probabilities_without_changing_the_ranking():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 2000)
    correct = rng.random(2000) < 0.7
    predicted = np.where(correct, truth, (truth + 1) % 3)
    p = np.full((2000, 3), 0.005)
    p[np.arange(2000), predicted] = 0.99  # 99% confident, 70% right
    t = fit_temperature(log_probabilities(p), truth)
    assert t > 1
    scaled = tempered(p, t)
    assert (scaled.argmax(axis=1) == p.argmax(axis=1)).all()
    before = calibration(p.max(axis=1), correct)["ece"]
    after = calibration(scaled.max(axis=1), correct)["ece"]
    assert after < 0.05 < before


def test_fit_temperatures_gives_one_per_level():
    rng = np.random.default_rng(1)
    labels = np.array(LEAF_CLASSES, dtype=object)[rng.integers(0, len(LEAF_CLASSES), 300)]
    top = rng.dirichlet(np.ones(len(TOP_CLASSES)), 300)
    from lenga.taxonomy import ALERCE_CLASSES

    branches = {b: rng.dirichlet(np.ones(len(ALERCE_CLASSES[b])), 300) for b in TOP_CLASSES}
    temperatures = fit_temperatures(top, branches, labels)
    assert set(temperatures) == {"top", "branch"}
    assert all(0.05 <= t <= 20 for t in temperatures.values())
