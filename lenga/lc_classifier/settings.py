"""The ``lc_classifier`` section of conf/lenga.yaml, validated (a typo is an error naming the key),
and what a training set is made of (:class:`TrainingSetConfig`, simulated by
:mod:`lenga.lc_classifier.trainingset`, which this module never imports: inference reads these
settings without loading the simulator)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from lenga.config import PROJECT_ROOT, Config, ConfigError
from lenga.lc_classifier.model import XGBSettings
from lenga.survey import lsst, ztf

SECTION = "lc_classifier"
#: Surveys a training set can simulate.
SURVEYS = (ztf.SURVEY, lsst.SURVEY)
#: The share of each class's objects observed by ZTF (the rest by LSST).
DEFAULT_SURVEY_MIX = {"ztf": 0.7, "lsst": 0.3}


@dataclass(frozen=True)
class TrainingSetConfig:
    """What to simulate: ``n_per_class`` classifiable objects per leaf class, from ``seed``.

    ``baseline_days``: (min, max) length of an object's observed history, uniform;
    ``single_alert_fraction``: share of objects seen only through one alert's history (the survey's
    ``history_days`` before one detection) instead of their whole curve; ``survey_mix``: fraction of
    objects per survey; ``min_detections``/``detection_bands``: the stream's classification criterion.
    """

    n_per_class: int
    seed: int
    baseline_days: tuple[float, float] = (60.0, 730.0)
    single_alert_fraction: float = 0.0
    survey_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SURVEY_MIX))
    min_detections: int = 6
    detection_bands: tuple[str, ...] = ("g", "r")

    def __post_init__(self):
        if self.n_per_class < 1:
            raise ValueError(f"n_per_class must be >= 1, got {self.n_per_class}")
        lo, hi = self.baseline_days
        if not 30 <= lo <= hi:
            raise ValueError(f"baseline_days must be (min, max) with 30 <= min <= max, got {self.baseline_days}")
        if not 0 <= self.single_alert_fraction <= 1:
            raise ValueError(f"single_alert_fraction must be within [0, 1], got {self.single_alert_fraction}")
        unknown = set(self.survey_mix) - set(SURVEYS)
        if unknown or not self.survey_mix or min(self.survey_mix.values()) < 0:
            raise ValueError(f"survey_mix needs non-negative weights of {sorted(SURVEYS)}, got {self.survey_mix}")


@dataclass(frozen=True)
class TrainingSettings:
    """``lc_classifier.training``: sizes and seeds of the simulated sets, the labelled real set trained
    on beside them (``real_dir``, None: simulator only; each real object weighs ``real_weight``
    times the simulated objects of its class together, and a class's real objects carry at most
    ``real_max_share`` of its weight; ``real_folds`` object-grouped folds score it), and the xgboost
    settings."""

    n_per_class: int = 4000
    test_per_class: int = 600
    seed: int = 1
    test_seed: int = 2
    processes: int = 2
    baseline_days: tuple[float, float] = (60.0, 730.0)
    single_alert_fraction: float = 0.0
    survey_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SURVEY_MIX))
    real_dir: str | None = None
    real_weight: float = 0.05
    real_max_share: float = 0.5
    real_folds: int = 5
    xgboost: XGBSettings = field(default_factory=XGBSettings)

    def __post_init__(self):
        if self.real_weight <= 0:
            raise ConfigError(f"config.{SECTION}.training.real_weight: must be > 0, got {self.real_weight}")
        if not 0 < self.real_max_share <= 1:
            raise ConfigError(f"config.{SECTION}.training.real_max_share: must be in (0, 1], got {self.real_max_share}")
        if self.real_folds < 2:
            raise ConfigError(f"config.{SECTION}.training.real_folds: must be >= 2, got {self.real_folds}")
        if self.seed == self.test_seed:
            raise ConfigError(f"config.{SECTION}.training.test_seed: must differ from seed ({self.seed}): "
                              "the held-out set must be another sky")
        if self.processes < 1:
            raise ConfigError(f"config.{SECTION}.training.processes: must be >= 1")

    @property
    def real_path(self) -> Path | None:
        """The labelled real set; a relative path is taken from the checkout holding conf/."""
        if self.real_dir is None:
            return None
        path = Path(self.real_dir)
        return path if path.is_absolute() else PROJECT_ROOT / path

    def training_set(self, min_detections: int, bands: tuple[str, ...], held_out: bool = False) -> TrainingSetConfig:
        """The simulated training set, or the held-out one (another seed; whole curves only, so the
        held-out scores of every model version are measured on the same sky)."""
        try:
            return TrainingSetConfig(self.test_per_class if held_out else self.n_per_class,
                                     self.test_seed if held_out else self.seed, tuple(self.baseline_days),
                                     0.0 if held_out else self.single_alert_fraction,
                                     dict(self.survey_mix), min_detections, bands)
        except ValueError as error:
            raise ConfigError(f"config.{SECTION}.training: {error}") from error


@dataclass(frozen=True)
class LCClassifierSettings:
    """``lc_classifier``: whether the stream classifies, with which model, and who is classified."""

    enabled: bool = True
    model_dir: str = "models/lc_classifier"
    min_detections: int = 6
    detection_bands: tuple[str, ...] = ("g", "r")
    training: TrainingSettings = field(default_factory=TrainingSettings)

    def __post_init__(self):
        if self.min_detections < 1:
            raise ConfigError(f"config.{SECTION}.min_detections: must be >= 1, got {self.min_detections}")
        if not self.detection_bands or set(self.detection_bands) - set("ugrizy"):
            raise ConfigError(f"config.{SECTION}.detection_bands: a non-empty list of ugrizy bands, "
                              f"got {self.detection_bands}")

    @property
    def model_path(self) -> Path:
        """The model directory; a relative one is taken from the checkout holding conf/, not the CWD."""
        path = Path(self.model_dir)
        return path if path.is_absolute() else PROJECT_ROOT / path

    @classmethod
    def from_dict(cls, values: dict) -> LCClassifierSettings:
        values = dict(values)
        _check_keys(values, cls, SECTION)
        training = dict(values.pop("training", None) or {})
        _check_keys(training, TrainingSettings, f"{SECTION}.training")
        xgb_values = dict(training.pop("xgboost", None) or {})
        _check_keys(xgb_values, XGBSettings, f"{SECTION}.training.xgboost")
        if "baseline_days" in training:
            training["baseline_days"] = tuple(training["baseline_days"])
        if "detection_bands" in values:
            values["detection_bands"] = tuple(values["detection_bands"])
        return cls(**values, training=TrainingSettings(**training, xgboost=XGBSettings(**xgb_values)))

    @classmethod
    def from_config(cls, config: Config) -> LCClassifierSettings:
        return cls.from_dict(config.section(SECTION))


def _check_keys(values: dict, kind: type, where: str) -> None:
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"config.{where}: unknown key(s) {unknown}; known: {sorted(known)}")
