"""Spark wrapper of the stamp classifier: one ``mapInArrow`` over the selected alerts.

The trained models travel to the executors once, as a broadcast of their state_dict bytes and
``model.json`` (a few hundred kB); each Python worker builds the networks on its first batch and
keeps them in :data:`_CLASSIFIERS` (Spark reuses Python workers, ``spark.python.worker.reuse``),
so weights are loaded once per worker, not per batch. Every batch of a task then runs through
torch at once. ``torch.set_num_threads(threads)``: Spark already runs one task per core, so
``threads`` should be ``spark.task.cpus`` (1 by default); more threads per task would
oversubscribe the cores.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
from pyspark import Broadcast

from lenga.stamps.inference import STAMP_CLASSIFICATIONS, StampClassifier

log = logging.getLogger(__name__)

#: Networks built in this Python worker, by (survey, version, weights digest).
_CLASSIFIERS: dict[tuple[str, str, str], StampClassifier] = {}


def worker_classifier(weights: bytes, meta: dict) -> StampClassifier:
    """The network of ``weights``, built once per Python worker."""
    key = (meta["survey"], str(meta["version"]), hashlib.blake2b(weights, digest_size=8).hexdigest())
    if key not in _CLASSIFIERS:
        _CLASSIFIERS[key] = StampClassifier.from_bytes(weights, meta)
    return _CLASSIFIERS[key]


def classify_batches(models: Broadcast, threads: int) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function: alerts (any survey of ``models``) -> stamp_classifications rows.

    ``models`` broadcasts ``{survey: (state_dict bytes, model.json dict)}``. Alerts of another
    survey never reach a model (the step selects them out); unclassifiable alerts (missing or
    unreadable cutouts) are logged with their reason and produce no rows.
    """

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import torch

        torch.set_num_threads(threads)
        classifiers = {survey: worker_classifier(*files) for survey, files in models.value.items()}
        for batch in batches:
            for survey, classifier in classifiers.items():
                part = batch.filter(pc.equal(batch.column("survey"), survey))
                if part.num_rows == 0:
                    continue
                rows, skipped = classifier.classify(part)
                for candid, reason in skipped:
                    log.warning("stamp classifier: %s alert %s not classified: %s", survey, candid, reason)
                yield from rows.to_batches()

    return run


def spark_schema():
    """``stamp_classifications`` as a Spark schema (the mapInArrow output)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(STAMP_CLASSIFICATIONS)
