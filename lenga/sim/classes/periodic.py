"""Periodic branch: pulsating stars (Fourier light curves), eclipsing binaries and spotted rotators.

Pulsators (RRL, CEP, DSCT) and Periodic-Other are truncated Fourier series
``sum_k R_k cos(2 pi k phase + phi_k)`` normalised to the drawn peak-to-peak amplitude, with the
amplitude ratios R_k of each class's Fourier decomposition (Simon & Lee 1981); eclipsing binaries are
two uniform discs on a circular orbit (Russell 1912 geometry) plus ellipsoidal variation; long-period
variables are skewed sinusoids. Every star is in the reference image at its time-averaged flux.
"""

from __future__ import annotations

import functools
from abc import abstractmethod

import numpy as np

from lenga.sim.lightcurves import (
    BAND_WAVELENGTH_NM,
    LightCurveModel,
    Params,
    band_values,
    register,
    time_average_magnitude,
)

#: Phases at which a cycle is sampled to normalise a shape or average its flux.
PHASE_GRID = np.linspace(0.0, 1.0, 1024, endpoint=False)


class PeriodicModel(LightCurveModel):
    """A periodic star: ``magnitude = mean(band) + variation(phase, band)``; the reference image holds
    the cycle-averaged flux."""

    stamp_class = "VS"
    host = "star"
    COLOUR: dict[str, float]  # m_band - m_r of the mean magnitude

    def phase(self, t: np.ndarray, params: Params) -> np.ndarray:
        return (t / params["period"] + params["phase0"]) % 1.0

    @abstractmethod
    def variation(self, phase: np.ndarray, band: np.ndarray, params: Params) -> np.ndarray:
        """Magnitude offset from the mean magnitude at ``phase`` (positive = fainter)."""

    def mean_magnitude(self, band: np.ndarray, params: Params) -> np.ndarray:
        return params["m_r"] + band_values(self.COLOUR, band)

    def magnitude(self, t, band, params):
        return self.mean_magnitude(band, params) + self.variation(self.phase(t, params), band, params)

    def reference_magnitude(self, band, params):
        return time_average_magnitude(self, band, params, PHASE_GRID * params["period"])


class ShapedPeriodic(PeriodicModel):
    """A band-independent cycle shape of unit peak-to-peak amplitude, scaled per band:
    ``variation = amplitude * AMPLITUDE_RATIO[band] * shape(phase)``."""

    AMPLITUDE_RATIO: dict[str, float]  # amplitude in the band / amplitude in g

    @abstractmethod
    def shape(self, phase: np.ndarray, params: Params) -> np.ndarray:
        """Unit peak-to-peak light-curve shape (magnitudes, positive = fainter)."""

    def variation(self, phase, band, params):
        return params["amplitude"] * band_values(self.AMPLITUDE_RATIO, band) * self.shape(phase, params)


class FourierPulsator(ShapedPeriodic):
    """A Fourier-series light curve ``sum_k R_k cos(2 pi k phase + phi_k)``.

    The phases start from those of a sawtooth (fast rise, slow decline: phi_k = pi (k + 1) - pi / 2
    gives ``sum (-1)^(k+1) sin(2 pi k phase) R_k``) plus a Gaussian jitter ``PHASE_JITTER``; the
    amplitude ratios R_k are drawn from ``HARMONIC_RATIOS`` ranges (R_1 = 1). Apparent mean magnitudes
    are drawn between ``MAG_ABOVE_DEPTH`` mag above the survey depth (bright enough for the variation,
    not the mean, to pass 5 sigma on the difference image); ``COLOUR`` is m_band - m_r.
    """

    HARMONIC_RATIOS: tuple[tuple[float, float], ...]
    PHASE_JITTER = 0.0
    PERIOD_LOG10: tuple[float, float]  # uniform in log10(P/d)
    AMPLITUDE: tuple[float, float]  # peak-to-peak in g [mag]
    MAG_ABOVE_DEPTH = (7.0, 2.0)
    COLOUR: dict[str, float]

    def sample(self, rng, ctx):
        k = np.arange(1, len(self.HARMONIC_RATIOS) + 2)
        ratios = np.concatenate([[1.0], [rng.uniform(lo, hi) for lo, hi in self.HARMONIC_RATIOS]])
        phases = np.pi * (k + 1) - np.pi / 2 + rng.normal(0.0, self.PHASE_JITTER, k.size) * (k > 1)
        cycle = self._series(PHASE_GRID, {"ratios": ratios, "phases": phases})
        return {
            "period": self.sample_period(rng),
            "amplitude": rng.uniform(*self.AMPLITUDE),
            "phase0": rng.random(),
            "ratios": ratios,
            "phases": phases,
            "series_range": np.array([cycle.min(), cycle.max()]),  # to normalise the shape
            **self.sample_brightness(rng, ctx),
        }

    def sample_period(self, rng) -> float:
        return 10 ** rng.uniform(*self.PERIOD_LOG10)

    def sample_brightness(self, rng, ctx) -> Params:
        return {"m_r": rng.uniform(ctx.depth - self.MAG_ABOVE_DEPTH[0], ctx.depth - self.MAG_ABOVE_DEPTH[1])}

    @staticmethod
    def _series(phase: np.ndarray, params: Params) -> np.ndarray:
        k = np.arange(1, params["ratios"].size + 1)[:, None]
        return (params["ratios"][:, None] * np.cos(2 * np.pi * k * phase + params["phases"][:, None])).sum(axis=0)

    def shape(self, phase, params):
        lo, hi = params["series_range"]
        # the series rises slowly then drops: magnitude grows (fades) slowly and brightens fast
        return (self._series(phase, params) - lo) / (hi - lo) - 0.5


class RRLyrae(FourierPulsator):
    """Fundamental-mode (RRab) RR Lyrae: a truncated sawtooth Fourier series (R_k = 1/k).

    Periods 0.4-0.8 d and g amplitudes 0.3-1 mag (Sesar et al. 2010, SDSS Stripe 82); amplitudes
    shrink to the red (A_r/A_g ~ 0.75). Absolute magnitudes M_g ~ 0.75 (M_V ~ 0.6, Catelan 2009);
    halo distances log-uniform in 4-60 kpc. RRab Fourier ratios R21 ~ 0.5, R31 ~ 0.33 (Simon &
    Teays 1982) are the sawtooth's.
    """

    name = "RRL"
    HARMONIC_RATIOS = ((0.5, 0.5), (1 / 3, 1 / 3), (0.25, 0.25))
    PERIOD = (0.4, 0.8)  # uniform in P (Sesar et al. 2010 RRab periods)
    AMPLITUDE = (0.3, 1.0)
    ABS_MAG = {"u": 1.75, "g": 0.75, "r": 0.55, "i": 0.5, "z": 0.5, "y": 0.5}
    AMPLITUDE_RATIO = {"u": 1.1, "g": 1.0, "r": 0.75, "i": 0.6, "z": 0.55, "y": 0.5}
    DISTANCE_KPC = (4.0, 60.0)

    def sample_period(self, rng):
        return rng.uniform(*self.PERIOD)

    def sample_brightness(self, rng, ctx):
        d_kpc = np.exp(rng.uniform(*np.log(self.DISTANCE_KPC)))
        return {"mu": 5 * np.log10(d_kpc * 1e3) - 5}

    def mean_magnitude(self, band, params):
        return band_values(self.ABS_MAG, band) + params["mu"]


class Cepheid(FourierPulsator):
    """Classical (delta) Cepheid, fundamental mode.

    Periods: log10(P/d) uniform in 0.2-1.6 (1.6-40 d; Galactic Cepheids peak at 3-10 d, Pietrukowicz
    et al. 2021); V amplitudes 0.4-1.2 mag (Klagyivik & Szabados 2009); Fourier ratios R21 0.3-0.5,
    R31 0.1-0.3 with phase progression away from a pure sawtooth (Simon & Lee 1981; OGLE, Soszyński et
    al. 2008). Yellow supergiants seen through the disc's dust: g - r ~ 0.9.
    """

    name = "CEP"
    HARMONIC_RATIOS = ((0.3, 0.5), (0.1, 0.3), (0.03, 0.15))
    PHASE_JITTER = 0.4
    PERIOD_LOG10 = (0.2, 1.6)
    AMPLITUDE = (0.4, 1.2)
    COLOUR = {"u": 2.5, "g": 0.9, "r": 0.0, "i": -0.45, "z": -0.7, "y": -0.85}
    AMPLITUDE_RATIO = {"u": 1.2, "g": 1.0, "r": 0.7, "i": 0.55, "z": 0.45, "y": 0.4}


class DeltaScuti(FourierPulsator):
    """High-amplitude delta Scuti star (HADS): periods 0.04-0.25 d, g amplitudes 0.1-0.8 mag, nearly
    sinusoidal (R21 0.1-0.35, R31 < 0.15) (Breger 2000; Chang et al. 2013 catalogue); A-F stars,
    g - r ~ 0.2."""

    name = "DSCT"
    HARMONIC_RATIOS = ((0.1, 0.35), (0.0, 0.15))
    PHASE_JITTER = 0.4
    PERIOD_LOG10 = (np.log10(0.04), np.log10(0.25))
    AMPLITUDE = (0.1, 0.8)
    MAG_ABOVE_DEPTH = (7.5, 2.5)
    COLOUR = {"u": 1.2, "g": 0.2, "r": 0.0, "i": -0.1, "z": -0.15, "y": -0.2}
    AMPLITUDE_RATIO = {"u": 1.15, "g": 1.0, "r": 0.8, "i": 0.7, "z": 0.65, "y": 0.6}


class SpottedRotator(FourierPulsator):
    """Periodic-Other: ALeRCE's catch-all for periodic stars outside the named classes, mostly
    rotational variables (spotted BY Dra / RS CVn stars) and other low-amplitude pulsators.

    Rotation periods log-uniform 0.3-60 d, amplitudes 0.05-0.5 mag (Strassmeier 2009; ZTF periodic
    variables, Chen et al. 2020), sinusoid with a weak random second harmonic (two spot groups); spots
    evolve: the amplitude is modulated by 30% over 50-300 d. Cool dwarfs, g - r ~ 0.9, amplitude
    nearly grey (A_r/A_g ~ 0.85).
    """

    name = "Periodic-Other"
    HARMONIC_RATIOS = ((0.0, 0.3),)
    PHASE_JITTER = np.pi
    PERIOD_LOG10 = (np.log10(0.3), np.log10(60.0))
    AMPLITUDE = (0.05, 0.5)
    MAG_ABOVE_DEPTH = (7.5, 3.0)
    COLOUR = {"u": 2.3, "g": 0.9, "r": 0.0, "i": -0.3, "z": -0.45, "y": -0.55}
    AMPLITUDE_RATIO = {"u": 1.1, "g": 1.0, "r": 0.85, "i": 0.75, "z": 0.7, "y": 0.65}
    SPOT_LIFETIME = (50.0, 300.0)
    SPOT_MODULATION = 0.3

    def sample(self, rng, ctx):
        params = super().sample(rng, ctx)
        params["spot_period"] = rng.uniform(*self.SPOT_LIFETIME)
        params["spot_phase"] = rng.uniform(0, 2 * np.pi)
        return params

    def magnitude(self, t, band, params):
        modulation = 1.0 + self.SPOT_MODULATION * np.sin(2 * np.pi * t / params["spot_period"] + params["spot_phase"])
        return self.mean_magnitude(band, params) + self.variation(self.phase(t, params), band, params) * modulation


def circle_overlap(d: np.ndarray, r1: float, r2: float) -> np.ndarray:
    """Area of the intersection of two circles of radii r1, r2 whose centres are ``d`` apart."""
    d = np.asarray(d, dtype=float)
    small, big = min(r1, r2), max(r1, r2)
    with np.errstate(invalid="ignore", divide="ignore"):
        a1 = np.arccos(np.clip((d**2 + r1**2 - r2**2) / (2 * d * r1), -1, 1))
        a2 = np.arccos(np.clip((d**2 + r2**2 - r1**2) / (2 * d * r2), -1, 1))
        lens = r1**2 * a1 + r2**2 * a2 - 0.5 * np.sqrt(np.maximum(
            (-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2), 0.0))
    return np.where(d >= r1 + r2, 0.0, np.where(d <= big - small, np.pi * small**2, lens))


class EclipsingBinary(PeriodicModel):
    """Eclipsing binary: two uniform stellar discs on a circular orbit, plus ellipsoidal variation.

    Radii r1, r2 are in units of the separation; the sky-projected separation at orbital phase p is
    sqrt(sin^2 2 pi p + cos^2 i cos^2 2 pi p) (Russell 1912), the flux lost is the discs' overlap area
    times the eclipsed star's surface brightness. Contact (EW, W UMa; 50%: periods 0.25-0.6 d, r1
    0.35-0.45, near-equal temperatures) and detached/semi-detached systems (EA/EB; periods log-uniform
    0.6-20 d, r1 0.05-0.3), mass/radius ratio r2/r1 0.4-1 and cos i uniform below r1 + r2 so the system
    eclipses (Prša et al. 2011 Kepler EB periods; Chen et al. 2020 find half of ZTF's periodic stars
    are EW). The surface-brightness ratio J in r is 0.1-1 (EA) or 0.7-1 (EW) and, for black bodies in
    Wien's limit, scales to other bands as J^(lambda_r / lambda). Ellipsoidal variation of tidally
    distorted stars: fractional amplitude ~ (r1 + r2)^3 sin^2 i (Morris 1985) at twice the orbital
    frequency. The geometry, not a drawn amplitude, sets the depths.
    """

    name = "E"
    CONTACT_FRACTION = 0.5
    CONTACT_PERIOD = (0.25, 0.6)
    DETACHED_PERIOD_LOG10 = (np.log10(0.6), np.log10(20.0))
    CONTACT_R1 = (0.35, 0.45)
    DETACHED_R1 = (0.05, 0.3)
    RADIUS_RATIO = (0.4, 1.0)
    CONTACT_J = (0.7, 1.0)
    DETACHED_J = (0.1, 1.0)
    ELLIPSOIDAL_SCALE = 0.5
    MAG_ABOVE_DEPTH = (7.5, 2.5)
    COLOUR = {"u": 1.4, "g": 0.45, "r": 0.0, "i": -0.15, "z": -0.2, "y": -0.25}

    def sample(self, rng, ctx):
        contact = rng.random() < self.CONTACT_FRACTION
        r1 = rng.uniform(*(self.CONTACT_R1 if contact else self.DETACHED_R1))
        r2 = r1 * rng.uniform(*self.RADIUS_RATIO)
        return {
            "period": rng.uniform(*self.CONTACT_PERIOD) if contact else 10 ** rng.uniform(*self.DETACHED_PERIOD_LOG10),
            "phase0": rng.random(),
            "r1": r1,
            "r2": r2,
            "cos_i": rng.uniform(0.0, min(r1 + r2, 1.0) * 0.9),
            "j_r": rng.uniform(*(self.CONTACT_J if contact else self.DETACHED_J)),
            "m_r": rng.uniform(ctx.depth - self.MAG_ABOVE_DEPTH[0], ctx.depth - self.MAG_ABOVE_DEPTH[1]),
        }

    def relative_flux(self, phase: np.ndarray, band: np.ndarray, params: Params) -> np.ndarray:
        """Flux over the out-of-eclipse mean: eclipses of star 1 (phase 0) and star 2 (phase 0.5)."""
        r1, r2, cos_i = params["r1"], params["r2"], params["cos_i"]
        j = params["j_r"] ** (BAND_WAVELENGTH_NM["r"] / band_values(BAND_WAVELENGTH_NM, band))
        x = 2 * np.pi * phase
        d = np.sqrt(np.sin(x) ** 2 + (cos_i * np.cos(x)) ** 2)
        lost = circle_overlap(d, r1, r2)
        front_is_2 = np.cos(x) > 0  # near phase 0 star 2 passes in front of star 1
        total = np.pi * r1**2 + j * np.pi * r2**2
        eclipsed = np.where(front_is_2, lost, j * lost)
        ellipsoidal = self.ELLIPSOIDAL_SCALE * (r1 + r2) ** 3 * (1 - cos_i**2) * np.cos(2 * x)
        return (1.0 - eclipsed / total) * (1.0 - ellipsoidal)  # faintest at conjunctions (x = 0, pi)

    def variation(self, phase, band, params):
        return -2.5 * np.log10(self.relative_flux(phase, band, params))


@functools.cache
def _skewed_sine_range(skew: float) -> tuple[float, float]:
    """Min and max of sin(x) + skew sin(2x), to normalise it to unit amplitude."""
    s = np.sin(2 * np.pi * PHASE_GRID) + skew * np.sin(4 * np.pi * PHASE_GRID)
    return float(s.min()), float(s.max())


class LongPeriodVariable(ShapedPeriodic):
    """Long-period variable: Mira (50%) or semi-regular (SR) AGB star, a skewed sinusoid.

    Miras have visual amplitudes above 2.5 mag (GCVS definition; Mattei 1997) and periods 100-500 d:
    amplitude drawn as 2.5-6 mag in g. Semi-regulars have smaller amplitudes (0.5-2.5 mag) and periods
    30-200 d (Kiss et al. 1999). Amplitudes shrink strongly to the red (i ~ 0.4 of g). Very red colours
    (g - r ~ 1.5, r - i ~ 1.2) follow SDSS photometry of AGB stars. A second harmonic of 0.15 skews
    the cycle (faster rise than decline).
    """

    name = "LPV"
    COLOUR = {"u": 4.0, "g": 1.5, "r": 0.0, "i": -1.2, "z": -1.8, "y": -2.1}  # m_band - m_r (mean)
    AMPLITUDE_RATIO = {"u": 1.1, "g": 1.0, "r": 0.6, "i": 0.4, "z": 0.3, "y": 0.25}
    SKEW = 0.15
    MIRA_FRACTION = 0.5
    MIRA = {"period": (100.0, 500.0), "amplitude": (2.5, 6.0)}
    SEMIREGULAR = {"period": (30.0, 200.0), "amplitude": (0.5, 2.5)}

    def sample(self, rng, ctx):
        kind = self.MIRA if rng.random() < self.MIRA_FRACTION else self.SEMIREGULAR
        return {
            "period": rng.uniform(*kind["period"]),
            "amplitude": rng.uniform(*kind["amplitude"]),
            "phase0": rng.random(),
            "m_r": rng.uniform(ctx.depth - 8.0, ctx.depth - 3.0),
        }

    def shape(self, phase, params):
        lo, hi = _skewed_sine_range(self.SKEW)
        x = 2 * np.pi * phase
        return (np.sin(x) + self.SKEW * np.sin(2 * x) - lo) / (hi - lo) - 0.5


PERIODIC = (LongPeriodVariable(), EclipsingBinary(), DeltaScuti(), RRLyrae(), Cepheid(), SpottedRotator())
for _model in PERIODIC:
    register(_model)
