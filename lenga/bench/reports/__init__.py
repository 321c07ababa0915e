"""Reports of the science on the genuine alerts beside the repository (``python -m lenga.bench.reports.<name>``)."""
