"""Fine-tuning on real stamps (issue 19), CI-sized: grouped folds, loss weights, temperature, the same
seed giving the same out-of-fold predictions, and the training job's ``--real`` mode end to end."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import torch

from jobs.train_stamp_classifier import DEFAULT_BASE
from jobs.train_stamp_classifier import main as train_main
from lenga.scores import fit_temperature, softmax
from lenga.stamps import CLASSES
from lenga.stamps.dataset import build_stamp_set
from lenga.stamps.inference import StampClassifier
from lenga.stamps.realset import LABEL, read_stamp_set
from lenga.stamps.realtrain import (
    FineTuneSettings,
    cross_validate,
    grouped_folds,
    mixture,
    real_stamp_set,
    with_srmag_fill,
)

TINY = FineTuneSettings(seed=2, epochs=2, batch_size=32, threads=1)


def test_grouped_folds_keep_each_object_in_one_fold():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(60), 2)
    labels = np.repeat(rng.integers(0, 3, 60), 2)
    fold = grouped_folds(groups, labels, 4, seed=1)
    assert set(fold) == {0, 1, 2, 3}
    for g in range(60):
        assert len(set(fold[groups == g])) == 1
    for k in range(3):  # stratified: every class in every fold
        assert set(fold[labels == k]) == {0, 1, 2, 3}


def test_mixture_weighs_each_part_and_class_equally():
    sim = build_stamp_set("ztf", 4, seed=31)
    real = build_stamp_set("ztf", 2, seed=32)
    real.labels[:] = [0, 0, 0, 0, 0, 0, 0, 2, 2, 2]  # an unbalanced "real" part with two classes
    data, weights = mixture(sim, real, real_share=0.3)
    assert len(data) == len(sim) + len(real) and weights.sum() == pytest.approx(1.0)
    real_weights = weights[len(sim):]
    assert real_weights.sum() == pytest.approx(0.3)
    assert real_weights[real.labels == 0].sum() == pytest.approx(real_weights[real.labels == 2].sum())


def test_temperature_undoes_an_overconfident_scale():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2, (4000, 5))
    truth = np.array([rng.choice(5, p=p) for p in softmax(logits)])
    assert fit_temperature(3.0 * logits, truth) == pytest.approx(3.0, rel=0.1)


@pytest.fixture(scope="module")
def tiny_real(shared_data):
    rows = read_stamp_set(shared_data / "real")
    labels = np.array(rows.column(LABEL).to_pylist())
    keep = np.concatenate([np.flatnonzero(labels == c)[:8] for c in CLASSES])
    return rows.take(pa.array(keep))


def test_same_seed_same_out_of_fold_predictions(tiny_real):
    sim = with_srmag_fill(build_stamp_set("ztf", 6, seed=33), TINY.seed)
    real = real_stamp_set(tiny_real)
    base = StampClassifier.load(DEFAULT_BASE).model
    fold = grouped_folds(tiny_real.column("objectId").to_pylist(), real.labels, 2, TINY.seed)
    first = cross_validate(base, sim, real, fold, TINY)
    again = cross_validate(base, sim, real, fold, TINY)
    np.testing.assert_array_equal(first, again)
    assert np.isfinite(first).all() and first.shape == (len(real), len(CLASSES))
    other = cross_validate(base, sim, real, fold, FineTuneSettings(**{**TINY.__dict__, "seed": 3}))
    assert not np.array_equal(first, other)
    base_state = StampClassifier.load(DEFAULT_BASE).model.state_dict()
    assert all(torch.equal(t, base_state[k]) for k, t in base.state_dict().items())  # base left untouched


def test_job_fine_tunes_on_real_stamps(shared_data, tmp_path):
    report = train_main(["--n-train", "6", "--n-test", "4", "--seed", "5", "--threads", "1", "--version", "t",
                         "--real", str(shared_data / "real"), "--alerts", str(shared_data / "ztf"),
                         "--folds", "2", "--epochs", "1", "--out", str(tmp_path)])
    cv = report["real_cv"]
    assert cv["n_stamp_rows"] >= 390 and cv["alerts_bogus"]["n"] > 0 and cv["n_rows"] > cv["n_stamp_rows"]
    assert set(cv["calibrated"]["balanced_over"]) == {"AGN", "SN", "VS", "asteroid"}
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["temperature"] == pytest.approx(cv["temperature"]) and meta["version"] == "t"
    assert StampClassifier.load(tmp_path).temperature == pytest.approx(cv["temperature"])
    card = (tmp_path / "README.md").read_text()
    assert "--real ../shared/data/real" in card and "cross-validation" in card
