"""matplotlib figures of the lake: pure functions, frames in, ``Figure``/``Axes`` drawn.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state, no GUI backend), so the same
functions serve the ``plot`` job (PNG files, headless) and the notebooks (inline display).

The object figure follows what ALeRCE's and Fink's explorers show a scientist deciding on a
follow-up: the light curve in magnitudes with the non-detections' 5-sigma limits as downward
triangles (a rise from below the limit is what makes a young transient), the same curve in
difference flux with the forced photometry (which, unlike magnitudes, is defined for faint and
negative fluxes), the three stamps of one alert, and both classifiers' probabilities.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lenga.viz.cutouts import CUTOUT_COLUMNS, CutoutError, display_limits, read_cutout
from lenga.viz.read import ObjectView

# Okabe & Ito's colour-blind-safe palette, one colour per band, in wavelength order.
BAND_COLOURS = {"u": "#56b4e9", "g": "#009e73", "r": "#d55e00", "i": "#cc79a7", "z": "#e69f00", "y": "#000000"}
DETECTION_MARKER, UPPER_LIMIT_MARKER, FORCED_MARKER = "o", "v", "s"
# Masked (NaN) pixels of a stamp are drawn in this colour, distinct from the grey scale.
MASKED_PIXEL_COLOUR = "#ff00ff"
STAMP_CMAP = colormaps["gray"].with_extremes(bad=MASKED_PIXEL_COLOUR)
NO_CLASSIFICATION = "no classification"
OBJECT_FIGSIZE = (12.0, 13.0)
DPI = 110


def band_colour(band: str) -> str:
    return BAND_COLOURS.get(band, "#777777")


def band_order(*columns) -> list[str]:
    """The distinct bands of ``columns`` in wavelength order (unknown names last, alphabetically)."""
    known = list(BAND_COLOURS)
    bands = {b for column in columns for b in column if isinstance(b, str)}
    return sorted(bands, key=lambda b: (known.index(b) if b in known else len(known), b))


def outside_legend(ax: Axes) -> None:
    """The legend right of the axes, where it hides no point."""
    if ax.has_data():
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0.0)


def plot_band_detections(ax: Axes, points: pd.DataFrame, value: str, error: str, band: str, colour) -> None:
    """One band's detections as error bars of ``value`` ± ``error`` (nothing for no point)."""
    if len(points):
        ax.errorbar(points["mjd"], points[value], yerr=points[error], fmt=DETECTION_MARKER,
                    color=colour, ms=5, capsize=2, label=f"{band} detections")


def plot_magnitudes(ax: Axes, detections: pd.DataFrame, non_detections: pd.DataFrame) -> None:
    """Detections (``magpsf`` ± ``sigmapsf``) per band and upper limits (``diffmaglim``) as
    downward triangles; magnitudes grow downwards."""
    limits = non_detections[non_detections["kind"] == "upper_limit"]
    for band in band_order(detections["band"], limits["band"]):
        colour = band_colour(band)
        plot_band_detections(ax, detections[detections["band"] == band], "magpsf", "sigmapsf", band, colour)
        band_limits = limits[limits["band"] == band]
        if len(band_limits):
            ax.plot(band_limits["mjd"], band_limits["diffmaglim"], UPPER_LIMIT_MARKER, color=colour, alpha=0.45,
                    ms=6, mfc="none", label=f"{band} upper limits")
    if not ax.yaxis_inverted():
        ax.invert_yaxis()
    ax.set_ylabel("magnitude (AB)")
    ax.grid(alpha=0.3)
    outside_legend(ax)


def plot_fluxes(ax: Axes, detections: pd.DataFrame, non_detections: pd.DataFrame) -> None:
    """Difference flux (nJy) of detections and forced photometry per band, with the zero line."""
    forced = non_detections[non_detections["kind"] == "forced"]
    for band in band_order(detections["band"], forced["band"]):
        colour = band_colour(band)
        plot_band_detections(ax, detections[detections["band"] == band], "psfFlux", "psfFluxErr", band, colour)
        band_forced = forced[forced["band"] == band]
        if len(band_forced):
            ax.errorbar(band_forced["mjd"], band_forced["psfFlux"], yerr=band_forced["psfFluxErr"],
                        fmt=FORCED_MARKER, color=colour, ms=3, alpha=0.5, capsize=0, label=f"{band} forced")
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xlabel("MJD")
    ax.set_ylabel("difference flux (nJy)")
    ax.grid(alpha=0.3)
    outside_legend(ax)


def plot_cutout(ax: Axes, payload: bytes | None, title: str) -> None:
    """One stamp, zscale-stretched on its finite pixels, masked pixels in ``MASKED_PIXEL_COLOUR``;
    a stamp that cannot be shown says why instead."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    try:
        image = read_cutout(payload)
    except CutoutError as exc:
        ax.text(0.5, 0.5, str(exc), ha="center", va="center", fontsize=8, wrap=True, transform=ax.transAxes)
        return
    limits = display_limits(image)
    if limits is None:
        ax.text(0.5, 0.5, "no finite pixel", ha="center", va="center", fontsize=8, transform=ax.transAxes)
        return
    ax.imshow(np.ma.masked_invalid(image), origin="lower", cmap=STAMP_CMAP, vmin=limits[0], vmax=limits[1],
              interpolation="nearest")


def plot_cutouts(axes, alert: dict | None) -> None:
    """Science, template and difference stamps of one alert on three axes."""
    for ax, (column, name) in zip(axes, CUTOUT_COLUMNS.items(), strict=True):
        plot_cutout(ax, alert.get(column) if alert else None, name)
    if alert:
        axes[0].set_ylabel(f"candid {alert['candid']}\nMJD {alert['mjd']:.4f} ({alert['band']})", fontsize=8)


def plot_probabilities(ax: Axes, probabilities: pd.DataFrame | None, title: str) -> None:
    """Class probabilities as horizontal bars, most probable on top; "no classification" when
    ``probabilities`` is ``None`` or empty."""
    ax.set_title(title, fontsize=9)
    if probabilities is None or probabilities.empty:
        ax.text(0.5, 0.5, NO_CLASSIFICATION, ha="center", va="center", fontsize=10, color="0.4",
                transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    rows = probabilities.sort_values("probability")
    bars = ax.barh(rows["class_name"], rows["probability"], color="#0072b2")
    ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    ax.set_xlim(0.0, 1.1)
    ax.set_xlabel("probability")
    ax.tick_params(axis="y", labelsize=8)


def classifier_title(probabilities: pd.DataFrame | None, what: str) -> str:
    if probabilities is None or probabilities.empty:
        return what
    first = probabilities.iloc[0]
    return f"{what}: {first['classifier']} {first['classifier_version']}"


def object_figure(view: ObjectView) -> Figure:
    """The whole picture of one object: light curve (magnitudes and fluxes), the three stamps of
    one alert, and the stamp and light-curve classifiers' probabilities."""
    fig = Figure(figsize=OBJECT_FIGSIZE, dpi=DPI, layout="constrained")
    grid = fig.add_gridspec(4, 3, height_ratios=[3.0, 2.0, 2.4, 2.4])
    mag = fig.add_subplot(grid[0, :])
    flux = fig.add_subplot(grid[1, :], sharex=mag)
    plot_magnitudes(mag, view.detections, view.non_detections)
    plot_fluxes(flux, view.detections, view.non_detections)
    n_limits = int((view.non_detections["kind"] == "upper_limit").sum())
    n_forced = int((view.non_detections["kind"] == "forced").sum())
    mag.set_title(f"{view.survey.upper()} {view.object_id}: {len(view.detections)} detections, "
                  f"{n_limits} upper limits, {n_forced} forced photometry points")
    plot_cutouts([fig.add_subplot(grid[2, i]) for i in range(3)], view.alert)
    plot_probabilities(fig.add_subplot(grid[3, 0]), view.stamp, classifier_title(view.stamp, "stamp"))
    levels = view.light_curve
    for column, level in ((1, "top"), (2, "leaf")):
        rows = None if levels is None else levels[levels["level"] == level]
        plot_probabilities(fig.add_subplot(grid[3, column]), rows, classifier_title(rows, f"light curve ({level})"))
    return fig


def plot_class_distribution(ax: Axes, counts: pd.DataFrame, title: str) -> None:
    """Objects per most probable class (``class_name``, ``objects`` columns), as bars."""
    ax.set_title(title, fontsize=10)
    if counts is None or counts.empty:
        ax.text(0.5, 0.5, NO_CLASSIFICATION, ha="center", va="center", color="0.4", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    rows = counts.sort_values("objects", ascending=False)
    bars = ax.bar(rows["class_name"], rows["objects"], color="#0072b2")
    ax.bar_label(bars, fontsize=8)
    ax.set_ylabel("objects")
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)


def plot_feature_space(ax: Axes, features: pd.DataFrame, x: str, y: str, label: str) -> None:
    """Two features against each other, one colour per ``label`` value (e.g. the most probable
    class, or the cross-matched catalog type)."""
    for i, (value, group) in enumerate(features.groupby(label, dropna=False)):
        ax.scatter(group[x], group[y], s=14, alpha=0.8, color=f"C{i % 10}", label=str(value))
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    if ax.has_data():
        ax.legend(fontsize=7, title=label, title_fontsize=7)
