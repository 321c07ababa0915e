"""Simulated stamps of the five classes: bogus artefacts, class signatures and metadata that agree
with the images (lenga.sim.artifacts, lenga.sim.population, lenga.stamps.dataset)."""

from __future__ import annotations

import numpy as np
import pytest

from lenga.sim import artifacts, cutouts
from lenga.sim.classes import LIGHT_CURVE_CLASSES
from lenga.stamps import CLASSES
from lenga.stamps.dataset import alert_rows, assign_survey_ids, first_detections, mask_augment

FWHM, SIGMA, FLUX = 2.0, 1.0, 200.0


def _blank(seed=0):
    rng = np.random.default_rng(seed)
    return rng, cutouts.render_triplet(rng, None, 0.0, 0.0, FWHM, FWHM, SIGMA, 0.0)


def test_bogus_is_registered_and_every_artefact_renders():
    assert isinstance(LIGHT_CURVE_CLASSES["bogus"], artifacts.Bogus)
    assert set(artifacts.ARTIFACTS) == set(artifacts.ARTIFACT_KINDS)
    for kind, render in artifacts.ARTIFACTS.items():
        rng, blank = _blank()
        out = render(rng, blank, FLUX, FWHM, SIGMA)
        assert out.difference.shape == cutouts.STAMP_SHAPE and out.difference.dtype == np.float32, kind
        changed = np.abs(out.difference - blank.difference)
        assert np.isnan(changed).any() or np.nanmax(changed) > 5 * SIGMA, kind


def test_cosmic_rays_and_hot_pixels_are_sharper_than_the_psf():
    psf = cutouts.point_source(FLUX, 31, 31, FWHM)
    psf_peak_fraction = psf.max() / psf.sum()
    for kind in ("cosmic_ray", "hot_pixel"):
        rng, blank = _blank(1)
        added = artifacts.ARTIFACTS[kind](rng, blank, FLUX, FWHM, SIGMA).science - blank.science
        assert added.max() / added.sum() > 1.5 * psf_peak_fraction, kind
        assert (added != 0).sum() <= 4, kind  # a few pixels, no seeing wings
        assert np.allclose(artifacts.ARTIFACTS[kind](*_blank(1), FLUX, FWHM, SIGMA).template, blank.template)


def test_dipole_and_masked_artefacts():
    rng, blank = _blank(2)
    dipole = artifacts.dipole(rng, blank, FLUX, FWHM, SIGMA).difference
    assert dipole.max() > 5 * SIGMA and dipole.min() < -5 * SIGMA
    assert abs(dipole.sum()) < 0.1 * np.abs(dipole).sum()  # the lobes cancel: flux moved, not added
    edge = artifacts.edge(*_blank(3), FLUX, FWHM, SIGMA)
    for image in (edge.science, edge.template, edge.difference):  # beyond the CCD edge: no data at all
        assert 0 < np.isnan(image).sum() < image.size / 2 + 63 and not np.isnan(image[31, 31])
    masked = artifacts.nan_region(*_blank(3), FLUX, FWHM, SIGMA)
    assert np.isnan(masked.difference[31, 31]) and not np.isnan(masked.science).any()


@pytest.fixture(scope="module")
def ztf_set():
    objects, epochs, labels = first_detections("ztf", 24, seed=7)
    assign_survey_ids("ztf", objects)
    return objects, epochs, np.array(labels), alert_rows("ztf", objects, epochs)


def test_training_set_draws_every_registered_model_of_each_class(ztf_set):
    objects, _, labels, _ = ztf_set
    assert np.bincount(labels).tolist() == [24] * len(CLASSES)
    for label, stamp_class in enumerate(CLASSES):
        registered = {name for name, m in LIGHT_CURVE_CLASSES.items() if m.stamp_class == stamp_class}
        drawn = {o.model.name for o, y in zip(objects, labels, strict=True) if y == label}
        assert drawn == registered, stamp_class


def test_metadata_agrees_with_the_stamps(ztf_set):
    objects, epochs, labels, table = ztf_set
    rows = table.to_pylist()
    for o, i, row in zip(objects, epochs, rows, strict=True):
        stamps = o.stamps(i)
        centre = stamps.difference[29:34, 29:34]
        assert row["nbad"] == int(np.isnan(centre).sum())
        assert row["isdiffpos"] == (o.phot.flux[i] > 0)
        if o.artifact in ("cosmic_ray", "hot_pixel"):
            assert row["fwhm"] < 1.3 < o.epochs.seeing[i] / o.survey.pixel_scale_arcsec
        if o.counterpart == "star":
            assert row["sgscore1"] >= 0.9 and row["distpsnr1"] < 0.5
        if o.model.stamp_class == "SN":
            assert row["distpsnr1"] > 0.1 and row["sgscore1"] < 0.2  # offset from a galaxy
        if o.model.stamp_class == "asteroid":
            assert np.isinf(o.reference_mag[i]) and abs(row["dec"]) < 90


def test_mask_augment_blanks_a_border_strip_only():
    images = np.ones((400, 3, 21, 21), np.float32)
    out = mask_augment(images, np.random.default_rng(0), fraction=0.5)
    masked = (out == 0).any(axis=(1, 2, 3))
    assert 150 < masked.sum() < 250
    assert (out[:, :, 8:13, 8:13] == 1).all()  # the source's pixels are never masked
