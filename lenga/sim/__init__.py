"""Alert simulator: light-curve classes, survey observing models, cutouts and ZTF/LSST packets.

``simulate(SimConfig(...))`` yields :class:`SimAlert` messages (Kafka topic, key, value and truth);
``expected_counts`` and ``write_directory`` work on them. See lenga/sim/night.py.
"""

from lenga.sim.classes import LIGHT_CURVE_CLASSES
from lenga.sim.lightcurves import register
from lenga.sim.night import SimAlert, SimConfig, expected_counts, simulate, write_directory

__all__ = ["LIGHT_CURVE_CLASSES", "SimAlert", "SimConfig", "expected_counts", "register", "simulate", "write_directory"]
