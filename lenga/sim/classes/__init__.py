"""The 15 light-curve classes of ALeRCE's classifier (Sánchez-Sáez et al. 2021, AJ 161, 141), as
simulator models, one module per branch of its taxonomy:

- :mod:`~lenga.sim.classes.transients`: SNIa, SNIbc, SNII, SLSN (parametric supernova light curves);
- :mod:`~lenga.sim.classes.stochastic`: QSO, AGN, Blazar, CV/Nova, YSO (red-noise processes, outbursts,
  dips);
- :mod:`~lenga.sim.classes.periodic`: LPV, E, DSCT, RRL, CEP, Periodic-Other (Fourier templates and
  eclipse geometry).

Importing this package registers every model in :data:`LIGHT_CURVE_CLASSES` (the registry of
:mod:`lenga.sim.lightcurves`, which imports none of them): read the registry from here.
"""

from lenga.sim.classes import periodic, stochastic, transients  # noqa: F401  (each registers its models)
from lenga.sim.lightcurves import LIGHT_CURVE_CLASSES
from lenga.taxonomy import ALERCE_CLASSES

__all__ = ["ALERCE_CLASSES", "LIGHT_CURVE_CLASSES"]
