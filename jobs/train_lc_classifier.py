"""Train the light-curve classifier on simulated light curves and write it with its card and report.

    ./spark-submit.sh train_lc_classifier                              the shipped model (conf/lenga.yaml)
    ./spark-submit.sh train_lc_classifier --n-per-class 200 --out /tmp/lcc   a small one
    ./spark-submit.sh train_lc_classifier --cache build/lc_classifier   keep/reuse the simulated sets
    ./spark-submit.sh train_lc_classifier --real none                  the simulator only

Sizes, seeds and xgboost settings come from ``lc_classifier.training`` (``--set`` works as for any
job); the options below override the usual ones. The labelled real set (``training.real_dir``, by
default ``../shared/data/real``) is trained on beside the simulator and scores the model by
cross-validation (see lenga.lc_classifier.train). No Spark session: simulation and features run in
``training.processes`` worker processes (see lenga.lc_classifier.train).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

from lenga.config import add_config_arguments, load_config
from lenga.features.config import load_feature_config
from lenga.lc_classifier.realset import RealSetError
from lenga.lc_classifier.settings import LCClassifierSettings
from lenga.lc_classifier.train import train


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--out", help="model directory (default: lc_classifier.model_dir)")
    parser.add_argument("--n-per-class", type=int, help="training objects per class")
    parser.add_argument("--test-per-class", type=int, help="held-out objects per class")
    parser.add_argument("--seed", type=int, help="training seed (the held-out seed is training.test_seed)")
    parser.add_argument("--processes", type=int, help="worker processes")
    parser.add_argument("--cache", help="directory caching the simulated feature sets")
    parser.add_argument("--real", help="labelled real set trained on beside the simulator, or 'none' "
                                       "(default: lc_classifier.training.real_dir)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    config = load_config(args.conf, args.overrides)
    settings = LCClassifierSettings.from_config(config)
    changes = {k: v for k, v in (("n_per_class", args.n_per_class), ("test_per_class", args.test_per_class),
                                 ("seed", args.seed), ("processes", args.processes)) if v is not None}
    if args.real is not None:
        changes["real_dir"] = None if args.real.lower() == "none" else str(Path(args.real).resolve())
    settings = dataclasses.replace(settings, training=dataclasses.replace(settings.training, **changes))
    command = "./spark-submit.sh train_lc_classifier " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        report = train(settings, load_feature_config(config.section("features")), args.out or settings.model_path,
                       command.strip(), args.cache, log=lambda text: print(f"[lenga] {text}", flush=True))
    except RealSetError as error:
        print(f"[lenga] error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    print(f"[lenga] held-out macro F1: top {report['top']['macro_f1']:.3f}, leaf {report['leaf']['macro_f1']:.3f}; "
          f"written to {args.out or settings.model_path}")


if __name__ == "__main__":
    main()
