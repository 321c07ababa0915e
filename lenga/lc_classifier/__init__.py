"""Light-curve classifier: ALeRCE's hierarchical scheme (Sánchez-Sáez et al. 2021) with xgboost.

- :mod:`~lenga.lc_classifier.trainingset`: labelled light curves from the simulator, features by the
  stream's own code;
- :mod:`~lenga.lc_classifier.model`: top + per-branch models, P(leaf) = P(branch) P(leaf | branch);
- :mod:`~lenga.lc_classifier.train` / :mod:`~lenga.lc_classifier.evaluate`: training job, held-out report,
  model card, confusion matrices;
- :mod:`~lenga.lc_classifier.inference`: ``classify`` (the pure function) and the ``lc_classifications``
  schema; :mod:`~lenga.stream.steps.lc_classifier`: the aggregation query's object step;
- :mod:`~lenga.bench.reports.lc_classifier` (real alerts, domain shift) and :mod:`~lenga.bench.lc_classifier`.
"""
