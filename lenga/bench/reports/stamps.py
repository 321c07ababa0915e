"""Classify real alert files and draw their cutouts with the predicted classes (a review by eye).

    python -m lenga.bench.reports.stamps --alerts ../shared/data/ztf --png stamps.png [--json classes.json]

Every ``*.avro`` file under ``--alerts`` is decoded with lenga.decode (each record of a
multi-record container separately), the alerts of the model's survey are classified with the
shipped model (``--model`` to choose another) and a PNG grid shows, per alert, the science,
template and difference cutouts (63x63, each scaled between its 1st and 99.5th percentile, NaN
pixels in red) under the object id, the predicted class and its probability, grouped by class.
Prints the class distribution and the alerts that could not be classified, with the reason.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

from lenga import schema
from lenga.config import PROJECT_ROOT
from lenga.decode import Quarantined, decode_message, split_container
from lenga.stamps import CLASSES
from lenga.stamps.inference import StampClassifier
from lenga.stamps.preprocess import CUTOUT_COLUMNS, CutoutError, read_fits
from lenga.stream.steps.stamps import DEFAULTS

GRID_COLUMNS = 6
# Display stretch of each cutout (percentiles), as ds9's "99.5%" scale.
STRETCH = (1.0, 99.5)


def read_alerts(directory: str | Path, survey: str) -> tuple[pa.Table, list[str]]:
    """Alerts-table rows of every alert of ``survey`` in the ``.avro`` files under ``directory``,
    and the files (or records) that could not be decoded, with the reason."""
    rows, problems = [], []
    for path in sorted(Path(directory).rglob("*.avro")):
        for k, message in enumerate(split_container(path.read_bytes())):
            try:
                alert = decode_message(message).alert
            except Quarantined as exc:
                problems.append(f"{path.name}[{k}]: {exc}")
                continue
            if alert["survey"] == survey:
                rows.append(alert)
    return pa.Table.from_pylist(rows, schema=schema.ALERTS), problems


def _display(payload: bytes | None) -> np.ndarray:
    """A cutout scaled to [0, 1] for display (NaN kept, drawn in red)."""
    try:
        image = read_fits(payload) if payload else np.full((63, 63), np.nan, np.float32)
    except CutoutError:
        return np.full((63, 63), np.nan, np.float32)
    if not np.isfinite(image).any():
        return image
    lo, hi = np.nanpercentile(image, STRETCH)
    return np.clip((image - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)


def plot_grid(table: pa.Table, probabilities: np.ndarray, reasons: list[str | None], path: str | Path) -> None:
    """Science | template | difference of every alert, titled with its prediction, sorted by class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    predicted = probabilities.argmax(axis=1)
    order = sorted(range(table.num_rows), key=lambda k: (reasons[k] is not None, predicted[k], -probabilities[k].max()))
    n_rows = int(np.ceil(len(order) / GRID_COLUMNS))
    fig, axes = plt.subplots(n_rows, GRID_COLUMNS, figsize=(GRID_COLUMNS * 3.3, n_rows * 1.35), squeeze=False)
    cmap = matplotlib.colormaps["gray"].with_extremes(bad="red")
    ids = table.column("objectId").to_pylist()
    columns = {c: table.column(c).to_pylist() for c in CUTOUT_COLUMNS}
    for ax in axes.flat:
        ax.axis("off")
    for ax, k in zip(axes.flat, order, strict=False):
        images = [_display(columns[c][k]) for c in CUTOUT_COLUMNS]
        gap = np.full((images[0].shape[0], 3), 1.0)
        height = max(im.shape[0] for im in images)
        padded = [np.pad(im, ((0, height - im.shape[0]), (0, 0)), constant_values=np.nan) for im in images]
        ax.imshow(np.hstack([padded[0], gap, padded[1], gap, padded[2]]), cmap=cmap, vmin=0, vmax=1,
                  interpolation="nearest")
        label = "unclassified" if reasons[k] else f"{CLASSES[predicted[k]]} {probabilities[k].max():.2f}"
        ax.set_title(f"{ids[k]}  {label}", fontsize=7)
    fig.suptitle("real alerts: science | template | difference, predicted stamp class", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", required=True, help="directory searched recursively for .avro files")
    parser.add_argument("--png", required=True, help="output PNG grid")
    parser.add_argument("--survey", choices=["ztf", "lsst"], default="ztf")
    parser.add_argument("--model", help="model directory (default: the configured one for --survey)")
    parser.add_argument("--json", help="also write the per-alert predictions here")
    args = parser.parse_args(argv)
    classifier = StampClassifier.load(args.model or PROJECT_ROOT / DEFAULTS["models"][args.survey])
    table, problems = read_alerts(args.alerts, args.survey)
    probabilities, reasons = classifier.predict(table)
    plot_grid(table, probabilities, reasons, args.png)
    predicted = [CLASSES[p] for p, r in zip(probabilities.argmax(axis=1), reasons, strict=True) if r is None]
    summary = {
        "alerts": table.num_rows,
        "classified": len(predicted),
        "distribution": dict(Counter(predicted).most_common()),
        "unclassified": [f"{c}: {r}" for c, r in zip(table.column("candid").to_pylist(), reasons, strict=True) if r],
        "undecodable": problems,
    }
    if args.json:
        per_alert = [{"objectId": o, "candid": c, "class": CLASSES[int(np.argmax(p))], "probabilities":
                      dict(zip(CLASSES, map(float, p), strict=True)), "unclassified": r}
                     for o, c, p, r in zip(table.column("objectId").to_pylist(), table.column("candid").to_pylist(),
                                           probabilities, reasons, strict=True)]
        Path(args.json).write_text(json.dumps({**summary, "alerts_detail": per_alert}, indent=1))
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
