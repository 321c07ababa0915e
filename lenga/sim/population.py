"""A simulated population: objects with a class, a sky position, a schedule and photometry.

This is the survey-independent truth that the serialisers (:mod:`lenga.sim.ztf`,
:mod:`lenga.sim.lsst`) turn into alert packets. Every per-epoch quantity that appears in an alert
(flux, error, reliability score, image position, identifiers) is drawn here once, so a detection
carries the same values in the alert it triggered and in every later alert's history.

Identifiers are assigned in time order over the whole population of a survey: source ids
(ZTF ``candid``, LSST ``diaSourceId``) grow with the observation time, object ids with the time of
the object's first detection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from astropy import units as u
from astropy.coordinates import BarycentricMeanEcliptic, SkyCoord

from lenga.sim import artifacts, cutouts
from lenga.sim.lightcurves import Asteroid, LightCurveModel, Params, SampleContext
from lenga.sim.survey import Epochs, NightConditions, Photometry, SurveyModel, mag_to_njy, observe, schedule

# Real/bogus scores: real sources score high, subtraction artefacts low (Duev et al. 2019 show
# the ZTF deep real/bogus drb is bimodal at ~0 and ~1).
REAL_SCORE_RANGE = (0.75, 1.0)
BOGUS_SCORE_RANGE = (0.0, 0.6)
# Host galaxies: Sérsic index 0.5-4, half-light radius 1-4 arcsec, ellipticity up to 0.6.
HOST_SERSIC_N = (0.5, 4.0)
HOST_R_EFF_ARCSEC = (1.0, 4.0)
HOST_MAX_ELLIP = 0.6
# Supernovae sit at 0.2-1.5 half-light radii from their host's centre.
SN_HOST_OFFSET_REFF = (0.2, 1.5)


@dataclass
class SimObject:
    """One simulated object of one survey, with its whole observed light curve."""

    survey: SurveyModel
    index: int
    class_name: str
    model: LightCurveModel
    params: Params
    ra: float
    dec: float
    epochs: Epochs
    mag: np.ndarray  # true magnitude of the source per epoch (inf where absent)
    reference_mag: np.ndarray
    phot: Photometry
    reliability: np.ndarray  # real/bogus score per epoch
    host_offset_pix: tuple[float, float]  # host centre relative to the source [pixels]
    host_mag: float  # inf without host
    seed: tuple[int, ...]  # entropy for serialiser-side draws: np.random.default_rng((*seed, k))
    object_id: int = -1  # rank by first detection (the serialiser formats it)
    source_id: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # -1: not detected
    _host_image: np.ndarray | None = None
    cache: dict = field(default_factory=dict)  # serialiser-side per-epoch records

    @property
    def detected(self) -> np.ndarray:
        return self.phot.detected

    def first_detection_mjd(self) -> float:
        det = self.epochs.mjd[self.phot.detected]
        return float(det[0]) if det.size else np.inf

    @property
    def counterpart(self) -> str:
        """What the catalogues hold at the position: "galaxy" (a host), "star" (the source itself,
        or the star behind a dipole or saturation artefact) or "none"."""
        if isinstance(self.model, artifacts.Bogus):
            return "star" if self.artifact in artifacts.ON_STAR else "none"
        return self.model.host

    @property
    def artifact(self) -> str | None:
        """The artefact kind of a :class:`lenga.sim.artifacts.Bogus` object, else None."""
        bogus = isinstance(self.model, artifacts.Bogus) and "artifact" in self.params
        return artifacts.Bogus.kind(self.params) if bogus else None

    def host_image(self) -> np.ndarray | None:
        """The host galaxy in nJy/pixel, rendered once with the median seeing (None if no host)."""
        if self.model.host != "galaxy":
            return None
        if self._host_image is None:
            scale = self.survey.pixel_scale_arcsec
            cx, cy = cutouts.centre()
            p = self.params
            self._host_image = cutouts.sersic_galaxy(
                flux=float(mag_to_njy(self.host_mag)),
                r_eff_pix=float(p["host_r_eff_arcsec"]) / scale,
                n=float(p["host_sersic_n"]),
                ellip=float(p["host_ellip"]),
                theta=float(p["host_theta"]),
                x0=cx + self.host_offset_pix[0],
                y0=cy + self.host_offset_pix[1],
                psf_fwhm_pix=self.survey.seeing_fwhm_arcsec / scale,
            )
        return self._host_image

    def stamps(self, i: int) -> cutouts.Triplet:
        """Science, template and difference images of epoch ``i`` in nJy/pixel (the survey's
        serialiser converts units and packs them): the epoch's seeing and depth set the PSF and the
        sky noise; the seed makes them reproducible. Bogus objects show their artefact
        (:mod:`lenga.sim.artifacts`) instead of a point source."""
        rng = np.random.default_rng((*self.seed, 2, i))
        scale = self.survey.pixel_scale_arcsec
        fwhm = float(self.epochs.seeing[i] / scale)
        sigma_pix = float(mag_to_njy(self.epochs.depth[i]) / 5.0 / np.sqrt(cutouts.noise_equivalent_area(fwhm)))
        if isinstance(self.model, artifacts.Bogus):
            blank = cutouts.render_triplet(rng, None, 0.0, 0.0, fwhm, self.survey.seeing_fwhm_arcsec / scale,
                                           sigma_pix, self.survey.registration_sigma_pix)
            return self.model.render(rng, blank, self.params, float(mag_to_njy(self.mag[i])), fwhm, sigma_pix)
        return cutouts.render_triplet(
            rng,
            host=self.host_image(),
            # The source on the science image is the template source plus the difference flux the
            # photometry reports (which includes the subtraction residual of lenga.sim.survey.observe),
            # so the difference stamp shows what magpsf says, for constant stars too.
            science_flux=float(mag_to_njy(self.reference_mag[i]) + self.phot.flux[i]),
            reference_flux=float(mag_to_njy(self.reference_mag[i])),
            fwhm_pix=fwhm,
            reference_fwhm_pix=self.survey.seeing_fwhm_arcsec / scale,
            sigma_pix=sigma_pix,
            misregistration_pix=self.survey.registration_sigma_pix,
        )


def sky_positions(rng: np.random.Generator, survey: SurveyModel, n: int, where: np.ndarray) -> np.ndarray:
    """RA/Dec [deg] of ``n`` objects: uniform on the sphere within the survey's declination range,
    or (``where == "ecliptic"``) near the ecliptic with a Gaussian spread of ecliptic latitude."""
    lo, hi = np.sin(np.radians(survey.dec_range))
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(lo, hi, n)))
    ecl = where == "ecliptic"
    if ecl.any():
        lon = rng.uniform(0.0, 360.0, ecl.sum())
        lat = np.clip(rng.normal(0.0, Asteroid.ECLIPTIC_LATITUDE_SIGMA_DEG, ecl.sum()), -89.0, 89.0)
        icrs = SkyCoord(lon * u.deg, lat * u.deg, frame=BarycentricMeanEcliptic()).icrs
        ra[ecl], dec[ecl] = icrs.ra.deg, icrs.dec.deg
    return np.column_stack([ra, dec])


def make_object(
    survey: SurveyModel,
    rng: np.random.Generator,
    index: int,
    model: LightCurveModel,
    nights: NightConditions,
    window: tuple[float, float],
    radec: tuple[float, float],
    seed: tuple[int, ...],
) -> SimObject:
    """Draw one object: schedule, class parameters, photometry and per-epoch scores.

    ``rng`` draws the object itself; ``seed`` is kept for the serialisers' own draws (cutout
    noise, survey metadata), so they stay deterministic whatever order alerts are encoded in.
    """
    epochs = schedule(survey, rng, nights)
    ctx = SampleContext(epochs=epochs.mjd, window=window, depth=survey.main_depth)
    observed = len(epochs) > 0  # False when the field's observing season missed every night
    params: Params = {}
    if model.name == "asteroid" and not ((epochs.mjd >= window[0]) & (epochs.mjd < window[1])).any():
        params = {"t_pass": np.nan, "m_r": np.inf}  # never observed while passing: no alert
    elif observed:
        params = model.sample(rng, ctx)
    # An object never observed has no light curve to draw (models need epochs): it never alerts.
    mag = model.magnitude(epochs.mjd, epochs.band, params) if observed else np.empty(0)
    ref = model.reference_magnitude(epochs.band, params) if observed else np.empty(0)
    phot = observe(survey, rng, epochs, mag, ref)
    bogus = model.stamp_class == "bogus"
    reliability = rng.uniform(*(BOGUS_SCORE_RANGE if bogus else REAL_SCORE_RANGE), len(epochs))
    host_offset = (0.0, 0.0)
    host_mag = np.inf
    if model.host == "galaxy" and observed:
        params = dict(params)
        params["host_sersic_n"] = rng.uniform(*HOST_SERSIC_N)
        params["host_r_eff_arcsec"] = rng.uniform(*HOST_R_EFF_ARCSEC)
        params["host_ellip"] = rng.uniform(0.0, HOST_MAX_ELLIP)
        params["host_theta"] = rng.uniform(0.0, np.pi)
        host_mag = float(params["host_mag"])
        if model.stamp_class == "SN":
            r = rng.uniform(*SN_HOST_OFFSET_REFF) * params["host_r_eff_arcsec"] / survey.pixel_scale_arcsec
            angle = rng.uniform(0.0, 2 * np.pi)
            host_offset = (float(r * np.cos(angle)), float(r * np.sin(angle)))
    return SimObject(
        survey=survey,
        index=index,
        class_name=model.name,
        model=model,
        params=params,
        ra=float(radec[0]),
        dec=float(radec[1]),
        epochs=epochs,
        mag=mag,
        reference_mag=ref,
        phot=phot,
        reliability=reliability,
        host_offset_pix=host_offset,
        host_mag=host_mag,
        seed=seed,
    )


def assign_ids(objects: list[SimObject], source_id_base: int) -> None:
    """Number objects by first detection and detections by time (ties broken by object index).

    ``object_id`` is the rank of the object's first detection (objects never detected come last);
    ``source_id`` is ``source_id_base`` plus the rank of the detection's time, -1 for non-detections.
    """
    order = sorted(range(len(objects)), key=lambda k: (objects[k].first_detection_mjd(), k))
    for rank, k in enumerate(order):
        objects[k].object_id = rank
    times = [o.epochs.mjd[o.detected] for o in objects]
    owner = np.concatenate([np.full(t.size, k) for k, t in enumerate(times)]) if objects else np.empty(0)
    all_t = np.concatenate(times) if objects else np.empty(0)
    rank = np.empty(all_t.size, dtype=np.int64)
    rank[np.lexsort((owner, all_t))] = np.arange(all_t.size)
    start = 0
    for o, t in zip(objects, times, strict=True):
        o.source_id = np.full(len(o.epochs), -1, dtype=np.int64)
        o.source_id[o.detected] = source_id_base + rank[start : start + t.size]
        start += t.size
