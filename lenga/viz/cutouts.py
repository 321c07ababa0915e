"""Cutout bytes -> images for display.

ZTF ships each stamp as a gzipped FITS file (ztf-avro-alert, ``cutout.avsc``: ``stampData``), LSST
as a plain FITS file whose primary HDU is the image (later HDUs: its uncertainty and the PSF,
lsst/alert_packet). astropy reads both once gunzipped. Real cutouts carry masked pixels as NaN
(about 7% of ZTF cutouts have some) and are cut short at CCD edges, so display limits come from the
finite pixels only: IRAF's zscale (astropy's ``ZScaleInterval``), the usual choice for astronomical
images because it ignores the few very bright pixels of a source or a cosmic ray.
"""

from __future__ import annotations

import gzip
import io

import numpy as np
from astropy.io import fits
from astropy.visualization import ZScaleInterval

GZIP_MAGIC = b"\x1f\x8b"
#: alerts-table columns of the three stamps, in display order, with their panel titles.
CUTOUT_COLUMNS = {"cutoutScience": "science", "cutoutTemplate": "template", "cutoutDifference": "difference"}


class CutoutError(ValueError):
    """Cutout bytes that are not a FITS image (the message says why)."""


def read_cutout(payload: bytes | None) -> np.ndarray:
    """The 2-D image of a cutout (gzipped or plain FITS) as float64, NaN kept.

    The primary HDU holds the image for both surveys; the first 2-D image extension is used when
    the primary is empty (a FITS file may keep its data in extensions only, FITS Standard 4.0 sect. 3.3).
    """
    if not payload:
        raise CutoutError("no cutout in the alert")
    if payload[:2] == GZIP_MAGIC:
        try:
            payload = gzip.decompress(payload)
        except (OSError, EOFError) as exc:
            raise CutoutError(f"corrupt gzip cutout: {exc}") from exc
    try:
        with fits.open(io.BytesIO(payload)) as hdus:
            for hdu in hdus:
                if hdu.data is not None and np.ndim(hdu.data) == 2:
                    return np.asarray(hdu.data, dtype=np.float64)
    except OSError as exc:
        raise CutoutError(f"not a FITS file: {exc}") from exc
    raise CutoutError("the FITS file holds no 2-D image")


def display_limits(image: np.ndarray) -> tuple[float, float] | None:
    """zscale limits of the finite pixels; ``None`` when no pixel is finite (nothing to show)."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return None
    low, high = ZScaleInterval().get_limits(finite)
    if not high > low:  # a flat image: any window around its value shows it
        low, high = low - 0.5, high + 0.5
    return float(low), float(high)
