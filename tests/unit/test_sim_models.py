"""Light-curve models, survey observing model and cutout rendering of the simulator."""

import io

import numpy as np
import pytest
from astropy.io import fits

from lenga.sim import cutouts, lightcurves, survey
from lenga.sim.classes import LIGHT_CURVE_CLASSES, transients
from lenga.sim.lightcurves import SampleContext


def _ctx(depth=20.5, start=60000.0, end=60003.0):
    return SampleContext(epochs=np.arange(start - 30, end, 0.5), window=(start, end), depth=depth)


def test_registry_has_the_first_classes_and_refuses_duplicates():
    assert set(LIGHT_CURVE_CLASSES) >= {"SNIa", "RRL", "QSO", "LPV", "star", "asteroid"}
    assert {m.stamp_class for m in LIGHT_CURVE_CLASSES.values()} == set(lightcurves.STAMP_CLASSES)
    with pytest.raises(ValueError, match="already registered"):
        lightcurves.register(transients.SupernovaIa())


def test_supernova_peaks_at_drawn_magnitude_and_fades():
    model = LIGHT_CURVE_CLASSES["SNIa"]
    p = model.sample(np.random.default_rng(1), _ctx())
    t = p["t_peak"] + np.array([-60.0, -5.0, 0.0, 5.0, 40.0])
    g = model.magnitude(t, np.full(t.size, "g"), p)
    assert g[2] == pytest.approx(p["m_peak"], abs=1e-9)  # g is the peak-colour reference band
    assert g[0] > g[1] > g[2] and g[2] < g[3] < g[4]
    assert g[4] - g[2] > 1.0  # a Ia fades by > 1 mag in 40 days
    mu = lightcurves.distance_modulus(p["z"])
    assert p["m_peak"] - mu == pytest.approx(-19.3, abs=0.6)
    assert np.isinf(model.reference_magnitude(np.array(["r"]), p)).all()


def test_distance_modulus_matches_planck18():
    from astropy.cosmology import Planck18

    z = np.array([0.01, 0.1, 0.5, 1.5])
    assert lightcurves.distance_modulus(z) == pytest.approx(Planck18.distmod(z).value, abs=1e-3)


def test_rr_lyrae_is_periodic_with_drawn_amplitude():
    model = LIGHT_CURVE_CLASSES["RRL"]
    p = model.sample(np.random.default_rng(2), _ctx())
    assert 0.4 <= p["period"] <= 0.8 and 0.3 <= p["amplitude"] <= 1.0
    t = 60000.0 + np.linspace(0, p["period"], 2000, endpoint=False)
    g = model.magnitude(t, np.full(t.size, "g"), p)
    assert g.max() - g.min() == pytest.approx(p["amplitude"], rel=0.01)
    assert model.magnitude(t + 7 * p["period"], np.full(t.size, "g"), p) == pytest.approx(g, abs=1e-6)
    r = model.magnitude(t, np.full(t.size, "r"), p)
    assert r.max() - r.min() < g.max() - g.min()


def test_quasar_drw_has_the_drawn_structure_function():
    model = LIGHT_CURVE_CLASSES["QSO"]
    ctx = SampleContext(epochs=np.array([50000.0, 80000.0]), window=(79990.0, 80000.0), depth=20.5)
    p = model.sample(np.random.default_rng(3), ctx)
    t = np.arange(50000.0, 80000.0, 1.0)
    r = model.magnitude(t, np.full(t.size, "r"), p)
    # over many damping times the DRW's rms is SF_inf / sqrt(2) (Kelly et al. 2009)
    assert np.std(r) == pytest.approx(p["sf_inf"] / np.sqrt(2), rel=0.3)
    g = model.magnitude(t[:10], np.full(10, "g"), p)
    assert np.ptp(g) >= np.ptp(r[:10])  # bluer bands vary more


def test_long_period_variable_and_constant_star():
    lpv = LIGHT_CURVE_CLASSES["LPV"]
    p = lpv.sample(np.random.default_rng(4), _ctx())
    t = np.linspace(0, p["period"], 500)
    g = lpv.magnitude(t, np.full(t.size, "g"), p)
    assert np.ptp(g) == pytest.approx(p["amplitude"], rel=0.05)
    star = LIGHT_CURVE_CLASSES["star"]
    ps = star.sample(np.random.default_rng(5), _ctx())
    m = star.magnitude(t, np.full(t.size, "r"), ps)
    assert np.all(m == ps["m_r"]) and star.reference_magnitude(np.array(["r"]), ps)[0] == ps["m_r"]


def test_asteroid_is_seen_only_at_its_passage():
    model = LIGHT_CURVE_CLASSES["asteroid"]
    ctx = _ctx()
    p = model.sample(np.random.default_rng(6), ctx)
    assert ctx.window[0] <= p["t_pass"] < ctx.window[1]
    m = model.magnitude(ctx.epochs, np.full(ctx.epochs.size, "r"), p)
    assert np.isfinite(m).sum() == 1 and ctx.epochs[np.isfinite(m)][0] == p["t_pass"]


def test_unknown_band_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown band"):
        lightcurves.band_values({"g": 1.0}, np.array(["g", "w"]))


def _ztf_year(seed=7):
    rng = np.random.default_rng(seed)
    nights = survey.night_conditions(survey.ZTF, rng, 60000, 365)
    return nights, survey.schedule(survey.ZTF, rng, nights)


def test_ztf_schedule_cadence_weather_and_depth():
    nights, ep = _ztf_year()
    night_of = np.floor(ep.mjd).astype(int)
    lost = set(nights.night_mjd[~nights.clear])
    assert not lost & set(night_of)  # nothing observed on a night lost to weather
    assert 0.25 < (~nights.clear).mean() < 0.45
    gaps = []
    for b in ("g", "r"):
        nights_b = np.unique(night_of[ep.band == b])
        gaps.append(np.median(np.diff(nights_b)))
        assert 1.0 <= np.median(np.diff(nights_b)) <= 4.0
    same_night = np.diff(ep.mjd)[(np.diff(night_of) == 0) & (ep.band[1:] == ep.band[:-1])] * 1440
    assert same_night.size > 0 and same_night.min() >= 30 - 1e-6 and np.median(same_night) <= 60
    r_depth = ep.depth[ep.band == "r"]
    assert np.median(r_depth) == pytest.approx(20.6, abs=0.15) and 0.25 < r_depth.std() < 0.55
    assert set(ep.band) <= {"g", "r", "i"} and (ep.band == "i").sum() < (ep.band == "r").sum() / 3


def test_five_sigma_rule_and_errors():
    _, ep = _ztf_year(8)
    rng = np.random.default_rng(9)
    mag = np.full(len(ep), 20.3)
    ref = np.full(len(ep), np.inf)
    ph = survey.observe(survey.ZTF, rng, ep, mag, ref)
    snr = np.abs(ph.flux) / ph.flux_err
    assert np.array_equal(ph.detected, snr >= 5.0)
    # a 20.3 mag source against limits of 20.1-20.8: detected on part of the epochs only
    assert 0.3 < ph.detected.mean() < 0.95
    # sky-dominated errors: sigma = f(m5) / 5, plus a few per cent from the source's own Poisson noise
    assert ph.flux_err == pytest.approx(survey.mag_to_njy(ep.depth) / 5, rel=0.08)
    sigma = ph.sigmapsf[ph.detected]
    assert sigma == pytest.approx(1.0857 / snr[ph.detected], rel=1e-3)
    faint = survey.observe(survey.ZTF, rng, ep, np.full(len(ep), 23.0), ref)
    assert faint.detected.mean() < 0.01
    assert survey.njy_to_mag(survey.mag_to_njy(21.3)) == pytest.approx(21.3)


def test_lsst_depths_and_bands():
    assert survey.LSST.depth == {"u": 23.9, "g": 25.0, "r": 24.7, "i": 24.0, "z": 23.3, "y": 22.1}
    rng = np.random.default_rng(10)
    nights = survey.night_conditions(survey.LSST, rng, 60000, 3 * 365)  # u is rare: ~3 visits a season
    ep = survey.schedule(survey.LSST, rng, nights)
    assert set(ep.band) == set("ugrizy")
    assert (ep.band == "u").sum() < (ep.band == "r").sum()


def test_fits_bytes_are_standard_fits():
    image = np.random.default_rng(11).normal(size=cutouts.STAMP_SHAPE).astype(np.float32)
    ours = cutouts.fits_bytes(image, "ztf")
    assert len(ours) % cutouts.FITS_BLOCK == 0
    with fits.open(io.BytesIO(ours)) as hdul:
        hdul.verify("exception")  # astropy's FITS-standard checks
        assert len(hdul) == 1 and hdul[0].header["BITPIX"] == -32 and hdul[0].header["BUNIT"] == "DN"
        assert np.array_equal(hdul[0].data, image)
        # astropy writes the same data segment for the same array
        buf = io.BytesIO()
        fits.PrimaryHDU(image).writeto(buf)
        assert buf.getvalue()[-len(ours) + len(cutouts.fits_header_bytes("ztf")) :] == ours[
            len(cutouts.fits_header_bytes("ztf")) :
        ]
    assert np.array_equal(cutouts.read_fits_image(cutouts.gzip_bytes(ours)), image)
    assert cutouts.gzip_bytes(ours) == cutouts.gzip_bytes(ours)  # mtime 0: deterministic


def test_point_source_flux_and_fwhm():
    img = cutouts.point_source(1000.0, 31.0, 31.0, fwhm_pix=4.0, shape=(201, 201))
    # Moffat beta=2.5 wings: ~97% of the flux within a 201-px box of FWHM 4
    assert img.sum() == pytest.approx(1000.0, rel=0.03)
    row = img[31]
    half = row[31] / 2
    above = np.flatnonzero(row >= half)
    assert above.size == pytest.approx(4, abs=1)


def test_sersic_host_holds_its_flux():
    img = cutouts.sersic_galaxy(5000.0, 3.0, 1.0, 0.2, 0.5, 31.0, 31.0, psf_fwhm_pix=2.0)
    assert img.sum() == pytest.approx(5000.0, rel=0.1)
    assert np.unravel_index(np.argmax(img), img.shape) == (31, 31)


ALERCE = {"Transient": ("SNIa", "SNIbc", "SNII", "SLSN"), "Stochastic": ("QSO", "AGN", "Blazar", "CV/Nova", "YSO"),
          "Periodic": ("LPV", "E", "DSCT", "RRL", "CEP", "Periodic-Other")}
STAMP = {"Transient": "SN", "Periodic": "VS"}


def test_the_fifteen_alerce_classes_are_registered_with_stamp_class_and_host():
    from lenga.sim.classes import ALERCE_CLASSES

    assert ALERCE_CLASSES == ALERCE
    for branch, names in ALERCE.items():
        for name in names:
            model = LIGHT_CURVE_CLASSES[name]
            expected = STAMP.get(branch) or ("VS" if name in ("CV/Nova", "YSO") else "AGN")
            assert model.stamp_class == expected, name
            assert model.host == {"SN": "galaxy", "AGN": "galaxy", "VS": "star"}[expected], name
            ctx = _ctx()
            p = model.sample(np.random.default_rng(20), ctx)
            band = np.where(np.arange(ctx.epochs.size) % 2, "g", "r")
            mag = model.magnitude(ctx.epochs, band, p)
            ref = model.reference_magnitude(band, p)
            assert not np.isnan(mag).any() and not np.isnan(ref).any(), name
            if model.host == "galaxy":
                assert np.isfinite(p["host_mag"]) and p["z"] > 0, name  # the demo catalog needs both


def test_supernova_classes_differ_in_luminosity_and_time_scales():
    peaks = {}
    for name in ("SNIa", "SNIbc", "SNII", "SLSN"):
        model = LIGHT_CURVE_CLASSES[name]
        draws = [model.sample(np.random.default_rng(k), _ctx()) for k in range(200)]
        peaks[name] = np.median([p["m_peak"] - lightcurves.distance_modulus(p["z"]) for p in draws])
        before = [model.magnitude(np.array([p["t_peak"] - 400.0]), np.array(["g"]), p)[0] for p in draws[:20]]
        assert all(m > p["m_peak"] + 8 for m, p in zip(before, draws, strict=False)), name  # not there yet
    assert peaks["SLSN"] < -20.5 < peaks["SNIa"] < -19 < peaks["SNIbc"] < -17 < peaks["SNII"] + 0.5


def test_type_ii_plateau_then_drop_onto_the_cobalt_tail():
    model = LIGHT_CURVE_CLASSES["SNII"]
    p = model.sample(np.random.default_rng(5), _ctx())
    t_pt, z = p["tau_fall"], p["z"]
    r = lambda dt: model.magnitude(p["t_peak"] + np.atleast_1d(dt), np.array(["r"]), p)[0]  # noqa: E731
    assert r(0.0) == pytest.approx(p["m_peak"], abs=1e-9)
    assert r(0.8 * t_pt) - r(0.0) <= 3.0 * 0.8 * t_pt / 100 / (1 + z) * 1.01  # slow plateau (<= 3 mag/100 d)
    assert r(t_pt + 6 * p["drop_width"]) - r(t_pt - 6 * p["drop_width"]) > 0.9  # the drop
    tail = (r(t_pt + 200.0) - r(t_pt + 100.0)) / 100.0
    assert tail == pytest.approx(0.0098 / (1 + z), rel=0.05)  # 56Co decay rate


def test_eclipse_depth_follows_the_geometry():
    from lenga.sim.classes.periodic import EclipsingBinary, circle_overlap

    assert circle_overlap(np.array([0.0]), 0.2, 0.1)[0] == pytest.approx(np.pi * 0.01)
    assert circle_overlap(np.array([0.5]), 0.2, 0.2)[0] == 0.0
    model = EclipsingBinary()
    # equal stars, central eclipse, no ellipsoidal term: half the light is hidden at phase 0
    p = {"period": 2.0, "phase0": 0.0, "r1": 0.1, "r2": 0.1, "cos_i": 0.0, "j_r": 1.0, "m_r": 15.0}
    flux = model.relative_flux(np.array([0.0, 0.25, 0.5]), np.array(["r"] * 3), p)
    ellipsoidal = model.ELLIPSOIDAL_SCALE * 0.2**3
    assert flux[0] == pytest.approx(0.5 * (1 - ellipsoidal), rel=1e-9)
    assert flux[1] == pytest.approx(1 + ellipsoidal, rel=1e-9)
    # a colder secondary: the eclipse of the hotter primary (phase 0) is the deeper one, more so in g
    p["j_r"] = 0.3
    g = model.magnitude(np.array([0.0, 1.0]), np.array(["g", "g"]), p)
    r = model.magnitude(np.array([0.0, 1.0]), np.array(["r", "r"]), p)
    assert g[0] - g[1] > r[0] - r[1] > 0


@pytest.mark.parametrize("name", ["CEP", "DSCT", "Periodic-Other"])
def test_fourier_pulsators_repeat_with_the_drawn_amplitude(name):
    model = LIGHT_CURVE_CLASSES[name]
    p = model.sample(np.random.default_rng(8), _ctx())
    lo, hi = 10 ** np.array(model.PERIOD_LOG10)
    assert lo <= p["period"] <= hi and model.AMPLITUDE[0] <= p["amplitude"] <= model.AMPLITUDE[1]
    t = 60000.0 + np.linspace(0, p["period"], 3000, endpoint=False)
    g = model.magnitude(t, np.full(t.size, "g"), p)
    if name != "Periodic-Other":  # spots modulate the amplitude of the rotators
        assert np.ptp(g) == pytest.approx(p["amplitude"], rel=0.01)
        assert model.magnitude(t + 5 * p["period"], np.full(t.size, "g"), p) == pytest.approx(g, abs=1e-6)


def test_blazar_red_noise_has_the_drawn_spectral_slope():
    from lenga.sim.classes.stochastic import red_noise

    x = red_noise(np.random.default_rng(1), 2**14, 2.0)
    assert x.std() == pytest.approx(1.0) and abs(x.mean()) < 1e-9
    power = np.abs(np.fft.rfft(x))[1:] ** 2
    freq = np.fft.rfftfreq(x.size)[1:]
    slope = np.polyfit(np.log(freq[10:2000]), np.log(power[10:2000]), 1)[0]
    assert slope == pytest.approx(-2.0, abs=0.3)


def test_cataclysmic_outbursts_and_novae():
    model = LIGHT_CURVE_CLASSES["CV/Nova"]
    ctx = SampleContext(epochs=np.arange(60000.0, 61000.0, 0.25), window=(60100.0, 61000.0), depth=20.6)
    kinds = {"nova": 0, "dwarf": 0}
    for k in range(40):
        p = model.sample(np.random.default_rng(k), ctx)
        up = model.brightening(ctx.epochs, p)
        assert up.min() == 0.0 and p["amplitude"].min() - 0.3 <= up.max() <= p["amplitude"].max() + 1e-9
        kinds["nova" if p["amplitude"].size == 1 and p["amplitude"][0] >= 8 else "dwarf"] += 1
        assert np.all(model.reference_magnitude(np.array(["r"]), p) == p["m_q"])
    assert 2 <= kinds["nova"] <= 16  # 20% novae


def test_yso_dips_are_deeper_in_the_blue():
    model = LIGHT_CURVE_CLASSES["YSO"]
    ctx = _ctx()
    for k in range(30):
        p = model.sample(np.random.default_rng(k), ctx)
        if p["kind"] == 1.0 and p["t_event"].size:
            t = np.array([p["t_event"][0]] * 2)
            dip = model._events(t, p)[0]
            g, r = model.magnitude(t, np.array(["g", "r"]), p)
            base_g, base_r = model.magnitude(t, np.array(["g", "r"]), {**p, "event_mag": 0 * p["event_mag"]})
            assert g - base_g == pytest.approx(1.44 * dip) and r - base_r == pytest.approx(dip) and dip > 0.29
            return
    pytest.fail("no dipper among 30 draws")


def test_seasons_leave_yearly_gaps_and_keep_the_last_night():
    rng = np.random.default_rng(12)
    nights = survey.night_conditions(survey.ZTF, rng, 60000, 3 * 365)
    ep = survey.schedule(survey.ZTF, rng, nights)
    night = np.unique(np.floor(ep.mjd))
    gaps = np.diff(night)
    yearly = gaps[gaps > 60]  # weather alone never stops a field for two months
    assert 2 <= yearly.size <= 3  # one gap a year in three years
    assert yearly == pytest.approx(np.full(yearly.size, 365.25 - survey.ZTF.season_days), abs=25)
    assert night[-1] > nights.night_mjd[-1] - 20  # observable now


def test_the_demo_stream_can_simulate_every_class():
    from lenga.decode import decode_message
    from lenga.sim.night import LC_CLASS_MIX, SimConfig, simulate

    assert set(LC_CLASS_MIX) == {c for names in ALERCE.values() for c in names} | {"star", "asteroid"}
    alerts = list(simulate(SimConfig(seed=3, n_objects=60, n_nights=2, class_mix=LC_CLASS_MIX)))
    seen = {a.class_name for a in alerts}
    assert all(seen & set(names) for names in ALERCE.values())  # every branch reaches the stream
    for a in alerts[::10]:  # packets of the new classes decode like any other
        assert decode_message(a.value).alert["objectId"] == a.object_id
