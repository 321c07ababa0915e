"""Held-out evaluation of the hierarchical classifier: per-class scores, macro averages, confusion plots.

Scores are scikit-learn's (precision, recall, F1 per class; macro = unweighted mean over classes,
the figure ALeRCE reports because the classes are very unbalanced). Confusion matrices are row
normalised (each true class sums to 1), drawn as in Sánchez-Sáez et al. (2021, fig. 9).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from lenga.lc_classifier.model import BRANCH_OF, LEAF_CLASSES, TOP_CLASSES, HierarchicalClassifier


def scores(true: np.ndarray, predicted: np.ndarray, classes: tuple[str, ...]) -> dict:
    """``macro_precision``, ``macro_recall``, ``macro_f1``, ``accuracy`` and
    ``per_class.<class>.{precision, recall, f1, support}``."""
    p, r, f, n = precision_recall_fscore_support(true, predicted, labels=list(classes), zero_division=0)
    return {
        "macro_precision": float(np.mean(p)), "macro_recall": float(np.mean(r)), "macro_f1": float(np.mean(f)),
        "accuracy": float(np.mean(np.asarray(true) == np.asarray(predicted))),
        "per_class": {c: {"precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k]), "support": int(n[k])}
                      for k, c in enumerate(classes)},
    }


def evaluate(model: HierarchicalClassifier, frame: pd.DataFrame) -> tuple[dict, dict[str, np.ndarray]]:
    """Scores of both levels on a labelled features frame, and their row-normalised confusion matrices."""
    top, leaf = model.predict_proba(model.matrix(frame))
    true_leaf = frame["class_name"].to_numpy()
    true_top = np.array([BRANCH_OF[c] for c in true_leaf])
    pred_top = np.asarray(TOP_CLASSES)[top.argmax(axis=1)]
    pred_leaf = np.asarray(LEAF_CLASSES)[leaf.argmax(axis=1)]
    report = {"n_objects": len(frame), "top": scores(true_top, pred_top, TOP_CLASSES),
              "leaf": scores(true_leaf, pred_leaf, LEAF_CLASSES)}
    matrices = {"top": confusion_matrix(true_top, pred_top, labels=list(TOP_CLASSES), normalize="true"),
                "leaf": confusion_matrix(true_leaf, pred_leaf, labels=list(LEAF_CLASSES), normalize="true")}
    return report, matrices


def plot_confusion(matrix: np.ndarray, classes: tuple[str, ...], title: str, path: str | Path) -> None:
    """Row-normalised confusion matrix as a PNG (true class in rows, predicted in columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = 3 + 0.45 * len(classes)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            if matrix[i, j] >= 0.005:
                ax.text(j, i, f"{100 * matrix[i, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reliability(levels: dict[str, dict], title: str, path: str | Path) -> None:
    """Reliability diagram: per calibration bin (:func:`lenga.scores.calibration`), accuracy against
    mean top probability, one line per entry of ``levels`` (label -> calibration dict)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    for label, result in levels.items():
        bins = result["bins"]
        ax.plot([b["mean_probability"] for b in bins], [b["accuracy"] for b in bins], marker="o", ms=3,
                label=f"{label} (ECE {result['ece']:.3f})")
    ax.set_xlabel("mean top probability")
    ax.set_ylabel("fraction correct")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
