"""Survey observing models: when an object is observed, how deep, and what the photometry reports.

A :class:`SurveyModel` holds a survey's cadence, weather, depth, seeing and photometric zero points.
:func:`night_conditions` draws the site-wide state of each night (clear or lost to weather, depth
and seeing offsets), :func:`schedule` the epochs at which one object's field is observed, and
:func:`observe` turns true magnitudes into difference-image photometry with the 5-sigma detection
rule: epochs where ``|flux| >= 5 sigma`` are detections, the others are upper limits at the
epoch's limiting magnitude.

All fluxes are in nJy (AB: ``m = 31.4 - 2.5 log10(f / nJy)``), LSST's unit; ZTF's DN are derived
from each epoch's zero point where the ZTF schema needs them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lenga.photometry import AB_ZEROPOINT_NJY, MAG_ERR_PER_REL_FLUX

# Detection threshold of both surveys' difference-image source detection [sigma].
DETECTION_SIGMA = 5.0
# Fraction of a static point source's flux left by imperfect PSF matching and registration in the
# difference image, as a Gaussian sigma (Alard & Lupton 1998; Zackay, Ofek & Gal-Yam 2016).
SUBTRACTION_RESIDUAL_FRACTION = 0.01


def mag_to_njy(mag: np.ndarray | float) -> np.ndarray:
    """AB magnitude to flux in nJy (``inf`` magnitude gives 0)."""
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=float) - AB_ZEROPOINT_NJY))


def njy_to_mag(flux: np.ndarray | float) -> np.ndarray:
    """Flux in nJy to AB magnitude (of its absolute value, as survey pipelines report magpsf)."""
    return AB_ZEROPOINT_NJY - 2.5 * np.log10(np.abs(flux))


@dataclass(frozen=True)
class SurveyModel:
    """Observing characteristics of one survey.

    ``band_visit_probability``: chance that the object's field is observed in a band on a clear
    night (its inverse is the per-band cadence in nights). ``revisit_probability``: chance of a
    second visit in the same band ``revisit_gap_days`` later. ``depth`` is the median 5-sigma
    limiting magnitude per band, ``depth_scatter`` its epoch-to-epoch sigma. ``electron_zeropoint``
    is the AB magnitude giving one photo-electron per visit, which sets the source Poisson noise.
    """

    name: str
    bands: tuple[str, ...]
    band_visit_probability: dict[str, float]
    revisit_probability: float
    revisit_gap_days: tuple[float, float]
    weather_loss: float
    night_centre_utc: float  # local midnight as a fraction of the UTC day
    night_half_length_days: float
    depth: dict[str, float]
    depth_scatter: float
    seeing_fwhm_arcsec: float
    seeing_scatter_arcsec: float
    seeing_min_arcsec: float
    pixel_scale_arcsec: float
    electron_zeropoint: dict[str, float]
    history_days: float  # how far back an alert's history reaches
    season_days: float  # yearly observing season of a field: the Sun hides it the rest of the year
    dec_range: tuple[float, float]  # footprint in declination [deg]
    registration_sigma_pix: float  # astrometric misregistration of science vs template [pix]

    @property
    def main_depth(self) -> float:
        """Depth in the band the survey observes most (the SampleContext depth)."""
        main = max(self.band_visit_probability, key=self.band_visit_probability.get)
        return self.depth[main]


# ZTF (Bellm et al. 2019; Masci et al. 2019): public survey g and r every ~3 nights with a second
# visit 30-60 min later on part of the nights, a little i; 20.5 +- 0.4 mag median 30-s depth in
# r; 2" median seeing at 1.01"/px; ~35% of Palomar nights lost to weather. ZTF's 30-s zero point is
# ~26.3 mag per DN at a gain of 6.2 e-/DN, i.e. ~28.3 mag per electron. Alerts carry 30 days of
# history (Patterson et al. 2019). Palomar local midnight is ~08:00 UTC. A field stays observable at
# airmass < 2 for ~8 months a year (~240-day seasons in ZTF light curves; Bellm et al. 2019).
ZTF = SurveyModel(
    name="ztf",
    bands=("g", "r", "i"),
    band_visit_probability={"g": 0.38, "r": 0.42, "i": 0.06},
    revisit_probability=0.4,
    revisit_gap_days=(30 / 1440, 60 / 1440),
    weather_loss=0.35,
    night_centre_utc=8 / 24,
    night_half_length_days=4 / 24,
    depth={"g": 20.8, "r": 20.6, "i": 20.1},
    depth_scatter=0.4,
    seeing_fwhm_arcsec=2.0,
    seeing_scatter_arcsec=0.35,
    seeing_min_arcsec=1.2,
    pixel_scale_arcsec=1.01,
    electron_zeropoint={"g": 28.4, "r": 28.3, "i": 27.9},
    history_days=30.0,
    season_days=240.0,
    dec_range=(-30.0, 90.0),
    registration_sigma_pix=0.15,
)

# LSST (Ivezić et al. 2019): ugrizy, 30-s visits with single-visit 5-sigma depths u 23.9, g 25.0,
# r 24.7, i 24.0, z 23.3, y 22.1; visits split u 6%, g 9%, r 22%, i 22%, z 20%, y 21%, a field
# revisited every ~3-4 nights with a pair 33 min apart; 0.7" seeing at 0.2"/px; ~20% of
# Cerro Pachón nights lost. Zero points (one electron per 30-s visit) from the LSST throughputs.
# Alerts carry 12 months of diaSource history. Cerro Pachón local midnight is ~04:00 UTC. A WFD field
# is observed during a ~6.5-month season per year (Ivezić et al. 2019; LSST Science
# Collaboration 2017, Observing Strategy White Paper ch. 2).
LSST = SurveyModel(
    name="lsst",
    bands=("u", "g", "r", "i", "z", "y"),
    band_visit_probability={"u": 0.018, "g": 0.027, "r": 0.066, "i": 0.066, "z": 0.06, "y": 0.063},
    revisit_probability=0.6,
    revisit_gap_days=(30 / 1440, 40 / 1440),
    weather_loss=0.2,
    night_centre_utc=4 / 24,
    night_half_length_days=4 / 24,
    depth={"u": 23.9, "g": 25.0, "r": 24.7, "i": 24.0, "z": 23.3, "y": 22.1},
    depth_scatter=0.25,
    seeing_fwhm_arcsec=0.7,
    seeing_scatter_arcsec=0.12,
    seeing_min_arcsec=0.45,
    pixel_scale_arcsec=0.2,
    electron_zeropoint={"u": 30.2, "g": 32.0, "r": 31.8, "i": 31.5, "z": 31.1, "y": 30.3},
    history_days=365.0,
    season_days=200.0,
    dec_range=(-90.0, 10.0),
    registration_sigma_pix=0.1,
)

SURVEYS: dict[str, SurveyModel] = {s.name: s for s in (ZTF, LSST)}
# Length of the year that brings a field's observing season back [d] (Julian year).
YEAR_DAYS = 365.25


@dataclass(frozen=True)
class NightConditions:
    """Site-wide state of consecutive nights: integer MJD of each night, clear flag, depth offset."""

    night_mjd: np.ndarray
    clear: np.ndarray
    depth_offset: np.ndarray


def night_conditions(
    survey: SurveyModel, rng: np.random.Generator, first_night_mjd: int, n_nights: int
) -> NightConditions:
    """Weather for ``n_nights`` nights: a lost night is lost for every object (a site property)."""
    nights = first_night_mjd + np.arange(n_nights)
    clear = rng.random(n_nights) >= survey.weather_loss
    # Nights differ in transparency and sky brightness as a whole; half the depth scatter is nightly.
    offset = rng.normal(0.0, survey.depth_scatter / 2, n_nights)
    return NightConditions(night_mjd=nights, clear=clear, depth_offset=offset)


@dataclass(frozen=True)
class Epochs:
    """Observations of one object, sorted by time: MJD, band letter, 5-sigma depth, seeing FWHM."""

    mjd: np.ndarray
    band: np.ndarray
    depth: np.ndarray
    seeing: np.ndarray

    def __len__(self) -> int:
        return self.mjd.size


def schedule(survey: SurveyModel, rng: np.random.Generator, nights: NightConditions) -> Epochs:
    """Epochs at which one object's field is observed during ``nights``.

    Per clear night of the field's observing season and band, a visit with
    ``band_visit_probability``, at a random time in the dark hours, sometimes followed by a revisit;
    each epoch gets its own depth and seeing. The season (``season_days`` a year) is placed so that
    the last night is in it, at a uniform position: an object that sends alerts now is observable
    now, while its history may reach back into last year's gap.
    """
    bands = np.array(list(survey.band_visit_probability))
    p = np.array(list(survey.band_visit_probability.values()))
    n_nights = nights.night_mjd.size
    season_start = nights.night_mjd[-1] - rng.uniform(0.0, survey.season_days)
    in_season = (nights.night_mjd - season_start) % YEAR_DAYS < survey.season_days
    visited = (rng.random((n_nights, bands.size)) < p) & (nights.clear & in_season)[:, None]
    night_idx, band_idx = np.nonzero(visited)
    centre = nights.night_mjd[night_idx] + survey.night_centre_utc
    t = centre + rng.uniform(-survey.night_half_length_days, survey.night_half_length_days, night_idx.size)
    revisit = rng.random(night_idx.size) < survey.revisit_probability
    t_re = t[revisit] + rng.uniform(*survey.revisit_gap_days, revisit.sum())
    mjd = np.concatenate([t, t_re])
    band = np.concatenate([bands[band_idx], bands[band_idx[revisit]]])
    nightly = np.concatenate([nights.depth_offset[night_idx], nights.depth_offset[night_idx[revisit]]])
    depth = (
        np.array([survey.depth[b] for b in band], dtype=float)
        + nightly
        + rng.normal(0.0, survey.depth_scatter / 2, mjd.size)
    )
    seeing = np.maximum(
        rng.normal(survey.seeing_fwhm_arcsec, survey.seeing_scatter_arcsec, mjd.size), survey.seeing_min_arcsec
    )
    order = np.argsort(mjd, kind="stable")
    return Epochs(mjd=mjd[order], band=band[order], depth=depth[order], seeing=seeing[order])


@dataclass(frozen=True)
class Photometry:
    """Difference-image photometry of one object's epochs (fluxes in nJy).

    ``flux``/``flux_err``: PSF flux on the difference image and its 1-sigma error, measured at every
    epoch (what forced photometry reports). ``detected``: ``|flux| >= 5 sigma``. ``science_flux``:
    total flux at the position on the science image (template source + variation).
    """

    flux: np.ndarray
    flux_err: np.ndarray
    detected: np.ndarray
    science_flux: np.ndarray

    @property
    def magpsf(self) -> np.ndarray:
        return njy_to_mag(self.flux)

    @property
    def sigmapsf(self) -> np.ndarray:
        return MAG_ERR_PER_REL_FLUX * self.flux_err / np.abs(self.flux)


def observe(
    survey: SurveyModel,
    rng: np.random.Generator,
    epochs: Epochs,
    mag: np.ndarray,
    reference_mag: np.ndarray,
) -> Photometry:
    """Measure true magnitudes on difference images.

    The error combines sky noise, fixed by the 5-sigma depth (sigma_sky = f(m5) / 5), and the
    Poisson noise of everything at the position on the science image (source plus template source)
    converted with the band's electron zero point. The true difference flux is
    ``f(mag) - f(reference_mag)`` plus a subtraction residual of the template source
    (:data:`SUBTRACTION_RESIDUAL_FRACTION`), which the pipeline does not know about and so does not
    include in the reported error.
    """
    f_var = mag_to_njy(mag)
    f_ref = mag_to_njy(reference_mag)
    electrons_per_njy = np.array([mag_to_njy(survey.electron_zeropoint[b]) for b in epochs.band]) ** -1
    sigma_sky = mag_to_njy(epochs.depth) / DETECTION_SIGMA
    sigma = np.sqrt(sigma_sky**2 + f_var / electrons_per_njy)
    residual = rng.normal(0.0, 1.0, len(epochs)) * SUBTRACTION_RESIDUAL_FRACTION * f_ref
    flux = f_var - f_ref + residual + rng.normal(0.0, 1.0, len(epochs)) * sigma
    return Photometry(
        flux=flux,
        flux_err=sigma,
        detected=np.abs(flux) >= DETECTION_SIGMA * sigma,
        science_flux=f_var + rng.normal(0.0, 1.0, len(epochs)) * sigma,
    )
