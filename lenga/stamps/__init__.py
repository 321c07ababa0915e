"""Stamp classifier: a rotation-invariant CNN on an alert's three cutouts plus metadata.

ALeRCE's fast classifier (Carrasco-Davis et al. 2021) sorts the first alert of an object into
AGN, SN, VS (variable star), asteroid or bogus from the science, template and difference cutouts
(centre-cropped to 21x21) and about twenty alert fields. Modules, one step each:

* :mod:`lenga.stamps.preprocess`: cutout bytes (gzipped or plain FITS) -> normalised 3x21x21 arrays;
* :mod:`lenga.stamps.features`: alert columns -> the metadata vector (same function for training
  and inference);
* :mod:`lenga.stamps.dataset`: simulated first detections of every registered class;
* :mod:`lenga.stamps.model`: the torch network; :mod:`lenga.stamps.train`: training, evaluation;
* :mod:`lenga.stamps.inference`: a trained model on Arrow batches of the ``alerts`` table;
* :mod:`lenga.stream.steps.stamps`: the stream's ``stamp_classifications`` step;
* :mod:`lenga.bench.stamps`: ``measure()`` for jobs/benchmark.py; :mod:`lenga.bench.reports.stamps`: a
  PNG grid of real cutouts with their predicted classes.
"""

#: Output classes, in the order of the network's logits: the stamp classes of the simulator
#: (lenga.sim.lightcurves.STAMP_CLASSES, checked equal by the tests; not imported, so inference on
#: a Spark executor does not load the simulator).
CLASSES = ("AGN", "SN", "VS", "asteroid", "bogus")

__all__ = ["CLASSES"]
