"""Teaching the simulation-trained stamp classifier the real sky: fine-tuning, grouped CV, calibration.

The network trained on simulated first detections (version 1.1) called most real variable-star
alerts bogus (issue 19): the simulator has no later, negative-difference detection of a bright
known variable, and its PSFs, hosts and metadata are not the sky's. Here that network is
fine-tuned on a mixture of simulated alerts and real labelled stamps (:mod:`lenga.stamps.realset`):

* every row carries a weight so that the simulated part and the real part each weigh
  ``real_share`` and ``1 - real_share`` of the loss, balanced over the classes within each part
  (the real set is 199 asteroids, 165 VS and a few dozen of the rest);
* images are mirrored at random (quarter turns are already invariances of the network), which
  doubles the handful of real SN and AGN stamps;
* the real set lacks ``srmag1``, so its ``magpsf_minus_srmag1`` is always the fill value: the same
  fill is given to a fraction :data:`SRMAG_FILL_FRACTION` of the simulated rows, so that the fill
  does not mean "real";
* the real data are scored by object-grouped, class-stratified cross-validation
  (:func:`grouped_folds`: no object in two folds): out-of-fold logits give honest real metrics and
  the temperature (:func:`lenga.scores.fit_temperature`, Guo et al. 2017) that calibrates the shipped model.

Everything random derives from the seed, so a run reproduces.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch
from sklearn.model_selection import StratifiedGroupKFold
from torch import nn

from lenga.stamps import CLASSES
from lenga.stamps.dataset import StampSet
from lenga.stamps.features import feature_names, model_inputs
from lenga.stamps.model import StampCNN
from lenga.stamps.realset import LABEL, LABEL_QUALITY
from lenga.stamps.train import TrainResult

#: Share of simulated rows whose ``magpsf_minus_srmag1`` is set to its fill value (see above).
SRMAG_FILL_FRACTION = 0.5
SRMAG_FEATURE = "magpsf_minus_srmag1"


@dataclass(frozen=True)
class FineTuneSettings:
    """Fine-tuning settings (defaults: the shipped model 1.2)."""

    seed: int = 1
    epochs: int = 20
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    real_share: float = 0.5
    threads: int = 1


def real_stamp_set(rows: pa.Table) -> StampSet:
    """Model inputs of labelled real rows (:func:`lenga.stamps.realset.read_stamp_set` layout);
    ``kinds`` is ``real:<label quality>``. Raises ValueError if a cutout cannot be read."""
    inputs = model_inputs(rows, "ztf")
    bad = [(k, r) for k, r in enumerate(inputs.reasons) if r is not None]
    if bad:
        raise ValueError(f"{len(bad)} real stamps cannot be read, e.g. row {bad[0][0]}: {bad[0][1]}")
    labels = np.array([CLASSES.index(c) for c in rows.column(LABEL).to_pylist()], np.int64)
    kinds = np.array([f"real:{q}" for q in rows.column(LABEL_QUALITY).to_pylist()])
    return StampSet("ztf", inputs.images, inputs.features, labels, kinds)


def subset(data: StampSet, index: np.ndarray) -> StampSet:
    return StampSet(data.survey, data.images[index], data.features[index], data.labels[index], data.kinds[index])


def with_srmag_fill(sim: StampSet, seed: int) -> StampSet:
    """``sim`` with ``magpsf_minus_srmag1`` at its fill value on :data:`SRMAG_FILL_FRACTION` of rows."""
    from lenga.stamps.features import ZTF_FEATURES

    column = feature_names("ztf").index(SRMAG_FEATURE)
    fill = next(f.fill for f in ZTF_FEATURES if f.name == SRMAG_FEATURE)
    features = sim.features.copy()
    chosen = np.random.default_rng((seed, column)).random(len(sim)) < SRMAG_FILL_FRACTION
    features[chosen, column] = fill
    return StampSet(sim.survey, sim.images, features, sim.labels, sim.kinds)


def mixture(sim: StampSet, real: StampSet, real_share: float) -> tuple[StampSet, np.ndarray]:
    """Simulated and real rows in one set, with per-row loss weights: each part weighs its share,
    each class present in a part weighs the same within it. Weights sum to 1."""
    parts = []
    for data, share in ((sim, 1.0 - real_share), (real, real_share)):
        counts = np.bincount(data.labels, minlength=len(CLASSES))
        present = int((counts > 0).sum())
        parts.append(share / (present * counts[data.labels]))
    combined = StampSet(sim.survey, np.concatenate([sim.images, real.images]),
                        np.concatenate([sim.features, real.features]),
                        np.concatenate([sim.labels, real.labels]), np.concatenate([sim.kinds, real.kinds]))
    return combined, np.concatenate(parts).astype(np.float32)


def fine_tune(base: StampCNN, data: StampSet, weights: np.ndarray, settings: FineTuneSettings) -> TrainResult:
    """A copy of ``base`` trained ``settings.epochs`` epochs more on ``data`` with per-row loss
    ``weights`` and random mirroring; the standardisation of ``base`` is kept (it is the
    simulated training set's, which the real rows are compared with)."""
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    started, cpu_started = time.perf_counter(), time.process_time()
    model = copy.deepcopy(base)
    images, features = torch.from_numpy(data.images), torch.from_numpy(data.features)
    labels, weight = torch.from_numpy(data.labels), torch.from_numpy(weights)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)
    history = []
    for epoch in range(1, settings.epochs + 1):
        model.train()
        permutation = torch.randperm(len(data), generator=generator)
        flip = torch.rand(len(data), generator=generator) < 0.5
        running = 0.0
        for start in range(0, len(data), settings.batch_size):
            batch = permutation[start : start + settings.batch_size]
            batch_images = torch.where(flip[batch, None, None, None], torch.flip(images[batch], dims=(3,)),
                                       images[batch])
            optimiser.zero_grad()
            losses = nn.functional.cross_entropy(model(batch_images, features[batch]), labels[batch], reduction="none")
            loss = (losses * weight[batch]).sum() / weight[batch].sum()
            loss.backward()
            optimiser.step()
            running += float((losses.detach() * weight[batch]).sum())
        history.append({"epoch": epoch, "train_loss": running / float(weight.sum())})
    model.eval()
    return TrainResult(model, settings.epochs, settings.epochs, history, time.perf_counter() - started,
                       time.process_time() - cpu_started)


def logits(model: StampCNN, data: StampSet, batch_size: int = 1024) -> np.ndarray:
    """Raw network outputs (N, 5) of ``data``."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            sl = slice(start, start + batch_size)
            out.append(model(torch.from_numpy(data.images[sl]), torch.from_numpy(data.features[sl])).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(CLASSES)), np.float32)


def grouped_folds(groups, labels: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold index (0..n_folds-1) of every row: rows of one group (object) share a fold, classes are
    spread over the folds as evenly as the groups allow (scikit-learn's StratifiedGroupKFold)."""
    fold = np.full(len(labels), -1, dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), labels, np.asarray(groups))):
        fold[test] = k
    return fold


def cross_validate(base: StampCNN, sim: StampSet, real: StampSet, fold: np.ndarray,
                   settings: FineTuneSettings) -> np.ndarray:
    """Out-of-fold logits of the real rows: for each fold, ``base`` fine-tuned on ``sim`` and the
    real rows of the other folds, applied to the fold's rows."""
    out = np.zeros((len(real), len(CLASSES)), np.float32)
    for k in np.unique(fold):
        held = fold == k
        data, weights = mixture(sim, subset(real, np.flatnonzero(~held)), settings.real_share)
        model = fine_tune(base, data, weights, settings).model
        out[held] = logits(model, subset(real, np.flatnonzero(held)))
    return out
