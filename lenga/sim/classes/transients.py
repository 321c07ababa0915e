"""Transient branch: supernovae as parametric light curves with class-specific parameter distributions.

Every supernova is drawn the same way (:class:`Supernova`): a peak absolute magnitude from the class's
luminosity function, a redshift from a volume-limited p(z) ~ z^2 up to where the mean peak reaches the
survey depth, rest-frame time scales stretched by (1 + z), a peak time around the alert window and a
host galaxy. The classes differ in their luminosity function, time scales, colours and light-curve
shape: Bazin et al. (2009) rise/fall for SNe Ia, Ibc and superluminous SNe, a plateau and
radioactive tail for SNe II. No K-correction: band offsets at peak stand for the mean observed colours.
"""

from __future__ import annotations

import numpy as np

from lenga.sim.lightcurves import (
    LightCurveModel,
    Params,
    SampleContext,
    band_values,
    distance_modulus,
    flux_to_mag,
    redshift_at_distance_modulus,
    register,
)


class Supernova(LightCurveModel):
    """A supernova: draws shared by every class, light-curve shape given by :meth:`shape`.

    ``magnitude = m_peak + PEAK_COLOUR[band] + shape(t - t_peak)``, where ``shape`` is 0 at peak in the
    colour reference band (g) and ``inf`` long before the explosion. Class attributes set the
    distributions: ``PEAK_ABS_MAG`` (mean, sigma), rest-frame ``TAU_RISE``/``TAU_FALL`` ranges [d],
    ``PEAK_BEFORE_WINDOW``/``PEAK_AFTER_WINDOW`` (how far before/after the alert window the peak may
    fall [d]) and the host's absolute magnitude ``HOST_ABS_MAG`` (mean, sigma).
    """

    stamp_class = "SN"
    host = "galaxy"
    Z_MIN = 0.01
    PEAK_ABS_MAG: tuple[float, float]
    TAU_RISE: tuple[float, float]
    TAU_FALL: tuple[float, float]
    PEAK_COLOUR: dict[str, float]  # m_band - m_g at peak
    FALL_STRETCH: dict[str, float]  # decline time scale relative to g
    PEAK_BEFORE_WINDOW = 25.0
    PEAK_AFTER_WINDOW = 10.0
    HOST_ABS_MAG = (-20.5, 1.0)  # Sullivan et al. (2006) SN Ia hosts

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> Params:
        mean_abs = self.PEAK_ABS_MAG[0]
        z_max = max(redshift_at_distance_modulus(ctx.depth - mean_abs), 2 * self.Z_MIN)
        z = (self.Z_MIN**3 + rng.random() * (z_max**3 - self.Z_MIN**3)) ** (1 / 3)  # p(z) ~ z^2
        t_start, t_end = ctx.window
        mu = float(distance_modulus(z))
        params = {
            "z": z,
            "m_peak": mean_abs + rng.normal(0, self.PEAK_ABS_MAG[1]) + mu,
            "t_peak": rng.uniform(t_start - self.PEAK_BEFORE_WINDOW, t_end + self.PEAK_AFTER_WINDOW),
            "tau_rise": rng.uniform(*self.TAU_RISE) * (1 + z),
            "tau_fall": rng.uniform(*self.TAU_FALL) * (1 + z),
            "host_mag": rng.normal(*self.HOST_ABS_MAG) + mu,
        }
        params.update(self.sample_shape(rng, z))
        return params

    def sample_shape(self, rng: np.random.Generator, z: float) -> Params:
        """Class-specific shape parameters (observer frame); none for a Bazin light curve."""
        return {}

    def shape(self, dt: np.ndarray, band: np.ndarray, params: Params) -> np.ndarray:
        """Bazin et al. (2009) ``A exp(-x/tau_fall) / (1 + exp(-x/tau_rise))`` in magnitudes, with its
        maximum (at x = tau_rise ln(tau_fall/tau_rise - 1)) placed on ``dt = 0`` and normalised there."""
        tau_rise = params["tau_rise"]
        tau_fall = params["tau_fall"] * band_values(self.FALL_STRETCH, band)
        lag = tau_rise * np.log(tau_fall / tau_rise - 1.0)

        def bazin(x):
            return np.exp(-x / tau_fall) / (1.0 + np.exp(-x / tau_rise))

        with np.errstate(over="ignore"):
            return flux_to_mag(bazin(dt + lag) / bazin(lag))

    def magnitude(self, t, band, params):
        return params["m_peak"] + band_values(self.PEAK_COLOUR, band) + self.shape(t - params["t_peak"], band, params)

    def reference_magnitude(self, band, params):
        return np.full(band.shape, np.inf)


class SupernovaIa(Supernova):
    """Type Ia supernova with the Bazin et al. (2009) rise/fall flux model.

    Peak absolute magnitude M_B = -19.3 with 0.12 mag intrinsic scatter after standardisation
    (Scolnic et al. 2018); rest-frame tau_rise 1.5-4 d and tau_fall 15-35 d bracket the Bazin fits to
    SNLS SNe Ia. Band offsets at peak and slower red declines approximate the Hsiao et al. (2007)
    template; the host is a galaxy whose absolute magnitude follows Sullivan et al. (2006).
    """

    name = "SNIa"
    PEAK_ABS_MAG = (-19.3, 0.12)
    TAU_RISE = (1.5, 4.0)
    TAU_FALL = (15.0, 35.0)
    PEAK_COLOUR = {"u": 0.5, "g": 0.0, "r": 0.05, "i": 0.6, "z": 0.5, "y": 0.6}
    FALL_STRETCH = {"u": 0.8, "g": 1.0, "r": 1.3, "i": 1.5, "z": 1.6, "y": 1.7}


class SupernovaIbc(Supernova):
    """Stripped-envelope (Ib, Ic, Ic-BL) supernova, Bazin light curve.

    Peak M = -17.6 +- 0.9 (Richardson et al. 2014 find M_B = -17.5 +- 0.9 for Ibc; Drout et al. 2011
    M_R ~ -18); faster than SNe Ia: rise ~10-15 d and early decline ~0.07 mag/d in g (Taddia et al.
    2015), i.e. Bazin rest tau_rise 1-3 d and tau_fall 8-20 d; redder at peak, g - r ~ 0.3-0.4 (Drout
    et al. 2011). Hosts are star-forming galaxies, M ~ -20 +- 1 (Kelly & Kirshner 2012).
    """

    name = "SNIbc"
    PEAK_ABS_MAG = (-17.6, 0.9)
    TAU_RISE = (1.0, 3.0)
    TAU_FALL = (8.0, 20.0)
    PEAK_COLOUR = {"u": 1.0, "g": 0.0, "r": -0.35, "i": -0.5, "z": -0.55, "y": -0.6}
    FALL_STRETCH = {"u": 0.7, "g": 1.0, "r": 1.4, "i": 1.6, "z": 1.7, "y": 1.8}
    PEAK_BEFORE_WINDOW = 20.0
    HOST_ABS_MAG = (-20.0, 1.0)


class SupernovaII(Supernova):
    """Hydrogen-rich core-collapse supernova (IIP/IIL): fast rise, plateau, drop, radioactive tail.

    In magnitudes after peak: a linear plateau decline s2 = 0-3 mag/100 d (Anderson et al. 2014: mean
    1.27 mag/100 d in V) lasting t_pt = 60-120 rest days (their optically thick phase, OPTd), a drop of
    1-2.6 mag over a logistic width of 3-8 d (Olivares et al. 2010; Valenti et al. 2016) onto the 56Co
    tail at 0.98 mag/100 d. Peak M = -16.7 +- 1.0 (Anderson et al. 2014). Rise: logistic with tau_rise
    1.5-4 rest days (rise times ~5-15 d, González-Gaitán et al. 2015). Blue bands decline faster on the
    plateau (g ~1.6 x r; Faran et al. 2014) and g - r reddens from ~0 at peak.
    """

    name = "SNII"
    PEAK_ABS_MAG = (-16.7, 1.0)
    TAU_RISE = (1.5, 4.0)
    TAU_FALL = (60.0, 120.0)  # the plateau length t_pt
    PEAK_COLOUR = {"u": 0.3, "g": 0.0, "r": 0.0, "i": 0.05, "z": 0.1, "y": 0.15}
    FALL_STRETCH = {"u": 2.5, "g": 1.6, "r": 1.0, "i": 0.8, "z": 0.7, "y": 0.7}  # plateau slope ratio
    PEAK_BEFORE_WINDOW = 100.0
    HOST_ABS_MAG = (-20.0, 1.0)
    PLATEAU_SLOPE = (0.0, 3.0)  # mag per 100 rest days
    DROP_MAG = (1.0, 2.6)
    DROP_WIDTH = (3.0, 8.0)  # rest days
    TAIL_SLOPE = 0.98  # mag per 100 rest days: 56Co -> 56Fe, full trapping

    def sample_shape(self, rng, z):
        return {"plateau_slope": rng.uniform(*self.PLATEAU_SLOPE) / 100.0 / (1 + z),
                "drop_mag": rng.uniform(*self.DROP_MAG),
                "drop_width": rng.uniform(*self.DROP_WIDTH) * (1 + z),
                "tail_slope": self.TAIL_SLOPE / 100.0 / (1 + z)}

    def shape(self, dt, band, params):
        with np.errstate(over="ignore"):
            rise = flux_to_mag(2.0 / (1.0 + np.exp(-np.minimum(dt, 0.0) / params["tau_rise"])))
            after = np.maximum(dt, 0.0)
            t_pt = params["tau_fall"]
            drop = params["drop_mag"] / (1.0 + np.exp(-(after - t_pt) / params["drop_width"]))
            drop0 = params["drop_mag"] / (1.0 + np.exp(t_pt / params["drop_width"]))  # so shape(0) = 0
        plateau = params["plateau_slope"] * band_values(self.FALL_STRETCH, band) * np.minimum(after, t_pt)
        tail = params["tail_slope"] * np.maximum(after - t_pt, 0.0)
        return rise + plateau + drop - drop0 + tail


class SuperluminousSupernova(Supernova):
    """Superluminous supernova (SLSN-I and -II), Bazin light curve.

    Peak M_g = -21.1 +- 0.7 (De Cia et al. 2018; Lunnan et al. 2018), slow: rest-frame rise 20-60 d and
    decline e-folding 30-90 d (Nicholl et al. 2017; De Cia et al. 2018), i.e. Bazin tau_rise 5-15 d and
    tau_fall 30-90 d; blue at peak (g - r ~ -0.1, Lunnan et al. 2018). Faint dwarf hosts,
    M ~ -17.3 +- 1.2 (Lunnan et al. 2014; Perley et al. 2016).
    """

    name = "SLSN"
    PEAK_ABS_MAG = (-21.1, 0.7)
    TAU_RISE = (5.0, 15.0)
    TAU_FALL = (30.0, 90.0)
    PEAK_COLOUR = {"u": -0.1, "g": 0.0, "r": 0.1, "i": 0.2, "z": 0.3, "y": 0.4}
    FALL_STRETCH = {"u": 0.8, "g": 1.0, "r": 1.15, "i": 1.3, "z": 1.4, "y": 1.5}
    PEAK_BEFORE_WINDOW = 120.0
    PEAK_AFTER_WINDOW = 40.0
    HOST_ABS_MAG = (-17.3, 1.2)


TRANSIENTS = (SupernovaIa(), SupernovaIbc(), SupernovaII(), SuperluminousSupernova())
for _model in TRANSIENTS:
    register(_model)
