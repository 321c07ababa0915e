"""Training and evaluation of the stamp classifier (CPU, reproducible with a seed).

Training follows Carrasco-Davis et al. (2021, sect. 4): balanced classes, Adam, cross-entropy,
early stopping on a validation set (the weights of the best validation loss are kept, training
stops after ``patience`` epochs without improvement). Everything random (initial weights, batch
order, dropout) derives from ``seed``, and torch runs single-process here, so the same seed and
data give the same weights bit for bit.

Evaluation reports what ALeRCE reports: balanced accuracy, per-class precision/recall/F1 and the
confusion matrix (scikit-learn), on a held-out set simulated with another seed.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, precision_recall_fscore_support
from torch import nn

from lenga.stamps import CLASSES
from lenga.stamps.dataset import StampSet
from lenga.stamps.model import MODEL_FILE, WEIGHTS_FILE, StampCNN

REPORT_FILE = "report.json"
CONFUSION_FILE = "confusion.png"


@dataclass(frozen=True)
class TrainSettings:
    """Optimiser and stopping settings (defaults: the shipped models)."""

    seed: int = 0
    max_epochs: int = 40
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 5
    threads: int = 2


@dataclass
class TrainResult:
    model: StampCNN
    epochs: int
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0


def _tensors(data: StampSet) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.from_numpy(data.images), torch.from_numpy(data.features), torch.from_numpy(data.labels)


def _loss(model: StampCNN, data: StampSet, batch_size: int) -> float:
    images, features, labels = _tensors(data)
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            sl = slice(start, start + batch_size)
            total += nn.functional.cross_entropy(model(images[sl], features[sl]), labels[sl], reduction="sum").item()
    return total / len(data)


def train(train_set: StampSet, validation: StampSet, settings: TrainSettings = TrainSettings()) -> TrainResult:
    """Fit a :class:`StampCNN` on ``train_set``; early stopping on ``validation``'s loss."""
    if train_set.survey != validation.survey:
        raise ValueError(f"training ({train_set.survey}) and validation ({validation.survey}) surveys differ")
    counts = np.bincount(train_set.labels, minlength=len(CLASSES))
    if counts.min() == 0:
        raise ValueError(f"every class needs training examples, got counts {dict(zip(CLASSES, counts, strict=True))}")
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    started, cpu_started = time.perf_counter(), time.process_time()
    images, features, labels = _tensors(train_set)
    model = StampCNN(features.shape[1])
    model.set_standardisation(features)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    # Balanced classes: each class weighs the same in the loss whatever its count.
    class_weight = torch.tensor(counts.sum() / (len(CLASSES) * counts), dtype=torch.float32)
    order = torch.Generator().manual_seed(settings.seed)
    best, best_loss, best_epoch, history = copy.deepcopy(model.state_dict()), np.inf, 0, []
    for epoch in range(1, settings.max_epochs + 1):
        model.train()
        permutation = torch.randperm(len(train_set), generator=order)
        running = 0.0
        for start in range(0, len(train_set), settings.batch_size):
            batch = permutation[start : start + settings.batch_size]
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(model(images[batch], features[batch]), labels[batch], weight=class_weight)
            loss.backward()
            optimiser.step()
            running += loss.item() * batch.numel()
        val_loss = _loss(model, validation, settings.batch_size)
        history.append({"epoch": epoch, "train_loss": running / len(train_set), "validation_loss": val_loss})
        if val_loss < best_loss:
            best, best_loss, best_epoch = copy.deepcopy(model.state_dict()), val_loss, epoch
        elif epoch - best_epoch >= settings.patience:
            break
    model.load_state_dict(best)
    model.eval()
    return TrainResult(model, epoch, best_epoch, history, time.perf_counter() - started,
                       time.process_time() - cpu_started)


def predict_proba(model: StampCNN, images: np.ndarray, features: np.ndarray, batch_size: int = 2048) -> np.ndarray:
    """Class probabilities (N, 5) of preprocessed inputs (softmax of the logits)."""
    model.eval()
    out = np.empty((len(images), len(CLASSES)), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            sl = slice(start, start + batch_size)
            logits = model(torch.from_numpy(images[sl]), torch.from_numpy(features[sl]))
            out[sl] = torch.softmax(logits, dim=1).numpy()
    return out


def evaluate(model: StampCNN, test_set: StampSet) -> dict:
    """Balanced accuracy, per-class precision/recall/F1/support, confusion matrix (rows: truth),
    and the recall of every light-curve model / artefact kind (where the errors come from)."""
    predicted = predict_proba(model, test_set.images, test_set.features).argmax(axis=1)
    truth = test_set.labels
    labels = list(range(len(CLASSES)))
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=labels, zero_division=0)
    kinds = {str(kind): float((predicted[test_set.kinds == kind] == truth[test_set.kinds == kind]).mean())
             for kind in np.unique(test_set.kinds)}
    return {
        "survey": test_set.survey,
        "n_test": len(test_set),
        "balanced_accuracy": float(balanced_accuracy_score(truth, predicted)),
        "accuracy": float((predicted == truth).mean()),
        "per_class": {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for name, p, r, f, s in zip(CLASSES, precision, recall, f1, support, strict=True)},
        "confusion_matrix": {"classes": list(CLASSES),
                             "counts": confusion_matrix(truth, predicted, labels=labels).tolist()},
        "recall_by_kind": kinds,
    }


def plot_confusion(report: dict, path: str | Path) -> None:
    """The row-normalised confusion matrix as a PNG (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.array(report["confusion_matrix"]["counts"], dtype=float)
    fractions = counts / counts.sum(axis=1, keepdims=True)
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    for (i, j), value in np.ndenumerate(fractions):
        ax.text(j, i, f"{value:.2f}\n({int(counts[i, j])})", ha="center", va="center", fontsize=8,
                color="white" if value > 0.5 else "black")
    ax.set_xticks(range(len(CLASSES)), CLASSES)
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{report['survey'].upper()} held-out set: balanced accuracy {report['balanced_accuracy']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_model(model: StampCNN, directory: str | Path, survey: str, version: str, feature_names: list[str],
               extra: dict | None = None) -> None:
    """``weights.pt`` (the state_dict) and ``model.json`` (what inference needs to use it)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / WEIGHTS_FILE)
    meta = {"survey": survey, "version": version, "classes": list(CLASSES), "features": feature_names, **(extra or {})}
    (out / MODEL_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def settings_dict(settings: TrainSettings) -> dict:
    return asdict(settings)
