"""Train the stamp classifier on simulated first detections and write the model directory.

    ./spark-submit.sh train_stamp_classifier [--survey ztf|lsst] [--n-train N] [--seed S] [--out DIR]
    (or: .venv/bin/python jobs/train_stamp_classifier.py ...; no Spark is used)

Three simulated sets, balanced over the five classes (lenga.stamps.dataset): training (seed S),
validation for early stopping (seed S + 1) and the held-out test set (seed S + 100, never seen
during training). Writes into ``--out`` (default models/stamp_classifier, or
models/stamp_classifier_lsst for LSST): ``weights.pt`` (state_dict), ``model.json``,
``report.json`` (balanced accuracy, per-class precision/recall/F1, confusion matrix, timings,
settings), ``confusion.png`` and the model card ``README.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from lenga.stamps import CLASSES
from lenga.stamps.dataset import build_stamp_set
from lenga.stamps.features import feature_names
from lenga.stamps.train import (
    CONFUSION_FILE,
    REPORT_FILE,
    TrainSettings,
    evaluate,
    plot_confusion,
    save_model,
    settings_dict,
    train,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = {"ztf": ROOT / "models" / "stamp_classifier", "lsst": ROOT / "models" / "stamp_classifier_lsst"}
# Seed offsets of the validation and held-out sets (independent simulations).
VALIDATION_SEED_OFFSET = 1
TEST_SEED_OFFSET = 100


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--survey", choices=sorted(DEFAULT_OUT), default="ztf")
    parser.add_argument("--n-train", type=int, default=2000, help="training alerts per class")
    parser.add_argument("--n-validation", type=int, default=400, help="validation alerts per class")
    parser.add_argument("--n-test", type=int, default=1000, help="held-out alerts per class")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-epochs", type=int, default=TrainSettings.max_epochs)
    parser.add_argument("--threads", type=int, default=TrainSettings.threads, help="torch threads")
    parser.add_argument("--version", default="1.0", help="classifier_version written with each classification")
    parser.add_argument("--out", help="model directory (default: models/stamp_classifier[_lsst])")
    return parser.parse_args(argv)


def model_card(report: dict, args: argparse.Namespace) -> str:
    """The model card (Mitchell et al. 2019): what, trained on what, how well, limits."""
    rows = "\n".join(
        f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
        for name, m in report["per_class"].items())
    timing = report["training"]
    survey = args.survey.upper()
    scale = "1.01\"/px, gzipped FITS in DN" if args.survey == "ztf" else "0.2\"/px, plain FITS in nJy"
    return f"""# Stamp classifier ({survey}), version {args.version}

A rotation-invariant CNN (lenga/stamps/model.py; Carrasco-Davis et al. 2021, Dieleman et al. 2016)
on the science, template and difference cutouts of an alert ({scale}), centre-cropped to 21x21 and
normalised per image, plus {len(report['features'])} metadata features
({', '.join(report['features'])}). Output: softmax over {', '.join(CLASSES)}.

## Data
Simulated first detections (lenga.sim: Moffat PSF with the survey's seeing distribution, Sérsic
hosts, template stars, misregistration; bogus artefacts of lenga/sim/artifacts.py and constant-star
subtraction residuals), drawn from every light-curve model registered for each stamp class:
{args.n_train} training, {args.n_validation} validation and {args.n_test} held-out alerts per class,
seeds {args.seed}, {args.seed + VALIDATION_SEED_OFFSET} and {args.seed + TEST_SEED_OFFSET}.
10% of the training and validation stamps get a masked (NaN) border strip so that masked pixels
alone do not mean "bogus".

## Held-out results (simulated, seed {args.seed + TEST_SEED_OFFSET})
Balanced accuracy **{report['balanced_accuracy']:.3f}** (accuracy {report['accuracy']:.3f}).

| class | precision | recall | F1 | support |
|---|---|---|---|---|
{rows}

Confusion matrix: `{CONFUSION_FILE}`; everything in `{REPORT_FILE}` (also recall per light-curve
model and artefact kind).

## Training
`.venv/bin/python jobs/train_stamp_classifier.py --survey {args.survey} --n-train {args.n_train} \\
--n-validation {args.n_validation} --n-test {args.n_test} --seed {args.seed} --max-epochs {args.max_epochs} \
--threads {args.threads} --version {args.version}`;
Adam, class-balanced cross-entropy, early stopping on the validation loss (best epoch
{timing['best_epoch']} of {timing['epochs']}). Training {timing['train_wall_s']:.0f} s wall /
{timing['train_cpu_s']:.0f} s CPU with {args.threads} torch thread(s); whole job (simulation included)
{timing['job_wall_s']:.0f} s wall / {timing['job_cpu_s']:.0f} s CPU on {timing['machine']}
(a shared 2-core machine: wall times are noisy).

## Limits
Trained on simulations only: the accuracy above is the simulator's, not the sky's. Real alerts
differ (PSF wings, host morphologies, artefact variety, the real distributions of metadata);
``python -m lenga.bench.reports.stamps`` scores the model on the real alerts of
../shared/data. Use the probabilities for ranking and triage, not as calibrated posteriors.
"""


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out) if args.out else DEFAULT_OUT[args.survey]
    started, cpu_started = time.perf_counter(), time.process_time()
    train_set = build_stamp_set(args.survey, args.n_train, args.seed)
    validation = build_stamp_set(args.survey, args.n_validation, args.seed + VALIDATION_SEED_OFFSET)
    test_set = build_stamp_set(args.survey, args.n_test, args.seed + TEST_SEED_OFFSET, augment=False)
    simulated_s = time.perf_counter() - started
    settings = TrainSettings(seed=args.seed, max_epochs=args.max_epochs, threads=args.threads)
    result = train(train_set, validation, settings)
    report = evaluate(result.model, test_set)
    report.update(
        classifier_version=args.version,
        features=feature_names(args.survey),
        training={
            "settings": settings_dict(settings),
            "n_train": len(train_set), "n_validation": len(validation),
            "seeds": {"train": args.seed, "validation": args.seed + VALIDATION_SEED_OFFSET,
                      "test": args.seed + TEST_SEED_OFFSET},
            "epochs": result.epochs, "best_epoch": result.best_epoch, "history": result.history,
            "simulation_wall_s": simulated_s,
            "train_wall_s": result.wall_s, "train_cpu_s": result.cpu_s,
            "job_wall_s": time.perf_counter() - started, "job_cpu_s": time.process_time() - cpu_started,
            "machine": f"{platform.machine()} {platform.processor() or ''} ({platform.node()})".strip(),
        },
    )
    save_model(result.model, out, args.survey, args.version, feature_names(args.survey),
               extra={"trained_on": "lenga.sim first detections", "report": REPORT_FILE})
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    plot_confusion(report, out / CONFUSION_FILE)
    (out / "README.md").write_text(model_card(report, args))
    print(json.dumps({k: report[k] for k in ("survey", "balanced_accuracy", "accuracy")}
                     | {"recall": {c: round(m["recall"], 3) for c, m in report["per_class"].items()}}
                     | {k: round(v, 1) for k, v in report["training"].items() if k.endswith("_s")}))
    return report


if __name__ == "__main__":
    main()
