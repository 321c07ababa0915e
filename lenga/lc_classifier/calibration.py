"""Temperature scaling of the hierarchical classifier's probabilities, fitted on real objects.

Boosted trees trained with balanced class weights on simulated curves are over-confident on the
real sky. One temperature per level (Guo et al. 2017, ICML) divides the log-probabilities before
they are renormalised (:func:`lenga.lc_classifier.model.tempered`, :func:`lenga.scores.softmax`): ``top`` for the top model,
``branch`` for the three branch models' P(leaf | branch). Each is fitted by minimising the negative
log-likelihood of the true classes of out-of-fold predictions on real labelled objects, so the
rankings (and recalls) are unchanged and only the confidence moves.
"""

from __future__ import annotations

import numpy as np

from lenga.lc_classifier.model import BRANCH_OF, TOP_CLASSES, log_probabilities
from lenga.scores import fit_temperature
from lenga.taxonomy import ALERCE_CLASSES


def fit_temperatures(top: np.ndarray, branches: dict[str, np.ndarray], leaf_labels: np.ndarray) -> dict[str, float]:
    """``{"top": T, "branch": T}`` from out-of-fold booster outputs
    (:meth:`lenga.lc_classifier.model.HierarchicalClassifier.predict_parts`) and the true leaf classes.
    The branch temperature is fitted on each object's true branch model (the only one whose
    conditional probability has a true class)."""
    branch = np.array([BRANCH_OF[c] for c in leaf_labels])
    top_truth = np.array([TOP_CLASSES.index(b) for b in branch])
    # One temperature for the three branch models, fitted on their pooled predictions: each branch's
    # log-probabilities padded to the widest branch with -inf (probability 0 after the softmax).
    width = max(len(leaves) for leaves in ALERCE_CLASSES.values())
    conditional, truth = [], []
    for name in TOP_CLASSES:
        inside = branch == name
        logs = np.full((int(inside.sum()), width), -np.inf)
        logs[:, :len(ALERCE_CLASSES[name])] = log_probabilities(branches[name][inside])
        conditional.append(logs)
        truth.append(np.array([ALERCE_CLASSES[name].index(c) for c in leaf_labels[inside]], dtype=int))
    return {"top": fit_temperature(log_probabilities(top), top_truth),
            "branch": fit_temperature(np.concatenate(conditional), np.concatenate(truth))}
