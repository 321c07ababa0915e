"""How far real light curves lie from the simulated training set, feature by feature.

Two measures, both on the model's input features:

- :func:`lenga.lc_classifier.inference.outside_fraction`: per object, the share of its finite
  features outside the training set's 1st-99th percentile range (``metadata["feature_ranges"]``),
  the out-of-domain score of every classification;
- :func:`class_distances`: per class with enough real objects, the two-sample Kolmogorov-Smirnov
  statistic between the real objects' values of each feature and the simulated objects' of the same
  class (0: same distribution, 1: disjoint), summarised by its median over features and the
  features that differ most. The training job reports it for the simulated sets before and after a
  change of the simulator, so a calibration of the simulator is judged by numbers.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

#: Classes with fewer real objects get no distance (a KS statistic of a handful of values is noise).
MIN_REAL_OBJECTS = 8
#: Features listed as the farthest per class.
WORST = 5


def class_distances(real: pd.DataFrame, sim: pd.DataFrame, features: list[str]) -> dict[str, dict]:
    """Per class with >= :data:`MIN_REAL_OBJECTS` real objects: ``median_ks`` over the features with
    finite values on both sides, ``n_real``, and ``farthest`` (feature -> KS, the :data:`WORST` largest)."""
    out = {}
    for name, group in real.groupby("class_name"):
        if len(group) < MIN_REAL_OBJECTS:
            continue
        simulated = sim[sim["class_name"] == name]
        statistics = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for feature in features:
                a = group[feature].to_numpy(dtype=np.float64)
                b = simulated[feature].to_numpy(dtype=np.float64)
                a, b = a[np.isfinite(a)], b[np.isfinite(b)]
                if len(a) >= MIN_REAL_OBJECTS and len(b) >= MIN_REAL_OBJECTS:
                    statistics[feature] = float(ks_2samp(a, b).statistic)
        if statistics:
            worst = sorted(statistics.items(), key=lambda item: -item[1])[:WORST]
            out[str(name)] = {"n_real": len(group), "median_ks": float(np.median(list(statistics.values()))),
                              "farthest": {k: round(v, 3) for k, v in worst}}
    return out
