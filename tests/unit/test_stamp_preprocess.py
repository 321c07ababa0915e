"""Cutout decoding, cropping and normalisation (lenga.stamps.preprocess) on simulated and real cutouts."""

from __future__ import annotations

import gzip
import io

import fastavro
import numpy as np
import pytest
from astropy.io import fits

from lenga.sim import cutouts
from lenga.stamps.preprocess import (
    CROP,
    CutoutError,
    centre_crop,
    contrast,
    normalise,
    read_fits,
    stamp_batch,
)


def _astropy(payload: bytes) -> np.ndarray:
    if payload[:2] == b"\x1f\x8b":
        payload = gzip.decompress(payload)
    return fits.getdata(io.BytesIO(payload)).astype(np.float32)


def test_read_fits_matches_astropy_on_simulated_cutouts():
    rng = np.random.default_rng(3)
    image = rng.normal(size=(63, 63)).astype(np.float32)
    image[5:9, 40:44] = np.nan
    for payload in (cutouts.fits_bytes(image, "lsst"), cutouts.gzip_bytes(cutouts.fits_bytes(image, "ztf"))):
        np.testing.assert_array_equal(read_fits(payload), image)
        np.testing.assert_array_equal(read_fits(payload), _astropy(payload))


def test_read_fits_applies_bscale_bzero_of_integer_images():
    hdu = fits.PrimaryHDU(np.arange(12, dtype=np.int16).reshape(3, 4))
    hdu.header["BSCALE"], hdu.header["BZERO"] = 2.0, 100.0
    buffer = io.BytesIO()
    hdu.writeto(buffer)
    np.testing.assert_array_equal(read_fits(buffer.getvalue()), np.arange(12).reshape(3, 4) * 2.0 + 100.0)


@pytest.mark.parametrize("payload, message", [
    (b"", "empty"),
    (b"\x1f\x8b\x08garbage", "corrupt gzip"),
    (b"not a fits file at all" * 200, "SIMPLE"),
    (cutouts.fits_bytes(np.zeros((63, 63)), "ztf")[:4000], "truncated"),
])
def test_bad_cutouts_raise_a_clear_error(payload, message):
    with pytest.raises(CutoutError, match=message):
        read_fits(payload)


def test_centre_crop_keeps_the_centre_and_pads_short_cutouts():
    image = np.arange(63 * 63, dtype=np.float32).reshape(63, 63)
    crop = centre_crop(image)
    assert crop.shape == (CROP, CROP) and crop[10, 10] == image[31, 31] and crop[0, 0] == image[21, 21]
    short = centre_crop(image[:, :47])  # a cutout cut by a CCD edge, as in real ZTF alerts
    assert short.shape == (CROP, CROP) and short[10, 10] == image[31, 23] and not np.isnan(short).any()
    tiny = centre_crop(image[:5, :5])
    assert np.isnan(tiny).sum() == CROP * CROP - 25 and tiny[10, 10] == image[2, 2]


def test_normalise_per_image_and_masked_pixels():
    rng = np.random.default_rng(0)
    crops = rng.normal(50.0, 3.0, size=(2, 3, CROP, CROP)).astype(np.float32)
    crops[0, 1] *= 1000.0  # another flux scale: the same normalised image up to the noise draw
    crops[1, 2, :4, :] = np.nan
    crops[1, 0] = np.nan  # no finite pixel at all
    out = normalise(crops)
    assert np.isfinite(out).all() and np.abs(out).max() <= 1.0
    assert (out[1, 2, :4, :] == 0).all() and (out[1, 0] == 0).all()
    for image in out[0]:
        assert abs(np.median(image)) < 1e-6 and np.abs(image).max() == pytest.approx(1.0)


def test_stamp_batch_reports_missing_and_unreadable_cutouts():
    good = cutouts.gzip_bytes(cutouts.fits_bytes(np.random.default_rng(1).normal(size=(63, 63)), "ztf"))
    columns = [[good, None, good], [good, good, b"junk"], [good, good, good]]
    stamps = stamp_batch(columns)
    assert stamps.images.shape == (3, 3, CROP, CROP) and np.isfinite(stamps.images).all()
    assert stamps.contrast.shape == (3, 2)
    assert stamps.reasons[0] is None
    assert stamps.reasons[1] == "cutoutScience missing"
    assert stamps.reasons[2].startswith("cutoutTemplate: ")


def test_contrast_compares_the_static_scene_with_the_change():
    star = cutouts.point_source(1000.0, 10, 10, 2.0, shape=(CROP, CROP))
    crops = np.stack([star * 1.1, star, star * 0.1])[None]  # a 10% brightening of a star
    np.testing.assert_allclose(contrast(crops), [[np.log10(11.0), 1.0]], rtol=1e-5)
    crops[0, 2] = np.nan
    assert np.isnan(contrast(crops)).all()


def test_every_real_ztf_cutout_decodes_like_astropy(shared_data):
    paths = sorted((shared_data / "ztf").rglob("*.avro"))
    assert len(paths) > 100
    with_nan = 0
    for path in paths:
        with open(path, "rb") as handle:
            for record in fastavro.reader(handle):
                for name in ("cutoutScience", "cutoutTemplate", "cutoutDifference"):
                    payload = record[name]["stampData"]
                    image = read_fits(payload)
                    np.testing.assert_array_equal(image, _astropy(payload))
                    with_nan += bool(np.isnan(image).any())
    assert with_nan > 0  # the real set does exercise masked pixels
