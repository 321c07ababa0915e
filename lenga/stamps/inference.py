"""A trained stamp classifier applied to Arrow batches of the ``alerts`` table.

:class:`StampClassifier` holds one survey's network (weights loaded once) and turns a batch of
alerts into ``stamp_classifications`` rows: one row per class per classified alert with its
probability and ranking (1 = most probable), ALeRCE's probability-table layout. Alerts whose
cutouts are missing or unreadable are not classified; :meth:`StampClassifier.classify` returns
them with the reason so the caller can log them (a made-up classification would be a silent wrong
value). Pure pyarrow/numpy/torch: the Spark wrapper is ``udfs.stamp``.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from lenga.schema import described_field as _f
from lenga.stamps import CLASSES
from lenga.stamps.features import feature_names, model_inputs
from lenga.stamps.model import MODEL_FILE, WEIGHTS_FILE, StampCNN
from lenga.stamps.preprocess import CUTOUT_COLUMNS

#: Classifier names in ``stamp_classifications.classifier``, per survey.
CLASSIFIER_NAME = {"ztf": "stamp_classifier", "lsst": "stamp_classifier_lsst"}
#: Alerts per forward pass: 256 ran 1.5x faster per alert than 2,000 on one CPU thread here (the
#: four rotations' activations of a chunk stay in cache); measured with lenga.bench.stamps.
NETWORK_CHUNK = 256
#: Alert columns copied to every output row.
ID_COLUMNS = ("survey", "objectId", "candid", "night", "mjd", "ingest_batch_id")


#: ``stamp_classifications``: one row per class per classified alert.
STAMP_CLASSIFICATIONS = pa.schema([
    _f("survey", pa.string(), "'ztf' or 'lsst'"),
    _f("objectId", pa.string(), "survey object id (lenga.schema)"),
    _f("candid", pa.int64(), "detection whose cutouts were classified (ZTF candid, LSST diaSourceId)"),
    _f("night", pa.int32(), "observing night of the detection, yyyymmdd"),
    _f("mjd", pa.float64(), "MJD of the detection"),
    _f("classifier", pa.string(), "'stamp_classifier' (ZTF model) or 'stamp_classifier_lsst'"),
    _f("classifier_version", pa.string(), "version of the trained weights (models/<name>/model.json)"),
    _f("class_name", pa.string(), "AGN, SN, VS, asteroid or bogus"),
    _f("probability", pa.float32(), "probability of the class (softmax, temperature-calibrated)"),
    _f("ranking", pa.int32(), "1 for the most probable class of the alert, 5 for the least"),
    _f("ingest_batch_id", pa.int64(), "streaming micro-batch that ingested the alert"),
])
#: Columns a batch must have to be classified (features come from the survey's feature list).
REQUIRED = {
    survey: tuple(dict.fromkeys((*ID_COLUMNS, *CUTOUT_COLUMNS, "ra", "dec", *columns)))
    for survey, columns in {
        "ztf": ("isdiffpos", "magpsf", "sigmapsf", "diffmaglim", "fwhm", "elong", "classtar", "nbad", "srmag1", "sgscore1",
                "distpsnr1", "chinr", "sharpnr", "ndethist", "ncovhist"),
        "lsst": ("psfFlux", "psfFluxErr"),
    }.items()
}


@dataclass
class StampClassifier:
    """One survey's trained network, ready for batches of that survey's alerts."""

    model: StampCNN
    survey: str
    version: str
    #: Calibration temperature (Guo et al. 2017): probabilities are softmax(logits / temperature);
    #: ``model.json`` key ``temperature``, fitted on out-of-fold real predictions (1: uncalibrated).
    temperature: float = 1.0

    @property
    def name(self) -> str:
        return CLASSIFIER_NAME[self.survey]

    @classmethod
    def from_bytes(cls, weights: bytes, meta: dict) -> StampClassifier:
        """From a serialised state_dict and its ``model.json`` content (what the step broadcasts)."""
        survey = meta["survey"]
        if list(meta["classes"]) != list(CLASSES) or list(meta["features"]) != feature_names(survey):
            raise ValueError(f"stamp model {meta.get('version')} for {survey} was trained with classes "
                             f"{meta['classes']} and features {meta['features']}; this code has {list(CLASSES)} "
                             f"and {feature_names(survey)}: retrain it (jobs/train_stamp_classifier.py)")
        model = StampCNN(len(meta["features"]))
        model.load_state_dict(torch.load(io.BytesIO(weights), weights_only=True))
        model.eval()
        return cls(model, survey, str(meta["version"]), float(meta.get("temperature", 1.0)))

    @classmethod
    def load(cls, directory: str | Path) -> StampClassifier:
        weights, meta = read_model_files(directory)
        return cls.from_bytes(weights, meta)

    def predict(self, batch: pa.Table | pa.RecordBatch) -> tuple[np.ndarray, list[str | None]]:
        """Probabilities (N, 5) and, per alert, None or the reason it cannot be classified."""
        missing = sorted(set(REQUIRED[self.survey]) - set(batch.schema.names))
        if missing:
            raise KeyError(f"stamp classification needs alert columns {missing}")
        inputs = model_inputs(batch, self.survey)
        return self.probabilities(inputs.images, inputs.features), inputs.reasons

    def probabilities(self, images: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Calibrated softmax outputs (N, 5), through the network :data:`NETWORK_CHUNK` alerts at a time."""
        out = np.empty((len(images), len(CLASSES)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(images), NETWORK_CHUNK):
                sl = slice(start, start + NETWORK_CHUNK)
                logits = self.model(torch.from_numpy(images[sl]), torch.from_numpy(features[sl]))
                out[sl] = torch.softmax(logits / self.temperature, dim=1).numpy()
        return out

    def classify(self, batch: pa.Table | pa.RecordBatch) -> tuple[pa.Table, list[tuple[int, str]]]:
        """``stamp_classifications`` rows of the classifiable alerts, and (candid, reason) of the others."""
        probabilities, reasons = self.predict(batch)
        ok = np.array([r is None for r in reasons], dtype=bool)
        candids = batch.column("candid").to_pylist()
        skipped = [(candids[k], r) for k, r in enumerate(reasons) if r is not None]
        return long_rows(batch.filter(pa.array(ok)), probabilities[ok], self.name, self.version), skipped


def long_rows(batch: pa.Table | pa.RecordBatch, probabilities: np.ndarray, classifier: str, version: str) -> pa.Table:
    """One row per (alert, class): ids repeated, probability and rank of each class."""
    n, k = probabilities.shape
    take = pa.array(np.repeat(np.arange(n), k))
    ranking = np.empty_like(probabilities, dtype=np.int32)
    np.put_along_axis(ranking, np.argsort(-probabilities, axis=1, kind="stable"),
                      np.arange(1, k + 1, dtype=np.int32)[None, :], axis=1)
    columns = {name: pc.cast(pc.take(batch.column(name), take), STAMP_CLASSIFICATIONS.field(name).type)
               for name in ID_COLUMNS}
    columns.update(
        classifier=pa.array([classifier] * (n * k), pa.string()),
        classifier_version=pa.array([version] * (n * k), pa.string()),
        class_name=pa.array(list(CLASSES) * n, pa.string()),
        probability=pa.array(probabilities.reshape(-1), pa.float32()),
        ranking=pa.array(ranking.reshape(-1), pa.int32()),
    )
    return pa.table([columns[f.name] for f in STAMP_CLASSIFICATIONS], schema=STAMP_CLASSIFICATIONS)


def read_model_files(directory: str | Path) -> tuple[bytes, dict]:
    """The state_dict bytes and ``model.json`` of a trained model directory (clear error if absent)."""
    path = Path(directory)
    weights, meta = path / WEIGHTS_FILE, path / MODEL_FILE
    if not weights.is_file() or not meta.is_file():
        raise FileNotFoundError(f"no trained stamp model in {path} (need {WEIGHTS_FILE} and {MODEL_FILE}); "
                                f"train one with ./spark-submit.sh train_stamp_classifier or "
                                f"python jobs/train_stamp_classifier.py")
    return weights.read_bytes(), json.loads(meta.read_text())
