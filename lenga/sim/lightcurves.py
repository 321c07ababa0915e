"""Light-curve models of the simulated sky: one class per astrophysical population.

Every model is a function of time (MJD) and band (one letter of ``ugrizy``) returning the apparent AB
magnitude of the variable source, plus the magnitude the source has in the survey's *reference*
(template) image. Difference imaging only sees ``flux(t) - flux(reference)``, so both are needed:
a supernova is absent from the reference (``inf``), a variable star sits in it at its mean flux.

Parameters are drawn by ``sample`` from distributions taken from the literature (cited per class)
given a :class:`SampleContext` (when the survey looks and how deep), so a class never produces an
object the survey cannot see at all. Models are vectorised over epochs: one call evaluates the whole
light curve of an object.

The registry :data:`LIGHT_CURVE_CLASSES` maps a class name to its model; :func:`register` adds one
(the 15 ALeRCE light-curve classes of Sánchez-Sáez et al. 2021 will be added this way). Each model
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


class SupernovaIa(LightCurveModel):
    """Type Ia supernova with the Bazin et al. (2009) rise/fall flux model.

    ``f(t) = A exp(-(t - t0)/tau_fall) / (1 + exp(-(t - t0)/tau_rise))``, time-dilated by (1 + z).
    Peak absolute magnitude M_B = -19.3 with 0.12 mag intrinsic scatter after standardisation
    (Scolnic et al. 2018); redshifts follow a volume-limited p(z) ~ z^2 up to where the peak reaches
    the survey depth; rest-frame tau_rise 1.5-4 d and tau_fall 15-35 d bracket the Bazin fits to
    SNLS SNe Ia. Band offsets at peak and slower red declines approximate the Hsiao et al. (2007)
    template; the host is a galaxy whose absolute magnitude follows Sullivan et al. (2006).
    """

    name = "SNIa"
    stamp_class = "SN"
    host = "galaxy"
    PEAK_ABS_MAG = -19.3
    PEAK_ABS_MAG_SCATTER = 0.12
    Z_MIN = 0.01
    PEAK_COLOUR = {"u": 0.5, "g": 0.0, "r": 0.05, "i": 0.6, "z": 0.5, "y": 0.6}  # m_band - m_B at peak
    FALL_STRETCH = {"u": 0.8, "g": 1.0, "r": 1.3, "i": 1.5, "z": 1.6, "y": 1.7}
    HOST_ABS_MAG = (-20.5, 1.0)  # mean, sigma

    def sample(self, rng, ctx):
        z_max = max(redshift_at_distance_modulus(ctx.depth - self.PEAK_ABS_MAG), 2 * self.Z_MIN)
        z = (self.Z_MIN**3 + rng.random() * (z_max**3 - self.Z_MIN**3)) ** (1 / 3)  # p(z) ~ z^2
        t_start, t_end = ctx.window
        mu = float(distance_modulus(z))
        return {
            "z": z,
            "m_peak": self.PEAK_ABS_MAG + rng.normal(0, self.PEAK_ABS_MAG_SCATTER) + mu,
            # peak between 25 days before and 10 days after the window: the object evolves inside it
            "t_peak": rng.uniform(t_start - 25.0, t_end + 10.0),
            "tau_rise": rng.uniform(1.5, 4.0) * (1 + z),
            "tau_fall": rng.uniform(15.0, 35.0) * (1 + z),
            "host_mag": rng.normal(*self.HOST_ABS_MAG) + mu,
        }

    def magnitude(self, t, band, params):
        tau_rise = params["tau_rise"]
        tau_fall = params["tau_fall"] * band_values(self.FALL_STRETCH, band)
        # Bazin's maximum lies at t0 + tau_rise ln(tau_fall/tau_rise - 1): place it on t_peak and
        # normalise to unit flux there.
        lag = tau_rise * np.log(tau_fall / tau_rise - 1.0)
        dt = t - (params["t_peak"] - lag)

        def bazin(x):
            return np.exp(-x / tau_fall) / (1.0 + np.exp(-x / tau_rise))

        with np.errstate(over="ignore"):
            flux = bazin(dt) / bazin(lag)
        return params["m_peak"] + band_values(self.PEAK_COLOUR, band) + flux_to_mag(flux)

    def reference_magnitude(self, band, params):
        return np.full(band.shape, np.inf)


def _sawtooth_shape(n_harmonics: int) -> tuple[float, float]:
    """Min and max of the truncated sawtooth Fourier series, to normalise it to unit amplitude."""
    phase = np.linspace(0, 1, 4096, endpoint=False)
    k = np.arange(1, n_harmonics + 1)[:, None]
    s = (((-1.0) ** (k + 1)) * np.sin(2 * np.pi * k * phase) / k).sum(axis=0)
    return float(s.min()), float(s.max())


class RRLyrae(LightCurveModel):
    """Fundamental-mode (RRab) RR Lyrae: a truncated sawtooth Fourier series.

    Periods 0.4-0.8 d and g amplitudes 0.3-1 mag (Sesar et al. 2010, SDSS Stripe 82); amplitudes
    shrink to the red (A_r/A_g ~ 0.75). Absolute magnitudes M_g ~ 0.75 (M_V ~ 0.6, Catelan 2009);
    halo distances log-uniform in 4-60 kpc. Fast rise, slow decline: the series of a sawtooth,
    four harmonics, normalised so its peak-to-peak amplitude equals the drawn amplitude.
    """

    name = "RRL"
    stamp_class = "VS"
    host = "star"
    N_HARMONICS = 4
    ABS_MAG = {"u": 1.75, "g": 0.75, "r": 0.55, "i": 0.5, "z": 0.5, "y": 0.5}
    AMPLITUDE_RATIO = {"u": 1.1, "g": 1.0, "r": 0.75, "i": 0.6, "z": 0.55, "y": 0.5}
    DISTANCE_KPC = (4.0, 60.0)

    def sample(self, rng, ctx):
        d_kpc = np.exp(rng.uniform(*np.log(self.DISTANCE_KPC)))
        return {
            "period": rng.uniform(0.4, 0.8),
            "amplitude": rng.uniform(0.3, 1.0),
            "phase0": rng.random(),
            "mu": 5 * np.log10(d_kpc * 1e3) - 5,
        }

    def _mean_mag(self, band, params):
        return band_values(self.ABS_MAG, band) + params["mu"]

    def magnitude(self, t, band, params):
        lo, hi = _sawtooth_shape(self.N_HARMONICS)
        phase = (t / params["period"] + params["phase0"]) % 1.0
        k = np.arange(1, self.N_HARMONICS + 1)[:, None]
        s = (((-1.0) ** (k + 1)) * np.sin(2 * np.pi * k * phase) / k).sum(axis=0)
        # s rises slowly then drops: magnitude grows (fades) slowly and brightens fast.
        shape = (s - lo) / (hi - lo) - 0.5
        amp = params["amplitude"] * band_values(self.AMPLITUDE_RATIO, band)
        return self._mean_mag(band, params) + amp * shape

    def reference_magnitude(self, band, params):
        # A co-added template holds the phase-averaged flux.
        phase = np.linspace(0, 1, 256, endpoint=False) * params["period"]
        out = np.empty(band.shape)
        for b in np.unique(band):
            mags = self.magnitude(phase, np.full(phase.shape, b), params)
            out[band == b] = -2.5 * np.log10(np.mean(10 ** (-0.4 * mags)))
        return out


class QuasarDRW(LightCurveModel):
    """AGN/QSO variability as a damped random walk (Kelly, Bechtold & Siemiginowska 2009).

    The DRW is an Ornstein-Uhlenbeck process with damping time tau and asymptotic structure function
    SF_inf; MacLeod et al. (2010, SDSS Stripe 82) find log10(tau_rest/d) ~ N(2.4, 0.3) and
    log10(SF_inf/mag) ~ N(-0.65, 0.15) in r, with SF scaling as lambda_rest^-0.479. The process is
    realised once per object on a daily grid (exact OU update) covering every epoch, so the
    light curve is a deterministic function of time afterwards. Redshifts 0.3-2.5; the host is a
    galaxy centred on the nucleus.
    """

    name = "QSO"
    stamp_class = "AGN"
    host = "galaxy"
    LOG_TAU_REST = (2.4, 0.3)
    LOG_SF_INF = (-0.65, 0.15)
    SF_WAVELENGTH_SLOPE = -0.479
    REF_WAVELENGTH_NM = BAND_WAVELENGTH_NM["r"]
    GRID_STEP_DAYS = 1.0
    COLOUR = {"u": 0.3, "g": 0.15, "r": 0.0, "i": -0.1, "z": -0.15, "y": -0.2}  # m_band - m_r
    Z_RANGE = (0.3, 2.5)

    def sample(self, rng, ctx):
        z = rng.uniform(*self.Z_RANGE)
        tau = 10 ** rng.normal(*self.LOG_TAU_REST) * (1 + z)
        grid = np.arange(ctx.epochs.min() - 1.0, ctx.epochs.max() + 2.0, self.GRID_STEP_DAYS)
        decay = np.exp(-self.GRID_STEP_DAYS / tau)
        # x_i = decay x_{i-1} + sqrt(1 - decay^2) N(0, 1), started from the stationary N(0, 1)
        kicks = rng.normal(size=grid.size) * np.sqrt(1 - decay**2)
        kicks[0] = rng.normal()
        x = lfilter([1.0], [1.0, -decay], kicks)
        return {
            "z": z,
            "m_mean": rng.uniform(ctx.depth - 4.0, ctx.depth - 0.5),
            "sf_inf": 10 ** rng.normal(*self.LOG_SF_INF),
            "grid": grid,
            "walk": x,  # unit-variance OU realisation
            "host_mag": rng.uniform(0.0, 1.5) + ctx.depth - 2.5,
        }

    def _sf(self, band, params):
        lam_rest = band_values(BAND_WAVELENGTH_NM, band) / (1 + params["z"])
        ref_rest = self.REF_WAVELENGTH_NM / (1 + params["z"])
        return params["sf_inf"] * (lam_rest / ref_rest) ** self.SF_WAVELENGTH_SLOPE

    def magnitude(self, t, band, params):
        walk = np.interp(t, params["grid"], params["walk"])
        return self.reference_magnitude(band, params) + self._sf(band, params) / np.sqrt(2) * walk

    def reference_magnitude(self, band, params):
        return params["m_mean"] + band_values(self.COLOUR, band)


@functools.cache
def _skewed_sine_range(skew: float) -> tuple[float, float]:
    """Min and max of sin(x) + skew sin(2x), to normalise it to unit amplitude."""
    x = np.linspace(0, 2 * np.pi, 4096, endpoint=False)
    s = np.sin(x) + skew * np.sin(2 * x)
    return float(s.min()), float(s.max())


class LongPeriodVariable(LightCurveModel):
    """Mira-type long-period variable: a skewed sinusoid of period 100-500 d.

    Miras have visual amplitudes above 2.5 mag (GCVS definition; Mattei 1997); the amplitude here
    is drawn as 2.5-6 mag in g and shrinks strongly to the red (i ~ 0.4 of g). Very red colours
    (g-r ~ 1.5, r-i ~ 1.2) follow SDSS photometry of AGB stars. A second harmonic of 0.15 skews the
    cycle (faster rise than decline).
    """

    name = "LPV"
    stamp_class = "VS"
    host = "star"
    COLOUR = {"u": 4.0, "g": 1.5, "r": 0.0, "i": -1.2, "z": -1.8, "y": -2.1}  # m_band - m_r (mean)
    AMPLITUDE_RATIO = {"u": 1.1, "g": 1.0, "r": 0.6, "i": 0.4, "z": 0.3, "y": 0.25}
    SKEW = 0.15

    def sample(self, rng, ctx):
        return {
            "period": rng.uniform(100.0, 500.0),
            "amplitude": rng.uniform(2.5, 6.0),
            "phase0": rng.random(),
            "m_r": rng.uniform(ctx.depth - 8.0, ctx.depth - 3.0),
        }

    def magnitude(self, t, band, params):
        lo, hi = _skewed_sine_range(self.SKEW)
        x = 2 * np.pi * ((t / params["period"] + params["phase0"]) % 1.0)
        shape = (np.sin(x) + self.SKEW * np.sin(2 * x) - lo) / (hi - lo) - 0.5
        amp = params["amplitude"] * band_values(self.AMPLITUDE_RATIO, band)
        return self.reference_magnitude(band, params) + amp * shape

    def reference_magnitude(self, band, params):
        return params["m_r"] + band_values(self.COLOUR, band)


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


for _model in (SupernovaIa(), RRLyrae(), QuasarDRW(), LongPeriodVariable(), ConstantStar(), Asteroid()):
    register(_model)
