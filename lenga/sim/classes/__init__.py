"""The 15 light-curve classes of ALeRCE's classifier (Sánchez-Sáez et al. 2021, AJ 161, 141), as
simulator models, one module per branch of its taxonomy:

- :mod:`~lenga.sim.classes.transients`: SNIa, SNIbc, SNII, SLSN (parametric supernova light curves);
- :mod:`~lenga.sim.classes.stochastic`: QSO, AGN, Blazar, CV/Nova, YSO (red-noise processes, outbursts,
  dips);
- :mod:`~lenga.sim.classes.periodic`: LPV, E, DSCT, RRL, CEP, Periodic-Other (Fourier templates and
  eclipse geometry).

Importing this package registers every model in :data:`lenga.sim.lightcurves.LIGHT_CURVE_CLASSES`.
"""

#: ALeRCE's hierarchy: top-level branch -> its leaf classes (Sánchez-Sáez et al. 2021, fig. 2). Defined
#: before the models are imported: lenga.sim.lightcurves reads it while the models register.
ALERCE_CLASSES: dict[str, tuple[str, ...]] = {
    "Transient": ("SNIa", "SNIbc", "SNII", "SLSN"),
    "Stochastic": ("QSO", "AGN", "Blazar", "CV/Nova", "YSO"),
    "Periodic": ("LPV", "E", "DSCT", "RRL", "CEP", "Periodic-Other"),
}

import lenga.sim.lightcurves  # noqa: E402,F401  (the base classes; it imports the branch modules below)
from lenga.sim.classes import periodic, stochastic, transients  # noqa: E402,F401

__all__ = ["ALERCE_CLASSES"]
