"""Bogus alerts: the image artefacts that real difference-imaging pipelines turn into detections.

Real/bogus studies list the same families for every survey (Duev et al. 2019 for ZTF's braai;
Carrasco-Davis et al. 2021, sect. 2, for the ALeRCE stamp classifier's bogus class; Goldstein et
al. 2015 for DES): misregistration **dipoles** around static stars, **cosmic rays** and **hot
pixels** sharper than the PSF (one or a few pixels, no seeing profile), **bad columns** (a line of
deviant pixels along the readout direction), **saturated-star residuals** (clipped cores that do not
subtract, with the core often masked), **edge cut-offs** (the source at the border of the valid
pixels, the rest of the stamp empty) and **NaN regions** (masked pixels with a ring of
interpolation residual). :class:`Bogus` is a light-curve model whose objects appear at a single
epoch (like an asteroid, but anywhere on the sky) and whose stamps show one of these artefacts,
drawn per object; :data:`ARTIFACTS` maps each kind to its renderer.

Every renderer takes the blank (noise-only) triplet of the epoch and returns it with the artefact
added at the stamp centre, in the same units (nJy per pixel), so the survey serialisers pack bogus
stamps exactly like real ones. Importing this module registers :class:`Bogus` with
:func:`lenga.sim.lightcurves.register` (``lenga.sim.population`` imports it).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lenga.sim import cutouts
from lenga.sim.lightcurves import BAND_WAVELENGTH_NM, LightCurveModel, register

# Artefact kinds, in the order of Duev et al. (2019, Fig. 2) and Carrasco-Davis et al. (2021).
ARTIFACT_KINDS = ("dipole", "cosmic_ray", "hot_pixel", "bad_column", "saturated_star", "edge", "nan_region")
# Kinds whose artefact sits on a catalogued star (the survey metadata then name a stellar neighbour).
ON_STAR = frozenset({"dipole", "saturated_star"})
# Misregistration of a dipole: 0.4-1.5 pixels, several times the pipelines' typical 0.1-0.2 px.
DIPOLE_SHIFT_PIX = (0.4, 1.5)
# Cosmic rays: 1-4 pixels long, tracks one pixel wide (no PSF blurring: they hit after the optics).
COSMIC_RAY_PIXELS = (1, 5)
# Saturation: the star's peak is 2-20 times the full-well level, so the clipped core is 1-4 px wide.
SATURATION_OVERFLOW = (2.0, 20.0)
# Probability that the pipeline masks (NaN) the saturated core of the difference image.
SATURATED_CORE_MASKED = 0.5
# Edge cut-offs: the valid region ends 0-3 pixels beyond the centre, along a random side.
EDGE_OFFSET_PIX = (0, 4)
# NaN regions: masked blob radius [pix] and the fraction of its flux left as a ring around it.
NAN_RADIUS_PIX = (1.5, 4.0)
# Apparent magnitude of the artefact's flux: 3 to 0.3 mag above the survey depth (5-80 sigma).
BRIGHTNESS_ABOVE_DEPTH = (0.3, 3.0)
# Artefacts are achromatic to first order (detector effects): flat colours.
COLOUR = dict.fromkeys(BAND_WAVELENGTH_NM, 0.0)

Renderer = Callable[[np.random.Generator, cutouts.Triplet, float, float, float], cutouts.Triplet]


def _with(triplet: cutouts.Triplet, science=None, template=None, difference=None) -> cutouts.Triplet:
    """A copy of ``triplet`` with the given images replaced (float32)."""
    pick = {"science": science, "template": template, "difference": difference}
    images = {k: (getattr(triplet, k) if v is None else v).astype(np.float32) for k, v in pick.items()}
    return cutouts.Triplet(**images)


def _on_science(triplet: cutouts.Triplet, image: np.ndarray) -> cutouts.Triplet:
    """Something that is only on the science exposure: it shows in the difference as it is."""
    return _with(triplet, science=triplet.science + image, difference=triplet.difference + image)


def dipole(rng, triplet, flux, fwhm_pix, sigma_pix):
    """A static star shifted between science and template: a positive and a negative lobe.

    The lobe of a shift ``d`` holds about ``F d / FWHM`` of the star's flux ``F`` (first-order
    Taylor expansion of the PSF), so the star is drawn bright enough for the lobe to carry ``flux``.
    """
    shift = rng.uniform(*DIPOLE_SHIFT_PIX)
    angle = rng.uniform(0.0, 2 * np.pi)
    star = flux * fwhm_pix / shift
    cx, cy = cutouts.centre()
    sci = cutouts.point_source(star, cx + shift * np.cos(angle), cy + shift * np.sin(angle), fwhm_pix)
    ref = cutouts.point_source(star, cx, cy, fwhm_pix)
    return _with(triplet, science=triplet.science + sci, template=triplet.template + ref,
                 difference=triplet.difference + sci - ref)


def cosmic_ray(rng, triplet, flux, fwhm_pix, sigma_pix):
    """A short track of 1-4 pixels on the science exposure, sharper than any seeing profile."""
    n = int(rng.integers(*COSMIC_RAY_PIXELS))
    cx, cy = (int(round(c)) for c in cutouts.centre())
    steps = rng.integers(-1, 2, size=(n - 1, 2))
    path = np.vstack([[cx, cy], np.array([cx, cy]) + np.cumsum(steps, axis=0)]) if n > 1 else np.array([[cx, cy]])
    image = np.zeros(cutouts.STAMP_SHAPE, np.float32)
    np.add.at(image, (path[:, 1], path[:, 0]), flux * rng.dirichlet(np.ones(n)))
    return _on_science(triplet, image)


def hot_pixel(rng, triplet, flux, fwhm_pix, sigma_pix):
    """One pixel (or a 2x1 pair, charge bleeding) far above the noise, no PSF wings."""
    cx, cy = (int(round(c)) for c in cutouts.centre())
    image = np.zeros(cutouts.STAMP_SHAPE, np.float32)
    image[cy, cx] = flux
    if rng.random() < 0.5:
        share = rng.uniform(0.2, 0.5)
        image[cy, cx] *= 1 - share
        image[cy + int(rng.choice([-1, 1])), cx] = flux * share
    return _on_science(triplet, image)


def bad_column(rng, triplet, flux, fwhm_pix, sigma_pix):
    """A column of deviant pixels through the centre (readout defect), brightest near the source
    position the detector picked, spanning part or all of the stamp."""
    cx, cy = (int(round(c)) for c in cutouts.centre())
    rows = cutouts.STAMP_SHAPE[0]
    start, stop = sorted(rng.integers(0, rows, 2))
    start, stop = min(start, cy - 2), max(stop, cy + 3)
    image = np.zeros(cutouts.STAMP_SHAPE, np.float32)
    image[start:stop, cx] = flux / 5.0 * rng.uniform(0.6, 1.4, stop - start)
    image[cy - 2 : cy + 3, cx] += flux / 5.0
    return _on_science(triplet, image)


def saturated_star(rng, triplet, flux, fwhm_pix, sigma_pix):
    """A bright star clipped at full well in both exposures: the clipped cores do not subtract
    (different seeing, different clipped area), leaving a ring; the core is often masked."""
    cx, cy = cutouts.centre()
    peak = cutouts.point_source(1.0, cx, cy, fwhm_pix).max()
    star = flux * 50.0
    full_well = star * peak / rng.uniform(*SATURATION_OVERFLOW)
    ref_fwhm = fwhm_pix * rng.uniform(0.7, 0.95)
    sci = np.minimum(cutouts.point_source(star, cx, cy, fwhm_pix), full_well)
    ref = np.minimum(cutouts.point_source(star, cx, cy, ref_fwhm), full_well)
    # PSF matching blurs the template's clipped core to the science seeing: a lower flat top.
    matched = np.minimum(cutouts.point_source(star, cx, cy, fwhm_pix), full_well * (ref_fwhm / fwhm_pix) ** 2)
    difference = triplet.difference + sci - matched
    if rng.random() < SATURATED_CORE_MASKED:
        difference = np.where(sci >= full_well, np.nan, difference)
    return _with(triplet, science=triplet.science + sci, template=triplet.template + ref, difference=difference)


def edge(rng, triplet, flux, fwhm_pix, sigma_pix):
    """The stamp at a CCD edge: beyond it nothing (NaN in all three images); along it the
    difference holds a bright step of imperfect edge subtraction."""
    cx, cy = (int(round(c)) for c in cutouts.centre())
    offset = int(rng.integers(*EDGE_OFFSET_PIX))
    mask = np.zeros(cutouts.STAMP_SHAPE, bool)
    side = int(rng.integers(4))
    if side == 0:
        mask[:, cx + offset + 1 :] = True
    elif side == 1:
        mask[:, : cx - offset] = True
    elif side == 2:
        mask[cy + offset + 1 :, :] = True
    else:
        mask[: cy - offset, :] = True
    border = np.zeros(cutouts.STAMP_SHAPE, np.float32)
    ring = ~mask & (np.roll(mask, 1, 0) | np.roll(mask, -1, 0) | np.roll(mask, 1, 1) | np.roll(mask, -1, 1))
    border[ring] = flux / max(ring.sum() / 8.0, 1.0)
    out = _on_science(triplet, border)
    return _with(out, science=np.where(mask, np.nan, out.science), template=np.where(mask, np.nan, out.template),
                 difference=np.where(mask, np.nan, out.difference))


def nan_region(rng, triplet, flux, fwhm_pix, sigma_pix):
    """Masked pixels (bad pixel mask, satellite-trail mask) at the centre of the difference image,
    surrounded by a ring of interpolation residual."""
    x, y = np.meshgrid(np.arange(cutouts.STAMP_SHAPE[1]), np.arange(cutouts.STAMP_SHAPE[0]))
    cx, cy = cutouts.centre()
    r = np.hypot(x - cx - rng.uniform(-1, 1), y - cy - rng.uniform(-1, 1))
    radius = rng.uniform(*NAN_RADIUS_PIX)
    ring = (r >= radius) & (r < radius + 1.5)
    image = np.zeros(cutouts.STAMP_SHAPE, np.float32)
    image[ring] = flux / ring.sum()
    out = _on_science(triplet, image)
    return _with(out, difference=np.where(r < radius, np.nan, out.difference))


ARTIFACTS: dict[str, Renderer] = {
    "dipole": dipole,
    "cosmic_ray": cosmic_ray,
    "hot_pixel": hot_pixel,
    "bad_column": bad_column,
    "saturated_star": saturated_star,
    "edge": edge,
    "nan_region": nan_region,
}


class Bogus(LightCurveModel):
    """A subtraction or detector artefact detected once, anywhere on the sky.

    The "light curve" is the artefact's apparent brightness at its epoch ``t_pass`` (one of the
    survey's epochs inside the alert window), ``inf`` at every other time; nothing is in the
    reference image as a point source (dipoles and saturated stars draw their own star). The
    artefact kind is drawn uniformly from :data:`ARTIFACT_KINDS` and stored as ``params["artifact"]``
    (its index), so the serialisers can make the metadata agree with the image.
    """

    name = "bogus"
    stamp_class = "bogus"
    host = "none"
    PASSAGE_TOLERANCE_DAYS = 1e-6

    def sample(self, rng, ctx):
        t_start, t_end = ctx.window
        inside = ctx.epochs[(ctx.epochs >= t_start) & (ctx.epochs < t_end)]
        return {
            "t_pass": float(rng.choice(inside)) if inside.size else np.nan,  # nan: never seen
            "m_r": ctx.depth - rng.uniform(*BRIGHTNESS_ABOVE_DEPTH),
            "artifact": int(rng.integers(len(ARTIFACT_KINDS))),
        }

    def magnitude(self, t, band, params):
        present = np.abs(t - params["t_pass"]) < self.PASSAGE_TOLERANCE_DAYS
        return np.where(present, params["m_r"] + np.array([COLOUR[b] for b in band]), np.inf)

    def reference_magnitude(self, band, params):
        return np.full(band.shape, np.inf)

    @staticmethod
    def kind(params) -> str:
        """The artefact kind of an object's parameters."""
        return ARTIFACT_KINDS[int(params["artifact"])]

    def render(self, rng, blank: cutouts.Triplet, params, flux: float, fwhm_pix: float,
               sigma_pix: float) -> cutouts.Triplet:
        """The epoch's stamps: the noise-only ``blank`` triplet with the object's artefact added."""
        return ARTIFACTS[self.kind(params)](rng, blank, flux, fwhm_pix, sigma_pix)


register(Bogus())
