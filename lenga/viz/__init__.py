"""Looking at the lake: the plots behind ``./spark-submit.sh plot`` and the notebooks.

* :mod:`lenga.viz.read`: one object's rows (light curve, an alert's cutouts, both classifiers'
  latest probabilities) read with deltalake/polars, no Spark needed;
* :mod:`lenga.viz.cutouts`: cutout bytes (ZTF gzipped FITS, LSST FITS) -> images, display limits;
* :mod:`lenga.viz.plots`: matplotlib figures built from those (pure: data in, ``Figure`` out).
"""
