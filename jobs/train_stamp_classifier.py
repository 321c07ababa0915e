"""Train the stamp classifier (simulated first detections, optionally real stamps) and write the model directory.

    ./spark-submit.sh train_stamp_classifier [--survey ztf|lsst] [--n-train N] [--seed S] [--out DIR]
    ./spark-submit.sh train_stamp_classifier --real ../shared/data/real [--base DIR] ...   (ZTF)
    (or: .venv/bin/python jobs/train_stamp_classifier.py ...; no Spark is used)

Simulation only (default): three simulated sets, balanced over the five classes
(lenga.stamps.dataset): training (seed S), validation for early stopping (seed S + 1) and the
held-out test set (seed S + 100, never seen during training).

With ``--real`` (issue 19): the simulation-trained network of ``--base`` is fine-tuned on the
simulated training set plus the real labelled stamps of that directory (lenga.stamps.realset) and
the real alerts under ``--alerts`` that ZTF's own scores call bogus (lenga.stamps.realtrain).
The real rows are scored by object-grouped cross-validation (``--folds``); the out-of-fold
predictions give the real metrics and the calibration temperature stored in ``model.json``; the
shipped network is then fine-tuned on all real rows. The simulated held-out set stays the
regression check.

Writes into ``--out`` (default models/stamp_classifier, or models/stamp_classifier_lsst for LSST):
``weights.pt`` (state_dict), ``model.json``, ``report.json`` (balanced accuracy, per-class
precision/recall/F1, confusion matrix, real cross-validation metrics, timings, settings),
``confusion.png`` and the model card ``README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from lenga.bench.reports.stamps import read_alerts
from lenga.scores import fit_temperature, softmax
from lenga.stamps import CLASSES
from lenga.stamps.dataset import build_stamp_set
from lenga.stamps.features import feature_names
from lenga.stamps.inference import StampClassifier
from lenga.stamps.realset import LABEL, first_detection, read_stamp_set, real_bogus_alerts, stamp_metrics
from lenga.stamps.realtrain import (
    FineTuneSettings,
    cross_validate,
    fine_tune,
    grouped_folds,
    mixture,
    real_stamp_set,
    with_srmag_fill,
)
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
#: Real data beside the repository (../shared/data, never copied into it), and the simulation-only
#: network that ``--real`` fine-tunes (version 1.1, kept as the start point).
SHARED = ROOT.parent / "shared" / "data"
DEFAULT_BASE = ROOT / "models" / "stamp_classifier" / "sim_base"
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
    real = parser.add_argument_group("real data (ZTF, issue 19)")
    real.add_argument("--real", type=Path, help=f"fine-tune on the real stamps of this directory (e.g. {SHARED / 'real'})")
    real.add_argument("--alerts", type=Path, default=SHARED / "ztf",
                      help="real alert packets whose ZTF scores add bogus examples ('' for none)")
    real.add_argument("--base", type=Path, default=DEFAULT_BASE, help="simulation-trained model to fine-tune")
    real.add_argument("--folds", type=int, default=5, help="object-grouped cross-validation folds on the real rows")
    real.add_argument("--epochs", type=int, default=FineTuneSettings.epochs, help="fine-tuning epochs")
    args = parser.parse_args(argv)
    if args.real and args.survey != "ztf":
        parser.error("--real holds ZTF stamps: use it with --survey ztf")
    return args


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this model directory."""
    command = (f".venv/bin/python jobs/train_stamp_classifier.py --survey {args.survey} --n-train {args.n_train} "
               f"--n-test {args.n_test} --seed {args.seed} --threads {args.threads} --version {args.version}")
    if not args.real:
        command += f" --n-validation {args.n_validation} --max-epochs {args.max_epochs}"
    else:
        alerts = _relative(args.alerts) if args.alerts else "''"
        command += (f" --real {_relative(args.real)} --alerts {alerts} --base {_relative(args.base)} "
                    f"--folds {args.folds} --epochs {args.epochs}")
    return command


def _relative(path: Path) -> str:
    """``path`` relative to the repository root (the job's documented working directory)."""
    return os.path.relpath(Path(path).resolve(), ROOT)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _real_table(cv: dict) -> str:
    """Per class: out-of-fold recall/precision, and the simulation-only baseline's recall."""
    lines = ["| class | rows | recall (CV) | precision (CV) | recall, v1.1 baseline |", "|---|---|---|---|---|"]
    for name, m in cv["calibrated"]["per_class"].items():
        lines.append(f"| {name} | {m['n']} | {_fmt(m['recall'])} | {_fmt(m['precision'])} | "
                     f"{_fmt(cv['baseline']['per_class'][name]['recall'])} |")
    return "\n".join(lines)


def _real_sections(report: dict, args: argparse.Namespace) -> tuple[str, str, str]:
    """Data, results and limits of a model fine-tuned on real stamps (``--real``)."""
    cv = report["real_cv"]
    after, before, base = cv["calibrated"], cv["uncalibrated"], cv["baseline"]
    data = f"""
Real ZTF stamps: the {cv['n_stamp_rows']} labelled cutout triplets of `../shared/data/real/stamps.parquet`
({', '.join(f"{c} {m['n']}" for c, m in after['per_class'].items())}; labels from ZTF's MPC association,
VSX/GCVS and SIMBAD cross-matches, spectroscopic SNe, a published stamp training set), read by
lenga.stamps.realset, plus {cv['alerts_bogus']['n']} real alerts of `../shared/data/ztf` labelled bogus by ZTF's own scores
({cv['alerts_bogus']['rule']}; objects of the stamp set excluded). The simulation-only network
(`{_relative(args.base)}`: version 1.1, trained by its own recipe, its model card in the git history) is
fine-tuned {args.epochs} epochs on {args.n_train} simulated alerts per class (seed {args.seed})
and all real rows: simulated and real parts weigh half of the loss each, classes balanced within each,
random mirroring, half the simulated rows with `magpsf_minus_srmag1` at its fill value (the real set has no
`srmag1`); lenga/stamps/realtrain.py.
"""
    results = f"""
## Real data: object-grouped {cv['folds']}-fold cross-validation
Out-of-fold predictions of {cv['n_rows']} real rows ({cv['n_objects']} objects, no object in two folds;
each fold's model is fine-tuned like the shipped one on the other folds). Metrics on the
{cv['n_stamp_rows']} labelled stamps; the v1.1 baseline is the simulation-only network on the same rows.

{_real_table(cv)}

- Balanced recall over {', '.join(after['balanced_over'])} (classes with >= 5 rows): **{_fmt(after['balanced_recall'])}**
  (v1.1: {_fmt(base['balanced_recall'])}).
- First detections (`ndethist` <= 1, {after['first_detection']['n']} rows, balanced over
  {', '.join(after['first_detection']['balanced_over'])}): {_fmt(after['first_detection']['balanced_recall'])}
  (v1.1: {_fmt(base['first_detection']['balanced_recall'])}).
- Known variable stars called bogus: **{_fmt(after['known_vs_called_bogus'])}** (v1.1: {_fmt(base['known_vs_called_bogus'])}).
- Real alerts labelled bogus by ZTF's scores, recall: {_fmt(cv['alerts_bogus']['recall'])}.
- Expected calibration error of the top probability (10 bins): {_fmt(before['ece'])} before,
  **{_fmt(after['ece'])}** after temperature scaling (T = {cv['temperature']:.3f}, fitted on these out-of-fold
  predictions, stored in `model.json` and applied by inference; v1.1: {_fmt(base['ece'])}).
  The ECE after calibration is measured on the data T was fitted on: optimistic.
"""
    limits = f"""
## Limits
The real set is small and skewed: SN {after['per_class']['SN']['n']} and AGN {after['per_class']['AGN']['n']} rows,
so their recalls move by 0.1 (SN) and 0.05 (AGN) per alert; bogus has one labelled stamp and
{cv['alerts_bogus']['n']} score-labelled alerts, most from a single exposure. In the real set almost all asteroids
are first detections and almost all variable stars, SNe and AGN later ones: the first-detection
metric is effectively the asteroid recall, and the simulated first detections of every class in
the fine-tuning mixture are what keeps `ndethist` from becoming a shortcut (watch the simulated
held-out check above). Real stamps lack `srmag1`. Labels are object-level cross-matches (a known
variable at the position need not have caused every alert). An independent, object-disjoint real
evaluation set is kept outside this repository: judge the model there.
"""
    return data, results, limits


def model_card(report: dict, args: argparse.Namespace) -> str:
    """The model card (Mitchell et al. 2019): what, trained on what, how well, limits."""
    rows = "\n".join(
        f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
        for name, m in report["per_class"].items())
    timing = report["training"]
    survey = args.survey.upper()
    scale = "1.01\"/px, gzipped FITS in DN" if args.survey == "ztf" else "0.2\"/px, plain FITS in nJy"
    if args.real:
        real_data, real_results, limits = _real_sections(report, args)
        recipe = (f"Fine-tuning: Adam, {args.epochs} epochs, weighted cross-entropy (best epoch = last; no early "
                  f"stopping: the real rows are too few to spare a validation set)")
        sim_check = "; the simulation-only version 1.1 scored 0.980 on this set, and may lose at most 0.02"
        output = "softmax of the logits divided by the calibration temperature, over"
    else:
        real_data, real_results, sim_check = "", "", ""
        recipe = (f"Adam, class-balanced cross-entropy, early stopping on the validation loss (best epoch "
                  f"{timing['best_epoch']} of {timing['epochs']})")
        output = "softmax over"
        limits = """
## Limits
Trained on simulations only: the accuracy above is the simulator's, not the sky's. Real alerts
differ (PSF wings, host morphologies, artefact variety, the real distributions of metadata);
``python -m lenga.bench.reports.stamps`` scores the model on the real alerts of
../shared/data. Use the probabilities for ranking and triage, not as calibrated posteriors.
"""
    return f"""# Stamp classifier ({survey}), version {args.version}

A rotation-invariant CNN (lenga/stamps/model.py; Carrasco-Davis et al. 2021, Dieleman et al. 2016)
on the science, template and difference cutouts of an alert ({scale}), centre-cropped to 21x21 and
normalised per image, plus {len(report['features'])} metadata features
({', '.join(report['features'])}). Output: {output} {', '.join(CLASSES)}.

## Data
Simulated first detections (lenga.sim: Moffat PSF with the survey's seeing distribution, Sérsic
hosts, template stars, misregistration; bogus artefacts of lenga/sim/artifacts.py and constant-star
subtraction residuals), drawn from every light-curve model registered for each stamp class:
{args.n_train} training, {0 if args.real else args.n_validation} validation and {args.n_test} held-out alerts per class,
seeds {args.seed}, {args.seed + VALIDATION_SEED_OFFSET} and {args.seed + TEST_SEED_OFFSET}.
10% of the training and validation stamps get a masked (NaN) border strip so that masked pixels
alone do not mean "bogus".
{real_data}
## Held-out results (simulated, seed {args.seed + TEST_SEED_OFFSET})
Balanced accuracy **{report['balanced_accuracy']:.3f}** (accuracy {report['accuracy']:.3f}){sim_check}.

| class | precision | recall | F1 | support |
|---|---|---|---|---|
{rows}

Confusion matrix: `{CONFUSION_FILE}`; everything in `{REPORT_FILE}` (also recall per light-curve
model and artefact kind{', and the real cross-validation metrics' if args.real else ''}).
{real_results}
## Training
`{_command(args)}`;
{recipe}. Training {timing['train_wall_s']:.0f} s wall /
{timing['train_cpu_s']:.0f} s CPU with {args.threads} torch thread(s); whole job (simulation included)
{timing['job_wall_s']:.0f} s wall / {timing['job_cpu_s']:.0f} s CPU on {timing['machine']}
(a shared 2-core machine: wall times are noisy).
{limits}"""


def real_rows(args: argparse.Namespace) -> tuple[pa.Table, pa.Table]:
    """The labelled real stamps, and the real alerts that ZTF's scores call bogus (none without ``--alerts``)."""
    stamps = read_stamp_set(args.real)
    if not args.alerts or not Path(args.alerts).is_dir():
        return stamps, stamps.slice(0, 0)
    alerts, _ = read_alerts(args.alerts, "ztf")
    return stamps, real_bogus_alerts(alerts, set(stamps.column("objectId").to_pylist())).cast(stamps.schema)


def fine_tune_on_real(args: argparse.Namespace, sim) -> tuple:
    """The base network fine-tuned on ``sim`` and every real row, the real cross-validation report
    and the calibration temperature fitted on its out-of-fold predictions."""
    settings = FineTuneSettings(seed=args.seed, epochs=args.epochs, threads=args.threads)
    stamps, bogus = real_rows(args)
    rows = pa.concat_tables([stamps, bogus])
    real = real_stamp_set(rows)
    sim = with_srmag_fill(sim, args.seed)
    base = StampClassifier.load(args.base).model
    objects = rows.column("objectId").to_pylist()
    fold = grouped_folds(objects, real.labels, args.folds, args.seed)
    oof = cross_validate(base, sim, real, fold, settings)
    temperature = fit_temperature(oof, real.labels)
    n = stamps.num_rows
    labels, first = rows.column(LABEL).to_pylist()[:n], first_detection(stamps)
    base_logits = np.log(StampClassifier(base, "ztf", "base").predict(stamps)[0])
    cv = {
        "folds": args.folds, "n_rows": len(real), "n_objects": len(set(objects)), "n_stamp_rows": n,
        "temperature": temperature,
        "baseline": stamp_metrics(labels, softmax(base_logits), first),
        "uncalibrated": stamp_metrics(labels, softmax(oof[:n]), first),
        "calibrated": stamp_metrics(labels, softmax(oof[:n], temperature), first),
        "alerts_bogus": {"n": bogus.num_rows, "recall": float((oof[n:].argmax(axis=1) == CLASSES.index("bogus")).mean())
                         if bogus.num_rows else None,
                         "rule": "drb < 0.1 and rb < 0.5, no known solar-system object within 5 arcsec"},
        "fine_tune": settings.__dict__,
    }
    data, weights = mixture(sim, real, settings.real_share)
    return fine_tune(base, data, weights, settings), cv, temperature


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = Path(args.out) if args.out else DEFAULT_OUT[args.survey]
    started, cpu_started = time.perf_counter(), time.process_time()
    train_set = build_stamp_set(args.survey, args.n_train, args.seed)
    test_set = build_stamp_set(args.survey, args.n_test, args.seed + TEST_SEED_OFFSET, augment=False)
    extra = {"trained_on": "lenga.sim first detections", "report": REPORT_FILE}
    if args.real:
        simulated_s = time.perf_counter() - started
        settings = None
        result, real_cv, temperature = fine_tune_on_real(args, train_set)
        n_validation = 0
        extra.update(trained_on="lenga.sim first detections, fine-tuned on real ZTF stamps (issue 19)",
                     temperature=temperature)
    else:
        validation = build_stamp_set(args.survey, args.n_validation, args.seed + VALIDATION_SEED_OFFSET)
        simulated_s = time.perf_counter() - started
        settings = TrainSettings(seed=args.seed, max_epochs=args.max_epochs, threads=args.threads)
        result, real_cv = train(train_set, validation, settings), None
        n_validation = len(validation)
    report = evaluate(result.model, test_set)
    report.update(
        classifier_version=args.version,
        features=feature_names(args.survey),
        training={
            "settings": settings_dict(settings) if settings else real_cv["fine_tune"],
            "n_train": len(train_set), "n_validation": n_validation,
            "seeds": {"train": args.seed, "validation": args.seed + VALIDATION_SEED_OFFSET,
                      "test": args.seed + TEST_SEED_OFFSET},
            "epochs": result.epochs, "best_epoch": result.best_epoch, "history": result.history,
            "simulation_wall_s": simulated_s,
            "train_wall_s": result.wall_s, "train_cpu_s": result.cpu_s,
            "job_wall_s": time.perf_counter() - started, "job_cpu_s": time.process_time() - cpu_started,
            "machine": f"{platform.machine()} {platform.processor() or ''} ({platform.node()})".strip(),
        },
    )
    if real_cv:
        report["real_cv"] = real_cv
    save_model(result.model, out, args.survey, args.version, feature_names(args.survey), extra=extra)
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    plot_confusion(report, out / CONFUSION_FILE)
    (out / "README.md").write_text(model_card(report, args))
    summary = {k: report[k] for k in ("survey", "balanced_accuracy", "accuracy")}
    summary["recall"] = {c: round(m["recall"], 3) for c, m in report["per_class"].items()}
    if real_cv:
        calibrated = real_cv["calibrated"]
        summary["real_cv"] = {"balanced_recall": calibrated["balanced_recall"],
                              "known_vs_called_bogus": calibrated["known_vs_called_bogus"],
                              "ece": calibrated["ece"], "temperature": real_cv["temperature"]}
    print(json.dumps(summary | {k: round(v, 1) for k, v in report["training"].items() if k.endswith("_s")}))
    return report


if __name__ == "__main__":
    main()
