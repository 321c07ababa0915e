"""What the features make of a directory of real alert packets: ``python -m lenga.bench.reports.features``.

    python -m lenga.bench.reports.features --alerts ../shared/data [--set min_points_per_band=4] [--json out.json]

Every alert file under ``--alerts`` (``*.avro``, ``*.avro.gz``, nightly tarballs; Parquet dumps are
not alert messages and are not read) is decoded by :func:`lenga.decode.decode_record_batch`, as the
stream does; the detections and non-detections of all alerts become one de-duplicated light curve
per object (:func:`lenga.curves.points.merge_curves`, as the aggregation does); the features of every
object with enough detections are computed in one :func:`lenga.features.extract_features` call.

Printed: messages and alerts per survey, quarantine reasons, objects and points, objects with
features, and per family the columns, the cells that should be defined (bands with at least
``min_points_per_band`` detections; every object for multiband columns) and how many of those
are NaN, then the range of a few headline features. ``--json`` writes the same with every column.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from lenga.curves.points import CURVE_COLUMNS, DETECTION, OBJECT_KEY, latest_context, merge_curves
from lenga.decode import decode_record_batch
from lenga.features import (
    FEATURE_VERSION,
    extract_features,
    family_columns,
    load_feature_config,
    nondetections,
    transient,
)
from lenga.features.config import FeatureConfig
from lenga.schema import ALERTS, FORCED, UPPER_LIMIT
from lenga.stream.file_source import list_alert_files, messages_of_file

#: Features whose ranges are printed (the JSON output has every column).
HEADLINE = ["amplitude_g", "amplitude_r", "stetson_K_g", "drw_tau_g", "iar_phi_g", "period", "period_power",
            "sn_rise_time_g", "sn_fall_time_r", "colour_g_r_mean", "n_non_det_before_g", "amplitude_i",
            "drw_tau_i"]
#: Non-detection features (lenga.features.nondetections) defined only with a limit before / after
#: the band's first detection (the counts are always defined).
NEEDS_LIMIT = {name: "after" if name.endswith("_after") else "before"
               for name in nondetections.NAMES if not name.startswith("n_non_det")}
#: Quarantine reasons listed in the printed report.
TOP_REASONS = 5


def read_alerts(path: str | Path) -> tuple[pa.Table, list[str]]:
    """Every alert message under ``path`` decoded (one :data:`lenga.schema.DECODED` row each) and the files read."""
    files = list_alert_files(str(path))
    messages = [message for name in files for message in messages_of_file(name)]
    if not messages:
        raise ValueError(f"no alert files (*.avro, *.avro.gz, tarballs) under {path}")
    batch = pa.RecordBatch.from_pydict({"value": pa.array(messages, pa.binary())})
    return pa.Table.from_batches([decode_record_batch(batch)]), files


def _rows(decoded: pa.Table, column: str) -> pd.DataFrame:
    return pa.Table.from_struct_array(pc.list_flatten(decoded[column]).combine_chunks()).to_pandas()


def light_curves(decoded: pa.Table) -> tuple[pd.DataFrame, pd.DataFrame]:
    """De-duplicated points of every object (``lenga.curves.points`` curve layout) and the alerts."""
    valid = decoded.filter(pc.is_null(decoded["quarantine_reason"]))
    detections = _rows(valid, "detections").assign(kind=DETECTION)
    non_detections = _rows(valid, "non_detections")
    columns = [*OBJECT_KEY, *CURVE_COLUMNS]
    points = merge_curves(detections.reindex(columns=columns), non_detections.reindex(columns=columns))
    return points, valid.select(ALERTS.names).to_pandas()


def _stats(values: pd.Series) -> dict[str, float | None]:
    finite = values[np.isfinite(values.to_numpy(dtype=float))]
    if finite.empty:
        return {"min": None, "median": None, "max": None}
    return {"min": float(finite.min()), "median": float(finite.median()), "max": float(finite.max())}


def _defined(features: pd.DataFrame, column: str, config: FeatureConfig) -> np.ndarray:
    """Rows where ``column`` has what it needs (its inputs are there), so a NaN would be a bug:

    per-band columns need ``min_points_per_band`` detections in the band, harmonics ``2 n + 2``
    (lenga.features.period), the supernova fit ``transient.MIN_POINTS``; limits before (after) the
    first detection need a non-detection there; colours need both bands; multiband columns none.
    """
    everywhere = np.ones(len(features), dtype=bool)
    if column.startswith("colour_"):
        a, b = column.split("_")[1:3]
        return (features[f"n_det_{a}"] > 0).to_numpy() & (features[f"n_det_{b}"] > 0).to_numpy()
    name, _, band = column.rpartition("_")
    if f"n_det_{band}" not in features or column in config.context_columns:
        return everywhere
    needed = config.min_points_per_band
    if name.startswith("harmonics_"):
        needed = max(needed, 2 * config.n_harmonics + 2)
    elif name.startswith("sn_"):
        needed = max(needed, transient.MIN_POINTS)
    enough = (features[f"n_det_{band}"] >= needed).to_numpy()
    side = NEEDS_LIMIT.get(name)
    if side:
        enough &= (features[f"n_non_det_{side}_{band}"] > 0).to_numpy()
    return enough


def report(path: str | Path, config: FeatureConfig) -> dict:
    """Decode, aggregate and extract features from the alerts under ``path``; what was computed."""
    decoded, files = read_alerts(path)
    reasons = Counter(r for r in decoded["quarantine_reason"].to_pylist() if r is not None)
    points, alerts = light_curves(decoded)
    detections = points[points["kind"] == DETECTION]
    context = latest_context(alerts)
    started = time.process_time()
    features = extract_features(detections, points[points["kind"] == UPPER_LIMIT], config, context)
    cpu = time.process_time() - started
    families = {}
    for family, columns in family_columns(config).items():
        defined = {c: _defined(features, c, config) for c in columns}
        families[family] = {
            "columns": len(columns),
            "defined_cells": int(sum(d.sum() for d in defined.values())),
            "nan_in_defined": int(sum(features.loc[d, c].isna().sum() for c, d in defined.items())),
            "nan_in_defined_by_column": {c: int(features.loc[d, c].isna().sum()) for c, d in defined.items()
                                         if features.loc[d, c].isna().any()},
        }
    per_survey = points.groupby("survey")
    bands = [b for b in config.output_bands if f"n_det_{b}" in features]
    return {
        "alerts_path": str(path), "files": len(files), "messages": decoded.num_rows,
        "alerts_by_survey": dict(Counter(alerts["survey"])),
        "quarantined": sum(reasons.values()), "quarantine_reasons": dict(reasons.most_common()),
        "objects_by_survey": per_survey["objectId"].nunique().to_dict(),
        "points_by_survey": {survey: {kind: int((group["kind"] == kind).sum()) for kind in (DETECTION, UPPER_LIMIT, FORCED)}
                             for survey, group in per_survey},
        "feature_version": FEATURE_VERSION, "min_points_per_band": config.min_points_per_band,
        "objects_with_features_by_survey": features["survey"].value_counts().to_dict(),
        "bands_with_enough_points": {b: int((features[f"n_det_{b}"] >= config.min_points_per_band).sum())
                                     for b in bands},
        "detections_per_object": _stats(features[[f"n_det_{b}" for b in bands]].sum(axis=1)),
        "extract_cpu_s": round(cpu, 3),
        "families": families,
        "ranges": {c: _stats(features[c]) for c in features.columns
                   if c not in ("objectId", "survey", "feature_version")},
    }


def _print(result: dict) -> None:
    print(f"alerts under {result['alerts_path']}: {result['files']} files, {result['messages']} messages, "
          f"alerts by survey {result['alerts_by_survey']}, quarantined {result['quarantined']}")
    for reason, count in list(result["quarantine_reasons"].items())[:TOP_REASONS]:
        print(f"  quarantined x{count}: {reason[:110]}")
    print(f"objects by survey {result['objects_by_survey']}; points {result['points_by_survey']}")
    print(f"features {result['feature_version']} (min {result['min_points_per_band']} detections in a band): "
          f"objects {result['objects_with_features_by_survey']}, bands with enough points "
          f"{result['bands_with_enough_points']}, detections per object {result['detections_per_object']}, "
          f"extract_features {result['extract_cpu_s']} s CPU")
    print(f"{'family':<14}{'columns':>8}{'defined cells':>15}{'NaN there':>11}  NaN columns")
    for family, info in result["families"].items():
        nan_columns = ", ".join(f"{c} x{n}" for c, n in info["nan_in_defined_by_column"].items())
        print(f"{family:<14}{info['columns']:>8}{info['defined_cells']:>15}{info['nan_in_defined']:>11}  "
              f"{nan_columns or '-'}")
    print(f"{'feature':<22}{'min':>12}{'median':>12}{'max':>12}")
    for column in HEADLINE:
        stats = result["ranges"].get(column)
        if stats and stats["min"] is not None:
            print(f"{column:<22}{stats['min']:>12.4g}{stats['median']:>12.4g}{stats['max']:>12.4g}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", required=True, help="directory of alert files (searched recursively)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a conf/features.yaml key (value parsed as YAML), e.g. min_points_per_band=4")
    parser.add_argument("--json", help="also write the full report (every column) to this file")
    args = parser.parse_args(argv)
    overrides = {}
    for text in args.overrides:
        key, _, value = text.partition("=")
        overrides[key] = yaml.safe_load(value)
    result = report(args.alerts, load_feature_config(overrides))
    _print(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
