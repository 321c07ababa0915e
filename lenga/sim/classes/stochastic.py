"""Stochastic branch: accreting black holes, cataclysmic variables and young stars.

QSO and AGN vary as damped random walks (Kelly, Bechtold & Siemiginowska 2009) with the parameter
scalings of MacLeod et al. (2010); blazars as steeper red noise (Timmer & König 1995 realisations);
cataclysmic variables as dwarf-nova outbursts or a classical nova eruption over a quiescent star; young
stellar objects as irregular variability plus extinction dips or accretion bursts (Cody et al. 2014).
Every process is realised once per object on a time grid covering its epochs, so the light curve is
a deterministic function of time afterwards.
"""

from __future__ import annotations

import numpy as np

from lenga.sim.lightcurves import (
    BAND_WAVELENGTH_NM,
    LightCurveModel,
    Params,
    band_values,
    ou_walk,
    register,
    time_average_magnitude,
)


class DampedRandomWalk(LightCurveModel):
    """An accreting black hole whose optical flux varies as a damped random walk (DRW).

    The DRW is an Ornstein-Uhlenbeck process with rest-frame damping time tau and asymptotic structure
    function SF_inf (rms = SF_inf / sqrt(2)); SF scales with rest wavelength as lambda^-0.479 (MacLeod
    et al. 2010). Class attributes give log10(tau_rest/d) and log10(SF_inf/mag) as (mean, sigma), the
    redshift range, the nucleus' mean magnitude range below the survey depth and the host's magnitude
    relative to the nucleus.
    """

    stamp_class = "AGN"
    host = "galaxy"
    LOG_TAU_REST: tuple[float, float]
    LOG_SF_INF: tuple[float, float]
    Z_RANGE: tuple[float, float]
    MAG_ABOVE_DEPTH = (4.0, 0.5)  # nucleus mean magnitude between depth - 4 and depth - 0.5
    HOST_MINUS_NUCLEUS: tuple[float, float]
    SF_WAVELENGTH_SLOPE = -0.479
    REF_WAVELENGTH_NM = BAND_WAVELENGTH_NM["r"]
    COLOUR = {"u": 0.3, "g": 0.15, "r": 0.0, "i": -0.1, "z": -0.15, "y": -0.2}  # m_band - m_r

    def sample(self, rng, ctx):
        z = rng.uniform(*self.Z_RANGE)
        tau = 10 ** rng.normal(*self.LOG_TAU_REST) * (1 + z)
        grid, walk = ou_walk(rng, ctx.epochs, tau)
        m_mean = rng.uniform(ctx.depth - self.MAG_ABOVE_DEPTH[0], ctx.depth - self.MAG_ABOVE_DEPTH[1])
        return {
            "z": z,
            "m_mean": m_mean,
            "sf_inf": 10 ** rng.normal(*self.LOG_SF_INF),
            "grid": grid,
            "walk": walk,  # unit-variance OU realisation
            "host_mag": m_mean + rng.uniform(*self.HOST_MINUS_NUCLEUS),
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


class QuasarDRW(DampedRandomWalk):
    """Quasar (type 1, point-like, luminous): SDSS Stripe 82 quasars have log10(tau_rest/d) ~ N(2.4, 0.3)
    and log10(SF_inf/mag) ~ N(-0.65, 0.15) in r (MacLeod et al. 2010); redshifts 0.3-2.5; the host is
    1-3 mag fainter than the nucleus."""

    name = "QSO"
    LOG_TAU_REST = (2.4, 0.3)
    LOG_SF_INF = (-0.65, 0.15)
    Z_RANGE = (0.3, 2.5)
    HOST_MINUS_NUCLEUS = (1.0, 3.0)


class SeyfertAGN(DampedRandomWalk):
    """Host-dominated type 1 AGN (Seyfert 1) at low redshift (0.02-0.35), ALeRCE's "AGN" class.

    Lower black-hole masses (~10^7 vs 10^8.5-9 Msun) and luminosities than quasars: with MacLeod et
    al.'s (2010) scalings tau ~ M_BH^0.21 and SF_inf ~ M_BH^0.18 10^(0.118 (M_i + 23)) that is tau
    ~0.35 dex shorter and SF_inf ~0.1 dex larger: log10(tau_rest/d) ~ N(2.05, 0.3), log10(SF_inf/mag)
    ~ N(-0.55, 0.15). The nucleus sits in a galaxy 0-2 mag brighter than itself.
    """

    name = "AGN"
    LOG_TAU_REST = (2.05, 0.3)
    LOG_SF_INF = (-0.55, 0.15)
    Z_RANGE = (0.02, 0.35)
    HOST_MINUS_NUCLEUS = (-2.0, 0.0)


def red_noise(rng: np.random.Generator, n: int, slope: float) -> np.ndarray:
    """Unit-variance Gaussian noise of power spectrum P(f) ~ f^-slope (Timmer & König 1995).

    Fourier amplitudes are Gaussian with variance P(f) (random phases): drawn on a grid twice as long
    as needed so the slowest mode is not forced to wrap around, then cut and standardised.
    """
    m = 2 * n
    freq = np.fft.rfftfreq(m)[1:]
    amplitude = freq ** (-slope / 2.0)
    spectrum = np.concatenate([[0.0], (rng.normal(size=freq.size) + 1j * rng.normal(size=freq.size)) * amplitude])
    x = np.fft.irfft(spectrum, m)[:n]
    return (x - x.mean()) / x.std()


class Blazar(LightCurveModel):
    """Blazar (BL Lac or FSRQ): jet-dominated, large-amplitude red-noise variability.

    Optical power spectra of blazars are power laws P(f) ~ f^-alpha with alpha ~ 1.5-2.5 (Chatterjee et
    al. 2012; Nilsson et al. 2018), steeper and with more long-term power than a DRW over the survey's
    time scales; rms 0.2-0.8 mag in r (ZTF blazars vary by 1 mag or more). Bluer when brighter: g
    varies 1.15 x r (Gu et al. 2006). Redshifts 0.05-2 (Fermi 4LAC, Ajello et al. 2020); the host is
    a giant elliptical 1-4 mag fainter than the jet.
    """

    name = "Blazar"
    stamp_class = "AGN"
    host = "galaxy"
    SLOPE = (1.5, 2.5)
    RMS_R = (0.2, 0.8)
    Z_RANGE = (0.05, 2.0)
    GRID_STEP_DAYS = 1.0
    MAG_ABOVE_DEPTH = (4.0, 0.5)
    HOST_MINUS_JET = (1.0, 4.0)
    COLOUR = {"u": 0.5, "g": 0.35, "r": 0.0, "i": -0.3, "z": -0.5, "y": -0.7}  # m_band - m_r (power law)
    AMPLITUDE_RATIO = {"u": 1.25, "g": 1.15, "r": 1.0, "i": 0.92, "z": 0.88, "y": 0.85}

    def sample(self, rng, ctx):
        grid = np.arange(ctx.epochs.min() - 1.0, ctx.epochs.max() + 2.0, self.GRID_STEP_DAYS)
        m_mean = rng.uniform(ctx.depth - self.MAG_ABOVE_DEPTH[0], ctx.depth - self.MAG_ABOVE_DEPTH[1])
        return {
            "z": rng.uniform(*self.Z_RANGE),
            "m_mean": m_mean,
            "rms": rng.uniform(*self.RMS_R),
            "grid": grid,
            "walk": red_noise(rng, grid.size, rng.uniform(*self.SLOPE)),
            "host_mag": m_mean + rng.uniform(*self.HOST_MINUS_JET),
        }

    def magnitude(self, t, band, params):
        walk = np.interp(t, params["grid"], params["walk"])
        amp = params["rms"] * band_values(self.AMPLITUDE_RATIO, band)
        return self.reference_magnitude(band, params) + amp * walk

    def reference_magnitude(self, band, params):
        return params["m_mean"] + band_values(self.COLOUR, band)


class CataclysmicVariable(LightCurveModel):
    """Cataclysmic variable: dwarf-nova outbursts (80%) or one classical-nova eruption (20%).

    Dwarf novae brighten by 2-6 mag (Warner 1995; Coppejans et al. 2016 find CRTS outburst amplitudes
    of 2-8 mag) every 15-300 d (quasi-periodic, 20% jitter), rise within ~1 d, stay up 2-12 d
    declining slowly (0.1 mag/d) and return to quiescence at 0.5-1.5 mag/d (Warner 1995, ch. 3).
    Quiescence lies between 2 mag above and 2 mag below the survey depth. Classical novae rise by
    8-15 mag (Warner 2008) from a quiescence 1-6 mag below the depth, and decline linearly in magnitude
    with t2 (time to fade 2 mag) log-uniform in 5-100 d (Strope, Schaefer & Henden 2010). Both are
    blue: g - r ~ 0 at peak (an optically thick disc / nova photosphere).
    """

    name = "CV/Nova"
    stamp_class = "VS"
    host = "star"
    NOVA_FRACTION = 0.2
    DN_AMPLITUDE = (2.0, 6.0)
    DN_RECURRENCE = (15.0, 300.0)  # log-uniform [d]
    DN_JITTER = 0.2
    DN_DURATION = (2.0, 12.0)
    DN_PLATEAU_DECLINE = 0.1  # mag/d
    DN_FAST_DECLINE = (0.5, 1.5)  # mag/d
    DN_QUIESCENCE = (-2.0, 2.0)  # relative to the depth
    NOVA_AMPLITUDE = (8.0, 15.0)
    NOVA_T2 = (5.0, 100.0)  # log-uniform [d]
    NOVA_QUIESCENCE = (1.0, 6.0)
    RISE_DAYS = 1.0
    COLOUR = {"u": -0.1, "g": 0.0, "r": 0.0, "i": 0.05, "z": 0.1, "y": 0.15}  # m_band - m_r

    def sample(self, rng, ctx):
        t0, t1 = float(ctx.epochs.min()), float(ctx.epochs.max())
        if rng.random() < self.NOVA_FRACTION:
            amplitude = rng.uniform(*self.NOVA_AMPLITUDE)
            t2 = np.exp(rng.uniform(*np.log(self.NOVA_T2)))
            return {"m_q": ctx.depth + rng.uniform(*self.NOVA_QUIESCENCE),
                    "t_out": np.array([rng.uniform(ctx.window[0] - 2 * t2, ctx.window[1])]),
                    "amplitude": np.array([amplitude]), "plateau": np.array([0.0]),
                    "plateau_decline": np.array([0.0]), "fast_decline": np.array([2.0 / t2])}
        recurrence = np.exp(rng.uniform(*np.log(self.DN_RECURRENCE)))
        gaps = recurrence * (1 + self.DN_JITTER * rng.normal(size=int((t1 - t0) / recurrence) + 3))
        t_out = t0 - rng.uniform(0, recurrence) + np.cumsum(np.maximum(gaps, recurrence / 4))
        n = t_out.size
        return {"m_q": ctx.depth + rng.uniform(*self.DN_QUIESCENCE), "t_out": t_out,
                "amplitude": rng.uniform(*self.DN_AMPLITUDE, n), "plateau": rng.uniform(*self.DN_DURATION, n),
                "plateau_decline": np.full(n, self.DN_PLATEAU_DECLINE),
                "fast_decline": rng.uniform(*self.DN_FAST_DECLINE, n)}

    def brightening(self, t: np.ndarray, params: Params) -> np.ndarray:
        """Magnitudes above quiescence at ``t``: the brightest outburst at each time."""
        dt = t[:, None] - params["t_out"][None, :]
        plateau = params["plateau"][None, :]
        peak = params["amplitude"][None, :]
        up = peak - params["plateau_decline"][None, :] * np.clip(dt, 0.0, plateau)
        up = up - params["fast_decline"][None, :] * np.maximum(dt - plateau, 0.0)
        up = np.where(dt < 0, peak * (1.0 + dt / self.RISE_DAYS), up)
        return np.maximum(up, 0.0).max(axis=1) if dt.shape[1] else np.zeros(t.shape)

    def magnitude(self, t, band, params):
        return self.reference_magnitude(band, params) - self.brightening(t, params)

    def reference_magnitude(self, band, params):
        return params["m_q"] + band_values(self.COLOUR, band)


class YoungStellarObject(LightCurveModel):
    """Young stellar object (T Tauri / Herbig Ae-Be): irregular variability, dips or bursts.

    Cody et al. (2014, CSI 2264) sort YSO light curves into dippers (~20-30%), bursters (~10-15%) and
    stochastic/quasi-periodic stars. Every object gets DRW variability with tau 1-10 d and rms
    0.05-0.3 mag (their amplitudes 0.1-1 mag); dippers (40% here) add extinction dips of 0.3-1.5 mag
    lasting 1-4 d, recurring quasi-periodically every 3-15 d (occulting inner-disc warps at corotation,
    McGinnis et al. 2015) with 70% of cycles showing a dip; bursters (20%) add accretion bursts of
    0.5-2 mag lasting 1-10 d every 5-50 d (Cody et al. 2017). Dips are extinction: A_g/A_r = 1.44
    (R_V = 3.1, Cardelli et al. 1989). Red, reddened pre-main-sequence colours: g - r ~ 1.3.
    """

    name = "YSO"
    stamp_class = "VS"
    host = "star"
    KINDS = (0.4, 0.4, 0.2)  # stochastic, dipper, burster
    TAU = (1.0, 10.0)
    RMS = (0.05, 0.3)
    DIP_DEPTH = (0.3, 1.5)
    DIP_DURATION = (1.0, 4.0)
    DIP_PERIOD = (3.0, 15.0)
    DIP_DUTY = 0.7
    BURST_AMPLITUDE = (0.5, 2.0)
    BURST_DURATION = (1.0, 10.0)
    BURST_INTERVAL = (5.0, 50.0)
    MAG_ABOVE_DEPTH = (6.0, 1.5)
    COLOUR = {"u": 3.0, "g": 1.3, "r": 0.0, "i": -0.7, "z": -1.1, "y": -1.4}  # m_band - m_r
    EXTINCTION_RATIO = {"u": 1.9, "g": 1.44, "r": 1.0, "i": 0.75, "z": 0.57, "y": 0.47}  # A_band / A_r

    def sample(self, rng, ctx):
        t0, t1 = float(ctx.epochs.min()), float(ctx.epochs.max())
        grid, walk = ou_walk(rng, ctx.epochs, rng.uniform(*self.TAU))
        kind = rng.choice(3, p=self.KINDS)
        events, depth, width = np.zeros(0), np.zeros(0), np.ones(0)
        if kind == 1:
            period = rng.uniform(*self.DIP_PERIOD)
            events = np.arange(t0 - rng.uniform(0, period), t1 + period, period)
            events = events[rng.random(events.size) < self.DIP_DUTY]
            depth = rng.uniform(*self.DIP_DEPTH, events.size)
            width = rng.uniform(*self.DIP_DURATION, events.size)
        elif kind == 2:
            interval = rng.uniform(*self.BURST_INTERVAL)
            events = np.arange(t0 - rng.uniform(0, interval), t1 + interval, interval)
            events = events + rng.uniform(-interval / 3, interval / 3, events.size)
            depth = -rng.uniform(*self.BURST_AMPLITUDE, events.size)
            width = rng.uniform(*self.BURST_DURATION, events.size)
        return {"kind": float(kind), "m_r": rng.uniform(ctx.depth - self.MAG_ABOVE_DEPTH[0],
                                                         ctx.depth - self.MAG_ABOVE_DEPTH[1]),
                "rms": rng.uniform(*self.RMS), "grid": grid, "walk": walk,
                "t_event": events, "event_mag": depth, "event_width": width}

    def _events(self, t: np.ndarray, params: Params) -> np.ndarray:
        """Dips (positive, extinction in r) or bursts (negative) as Gaussians in time, summed."""
        if params["t_event"].size == 0:
            return np.zeros(t.shape)
        x = (t[:, None] - params["t_event"][None, :]) / (params["event_width"][None, :] / 2.355)
        return (params["event_mag"][None, :] * np.exp(-0.5 * x**2)).sum(axis=1)

    def magnitude(self, t, band, params):
        walk = np.interp(t, params["grid"], params["walk"])
        ratio = band_values(self.EXTINCTION_RATIO, band)
        return params["m_r"] + band_values(self.COLOUR, band) + ratio * (params["rms"] * walk + self._events(t, params))

    def reference_magnitude(self, band, params):
        return time_average_magnitude(self, band, params, params["grid"])


STOCHASTIC = (QuasarDRW(), SeyfertAGN(), Blazar(), CataclysmicVariable(), YoungStellarObject())
for _model in STOCHASTIC:
    register(_model)
