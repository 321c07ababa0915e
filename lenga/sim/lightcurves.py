"""Light-curve models of the simulated sky: one class per astrophysical population.

Every model is a function of time (MJD) and band (one letter of ``ugrizy``) returning the apparent AB
magnitude of the variable source, plus the magnitude the source has in the survey's *reference*
(template) image. Difference imaging only sees ``flux(t) - flux(reference)``, so both are needed:
a supernova is absent from the reference (``inf``), a variable star sits in it at its mean flux.

Parameters are drawn by ``sample`` from distributions taken from the literature (cited per class)
given a :class:`SampleContext` (when the survey looks and how deep), so a class never produces an
object the survey cannot see at all. Models are vectorised over epochs: one call evaluates the whole
light curve of an object.

The registry :data:`LIGHT_CURVE_CLASSES` maps a class name to its model; :func:`register` adds one.
The physical classes are plug-ins that register themselves: import :mod:`lenga.sim.classes` for the
full registry.
It holds the 15 light-curve classes of ALeRCE (Sánchez-Sáez et al. 2021; models in
:mod:`lenga.sim.classes`, one module per branch) plus a constant star and an asteroid, which reach
the alert stream but are not light-curve classes. Each model
also names the ``stamp_class`` (AGN, SN, VS, asteroid, bogus; Carrasco-Davis et al. 2021) its
cutouts illustrate, what static ``host`` the template holds, and where on the sky it lives.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from astropy.cosmology import Planck18
from scipy.signal import lfilter

Params = dict[str, float | np.ndarray]

# Effective wavelengths [nm] of the LSST ugrizy filters (Ivezić et al. 2019, Table 2); ZTF g/r/i are
# within a few per cent, which is all the band-dependent scalings below need.
BAND_WAVELENGTH_NM = {"u": 367.0, "g": 482.0, "r": 622.0, "i": 755.0, "z": 869.0, "y": 971.0}
BANDS = tuple(BAND_WAVELENGTH_NM)

# Stamp classes of the ALeRCE stamp classifier (Carrasco-Davis et al. 2021).
STAMP_CLASSES = ("AGN", "SN", "VS", "asteroid", "bogus")

# Redshift grid for the distance modulus: Planck18.distmod is evaluated once and interpolated, an
# astropy call per object would dominate the simulator's time.
_Z_GRID = np.geomspace(1e-3, 3.0, 2048)


@functools.cache
def _distmod_grid() -> np.ndarray:
    return Planck18.distmod(_Z_GRID).value


def distance_modulus(z: np.ndarray | float) -> np.ndarray:
    """Distance modulus mu(z) in the Planck 2018 cosmology (Planck Collaboration 2020)."""
    return np.interp(z, _Z_GRID, _distmod_grid())


def redshift_at_distance_modulus(mu: float) -> float:
    """Inverse of :func:`distance_modulus` on its grid (monotonic, so a plain interpolation)."""
    return float(np.interp(mu, _distmod_grid(), _Z_GRID))


def band_values(table: dict[str, float], band: np.ndarray) -> np.ndarray:
    """Look a per-band constant up for an array of band letters (clear error on an unknown band)."""
    unknown = set(np.unique(band)) - set(table)
    if unknown:
        raise ValueError(f"unknown band(s) {sorted(unknown)}; expected one of {sorted(table)}")
    out = np.empty(band.shape, dtype=float)
    for name, value in table.items():
        out[band == name] = value
    return out


def flux_to_mag(flux: np.ndarray) -> np.ndarray:
    """Magnitude of a relative flux; zero or negative flux (no source) maps to ``inf``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, -2.5 * np.log10(np.where(flux > 0, flux, 1.0)), np.inf)


@dataclass(frozen=True)
class SampleContext:
    """What a model needs to draw parameters that the survey can actually observe.

    ``epochs`` are the MJDs the survey looks at the object, ``window`` the (start, end) MJD of the
    nights whose alerts are emitted, ``depth`` the survey's typical 5-sigma limit in its main band.
    """

    epochs: np.ndarray
    window: tuple[float, float]
    depth: float


class LightCurveModel(ABC):
    """A population of sources: parameter draws and magnitude as a function of time and band."""

    name: str
    stamp_class: str
    host: str  # "galaxy" (Sérsic host), "star" (the source itself is in the template) or "none"
    sky: str = "uniform"  # where objects are placed: "uniform" or "ecliptic"

    @abstractmethod
    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> Params:
        """Draw one object's parameters."""

    @abstractmethod
    def magnitude(self, t: np.ndarray, band: np.ndarray, params: Params) -> np.ndarray:
        """Apparent AB magnitude at MJD ``t`` in ``band`` (``inf`` where the source is absent)."""

    @abstractmethod
    def reference_magnitude(self, band: np.ndarray, params: Params) -> np.ndarray:
        """Apparent AB magnitude of the source in the reference image (``inf`` if absent)."""


def time_average_magnitude(model: LightCurveModel, band: np.ndarray, params: Params, t: np.ndarray) -> np.ndarray:
    """Magnitude of the mean flux of ``model`` over times ``t``, per band.

    A co-added reference image holds a variable source at its time-averaged flux (over a cycle for
    a periodic source), which is what difference imaging subtracts.
    """
    out = np.empty(band.shape)
    for b in np.unique(band):
        mags = model.magnitude(t, np.full(t.shape, b), params)
        out[band == b] = -2.5 * np.log10(np.mean(10 ** (-0.4 * mags)))
    return out


def ou_walk(rng: np.random.Generator, epochs: np.ndarray, tau: float, max_step: float = 1.0
            ) -> tuple[np.ndarray, np.ndarray]:
    """A unit-variance Ornstein-Uhlenbeck (damped random walk) realisation on a regular grid.

    The grid covers ``epochs`` with a step of at most ``max_step`` and tau / 5, updated exactly
    (``x_i = d x_(i-1) + sqrt(1 - d^2) N(0, 1)``, d = exp(-step / tau); Gillespie 1996) from the
    stationary N(0, 1); the light curve is then a deterministic interpolation of it.
    """
    step = min(max_step, tau / 5.0)
    grid = np.arange(epochs.min() - step, epochs.max() + 2 * step, step)
    decay = np.exp(-step / tau)
    kicks = rng.normal(size=grid.size) * np.sqrt(1 - decay**2)
    kicks[0] = rng.normal()
    return grid, lfilter([1.0], [1.0, -decay], kicks)


class ConstantStar(LightCurveModel):
    """A non-variable star. It reaches the alert stream only through subtraction residuals.

    Difference imaging of a bright star leaves residuals of about a per cent of its flux
    (PSF-matching and astrometric errors; Alard & Lupton 1998, Zackay et al. 2016), which the survey
    model adds; these are the "bogus" alerts the real/bogus and stamp classifiers learn to reject.
    Magnitudes are drawn 4.5-8 mag above the survey depth, where such residuals pass 5 sigma.
    Colours of a G/K dwarf (Covey et al. 2007).
    """

    name = "star"
    stamp_class = "bogus"
    host = "star"
    COLOUR = {"u": 1.6, "g": 0.5, "r": 0.0, "i": -0.15, "z": -0.2, "y": -0.25}  # m_band - m_r

    def sample(self, rng, ctx):
        return {"m_r": rng.uniform(ctx.depth - 8.0, ctx.depth - 4.5)}

    def magnitude(self, t, band, params):
        return self.reference_magnitude(band, params)

    def reference_magnitude(self, band, params):
        return params["m_r"] + band_values(self.COLOUR, band)


class Asteroid(LightCurveModel):
    """A main-belt asteroid: seen once, at one epoch, near the ecliptic, absent from the template.

    It moves ~0.25 deg/day, so at any other epoch it is elsewhere: the light curve is its magnitude
    at the passage epoch ``t_pass`` and ``inf`` at every other time. Colours are the mean of S and C
    types in SDSS (DeMeo & Carry 2013); brightness uniform between 3 and 0.3 mag above the depth.
    ``t_pass`` is one of the survey's epochs inside the window. Ecliptic latitudes follow the
    main-belt inclination spread (sigma ~ 8 deg).
    """

    name = "asteroid"
    stamp_class = "asteroid"
    host = "none"
    sky = "ecliptic"
    COLOUR = {"u": 1.9, "g": 0.55, "r": 0.0, "i": -0.15, "z": -0.2, "y": -0.25}  # m_band - m_r
    ECLIPTIC_LATITUDE_SIGMA_DEG = 8.0
    PASSAGE_TOLERANCE_DAYS = 1e-6

    def sample(self, rng, ctx):
        t_start, t_end = ctx.window
        inside = ctx.epochs[(ctx.epochs >= t_start) & (ctx.epochs < t_end)]
        if inside.size == 0:
            raise ValueError("an asteroid needs at least one epoch inside the alert window")
        return {"t_pass": float(rng.choice(inside)), "m_r": rng.uniform(ctx.depth - 3.0, ctx.depth - 0.3)}

    def magnitude(self, t, band, params):
        present = np.abs(t - params["t_pass"]) < self.PASSAGE_TOLERANCE_DAYS
        return np.where(present, params["m_r"] + band_values(self.COLOUR, band), np.inf)

    def reference_magnitude(self, band, params):
        return np.full(band.shape, np.inf)


LIGHT_CURVE_CLASSES: dict[str, LightCurveModel] = {}


def register(model: LightCurveModel) -> LightCurveModel:
    """Add a model to :data:`LIGHT_CURVE_CLASSES` (name clash is an error, not a silent override)."""
    if model.name in LIGHT_CURVE_CLASSES:
        raise ValueError(f"light-curve class {model.name!r} is already registered")
    if model.stamp_class not in STAMP_CLASSES:
        raise ValueError(f"{model.name}: stamp_class {model.stamp_class!r} not in {STAMP_CLASSES}")
    LIGHT_CURVE_CLASSES[model.name] = model
    return model


for _model in (ConstantStar(), Asteroid()):
    register(_model)
