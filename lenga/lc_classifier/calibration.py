"""Temperature scaling of the hierarchical classifier's probabilities, fitted on real objects.

Boosted trees trained with balanced class weights on simulated curves are over-confident on the
real sky. One temperature per level (Guo et al. 2017, ICML) divides the log-probabilities before
they are renormalised (:func:`lenga.lc_classifier.model.tempered`): ``top`` for the top model,
``branch`` for the three branch models' P(leaf | branch). Each is fitted by minimising the negative
log-likelihood of the true classes of out-of-fold predictions on real labelled objects, so the
rankings (and recalls) are unchanged and only the confidence moves.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from lenga.lc_classifier.model import BRANCH_OF, TOP_CLASSES, tempered
from lenga.taxonomy import ALERCE_CLASSES

#: Temperatures are searched within [1 / LIMIT, LIMIT].
LIMIT = 20.0


def _negative_log_likelihood(probabilities: np.ndarray, truth: np.ndarray, temperature: float) -> float:
    scaled = tempered(probabilities, temperature)
    return float(-np.log(np.clip(scaled[np.arange(len(truth)), truth], 1e-12, 1.0)).mean())


def fit_temperature(probabilities: np.ndarray, truth: np.ndarray) -> float:
    """The temperature minimising the mean negative log-likelihood of ``truth`` (class indices)."""
    if len(truth) == 0:
        return 1.0
    result = minimize_scalar(lambda log_t: _negative_log_likelihood(probabilities, truth, float(np.exp(log_t))),
                             bounds=(-np.log(LIMIT), np.log(LIMIT)), method="bounded")
    return float(np.exp(result.x))


def fit_temperatures(top: np.ndarray, branches: dict[str, np.ndarray], leaf_labels: np.ndarray) -> dict[str, float]:
    """``{"top": T, "branch": T}`` from out-of-fold booster outputs
    (:meth:`lenga.lc_classifier.model.HierarchicalClassifier.predict_parts`) and the true leaf classes.
    The branch temperature is fitted on each object's true branch model (the only one whose
    conditional probability has a true class)."""
    branch = np.array([BRANCH_OF[c] for c in leaf_labels])
    top_truth = np.array([TOP_CLASSES.index(b) for b in branch])
    conditional, truth = [], []
    for name in TOP_CLASSES:
        inside = branch == name
        conditional.append(branches[name][inside])
        truth.append(np.array([ALERCE_CLASSES[name].index(c) for c in leaf_labels[inside]], dtype=int))
    # branches have different numbers of leaves: fit on the pooled negative log-likelihood
    def pooled(log_t: float) -> float:
        t = float(np.exp(log_t))
        total = sum(_negative_log_likelihood(p, y, t) * len(y) for p, y in zip(conditional, truth, strict=True) if len(y))
        return total / max(len(leaf_labels), 1)

    branch_t = float(np.exp(minimize_scalar(pooled, bounds=(-np.log(LIMIT), np.log(LIMIT)), method="bounded").x))
    return {"top": fit_temperature(top, top_truth), "branch": branch_t}
