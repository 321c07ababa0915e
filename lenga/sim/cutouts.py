"""Cutout (stamp) rendering: science, template and difference images around an alert.

Point sources are Moffat (1969) profiles with beta = 2.5, the usual fit to seeing-limited PSF
wings (Trujillo et al. 2001), evaluated with astropy's ``Moffat2D``; host galaxies are Sérsic
profiles (``Sersic2D``) normalised to their total flux (Graham & Driver 2005, eq. 2-4) and convolved
with the reference PSF (scipy.signal.fftconvolve). Images are in nJy per pixel; the ZTF serialiser scales them to DN.

The difference image is PSF-matched, as ZTF (Zackay et al. 2016) and LSST (Alard & Lupton 1998)
pipelines produce: the template's point source is re-rendered with the science seeing, so only
the flux change, the misregistration dipole of static sources and the noise of both images remain.

FITS encoding is on the hot path (three cutouts per alert), so the header is built once per
(survey, shape) with astropy.io.fits and reused: a cutout is that header followed by the big-endian
float32 pixels padded to the 2880-byte FITS block (FITS Standard 4.0, sect. 3.3). The header is
therefore the same for every cutout of a survey (no per-epoch WCS); the tests check the bytes are
what astropy writes for the same array and header.
"""

from __future__ import annotations

import functools
import gzip
import io
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.modeling.models import Moffat2D, Sersic2D
from scipy.signal import fftconvolve
from scipy.special import gamma as gamma_fn
from scipy.special import gammaincinv

STAMP_SHAPE = (63, 63)
MOFFAT_BETA = 2.5
FITS_BLOCK = 2880
# gzip level of ZTF stamps: level 1 is ~3x faster than the default 9 and only a few per cent larger
# on noise-dominated float32 pixels.
GZIP_LEVEL = 1
# Template co-adds average this many epochs (ZTF references: 15-40 frames, Masci et al. 2019), so
# their noise is lower by its square root.
TEMPLATE_FRAMES = 20


def moffat_gamma(fwhm_pix: float, beta: float = MOFFAT_BETA) -> float:
    """Moffat core width gamma for a given FWHM: FWHM = 2 gamma sqrt(2^(1/beta) - 1)."""
    return fwhm_pix / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def noise_equivalent_area(fwhm_pix: float, beta: float = MOFFAT_BETA) -> float:
    """1 / sum(PSF^2) of a normalised Moffat: pi gamma^2 (2 beta - 1) / (beta - 1)^2 [pixels].

    A point source measured with PSF photometry on sky noise sigma_pix has error
    sigma_pix sqrt(NEA), which ties the per-pixel noise to the survey's 5-sigma depth.
    """
    g = moffat_gamma(fwhm_pix, beta)
    return np.pi * g**2 * (2 * beta - 1) / (beta - 1) ** 2


@functools.cache
def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[: shape[0], : shape[1]]
    return x.astype(np.float32), y.astype(np.float32)


def centre(shape: tuple[int, int] = STAMP_SHAPE) -> tuple[float, float]:
    """Pixel coordinates (x, y) of the stamp centre, where the alert's source sits."""
    return (shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0


def point_source(flux: float, x0: float, y0: float, fwhm_pix: float, shape=STAMP_SHAPE) -> np.ndarray:
    """Moffat point source of total ``flux`` centred at (x0, y0)."""
    g = moffat_gamma(fwhm_pix)
    amplitude = flux * (MOFFAT_BETA - 1.0) / (np.pi * g**2)
    x, y = _grid(shape)
    return Moffat2D.evaluate(x, y, amplitude, x0, y0, g, MOFFAT_BETA)


def sersic_galaxy(
    flux: float,
    r_eff_pix: float,
    n: float,
    ellip: float,
    theta: float,
    x0: float,
    y0: float,
    psf_fwhm_pix: float,
    shape=STAMP_SHAPE,
) -> np.ndarray:
    """Sérsic galaxy of total ``flux`` convolved with the PSF.

    The surface brightness at r_eff follows from the total flux,
    F = 2 pi n r_eff^2 (1 - ellip) e^b b^(-2n) Gamma(2n) I_eff with b = P^-1(2n, 1/2).
    """
    b = gammaincinv(2 * n, 0.5)
    total_per_ie = 2 * np.pi * n * r_eff_pix**2 * (1 - ellip) * np.exp(b) * b ** (-2 * n) * gamma_fn(2 * n)
    x, y = _grid(shape)
    image = Sersic2D.evaluate(x, y, flux / total_per_ie, r_eff_pix, n, x0, y0, ellip, theta)
    psf = point_source(1.0, *centre(shape), psf_fwhm_pix, shape)
    # scipy's FFT convolution: astropy's convolve_fft pads to a power of two and cost 5x more here.
    return fftconvolve(image, psf / psf.sum(), mode="same").astype(np.float32)


@dataclass(frozen=True)
class Triplet:
    """Science, template and difference images of one epoch (float32, nJy per pixel)."""

    science: np.ndarray
    template: np.ndarray
    difference: np.ndarray


def render_triplet(
    rng: np.random.Generator,
    host: np.ndarray | None,
    science_flux: float,
    reference_flux: float,
    fwhm_pix: float,
    reference_fwhm_pix: float,
    sigma_pix: float,
    misregistration_pix: float,
    shape=STAMP_SHAPE,
) -> Triplet:
    """Render one epoch around a source at the stamp centre.

    ``science_flux``/``reference_flux``: the source's flux on the science image and in the template
    (0 for a transient). ``host``: the static extended scene (same in both), or None.
    ``misregistration_pix``: sigma of the science-to-template astrometric offset, which turns a
    bright static source into a dipole in the difference image.
    """
    cx, cy = centre(shape)
    sub = rng.uniform(-0.5, 0.5, 2)  # the source's sub-pixel position
    shift = rng.normal(0.0, misregistration_pix, 2)
    noise = rng.standard_normal((2, *shape), dtype=np.float32)
    sci_x, sci_y = cx + sub[0] + shift[0], cy + sub[1] + shift[1]
    science_point = point_source(science_flux, sci_x, sci_y, fwhm_pix, shape)
    template_point = point_source(reference_flux, cx + sub[0], cy + sub[1], reference_fwhm_pix, shape)
    matched_template_point = point_source(reference_flux, cx + sub[0], cy + sub[1], fwhm_pix, shape)
    template_noise = noise[1] * (sigma_pix / np.sqrt(TEMPLATE_FRAMES))
    science_noise = noise[0] * sigma_pix
    static = host if host is not None else 0.0
    return Triplet(
        science=(static + science_point + science_noise).astype(np.float32),
        template=(static + template_point + template_noise).astype(np.float32),
        difference=(science_point - matched_template_point + science_noise - template_noise).astype(np.float32),
    )


@functools.cache
def fits_header_bytes(survey: str, shape: tuple[int, int] = STAMP_SHAPE) -> bytes:
    """The FITS header of every cutout of ``survey`` (built once with astropy, padded to 2880)."""
    hdu = fits.PrimaryHDU(np.zeros(shape, dtype=">f4"))
    hdu.header["BUNIT"] = ("DN" if survey == "ztf" else "nJy", "pixel unit")
    hdu.header["ORIGIN"] = ("lenga.sim", "simulated cutout")
    hdu.header["SURVEY"] = (survey.upper(), "survey whose images this cutout mimics")
    hdu.header["COMMENT"] = "Header shared by all simulated cutouts of this survey: no per-epoch WCS."
    return hdu.header.tostring().encode("ascii")


def fits_bytes(image: np.ndarray, survey: str) -> bytes:
    """Encode a 2-D float image as a single-HDU FITS file (cached header + padded float32 data)."""
    if image.ndim != 2:
        raise ValueError(f"a cutout must be a 2-D image, got shape {image.shape}")
    data = np.ascontiguousarray(image, dtype=">f4").tobytes()
    padding = (-len(data)) % FITS_BLOCK
    return fits_header_bytes(survey, image.shape) + data + b"\0" * padding


def gzip_bytes(payload: bytes) -> bytes:
    """gzip with mtime 0, so the same cutout always gives the same bytes (deterministic output)."""
    return gzip.compress(payload, compresslevel=GZIP_LEVEL, mtime=0)


def read_fits_image(payload: bytes) -> np.ndarray:
    """Decode a (possibly gzipped) FITS cutout to a float array with astropy (tests, notebooks)."""
    if payload[:2] == b"\x1f\x8b":
        payload = gzip.decompress(payload)
    with fits.open(io.BytesIO(payload)) as hdul:
        return np.array(hdul[0].data, dtype=float)
