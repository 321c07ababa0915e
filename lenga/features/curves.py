"""Many light curves packed into flat arrays, the layout every feature family works on.

Per-curve Python overhead, not arithmetic, dominates feature extraction (lenga notes, stack facts):
curves are therefore kept as one sorted flat array with offsets (CSR layout). Rust extractors take
them as a list of array views (``tuples``); numpy code takes them as zero-padded 2-D blocks
(``padded_blocks``), grouped by length so that padding costs little.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

#: Cells (rows x padded width, or rows x width^2 for pairwise work) per padded block: ~32 MB of float64.
BLOCK_CELLS = 4_000_000


@dataclass(frozen=True)
class Curves:
    """Light curves as flat arrays ``t, y, err`` sorted by time within each curve.

    Curve ``i`` is ``slice(offsets[i], offsets[i + 1])``; ``t`` is strictly increasing inside it.
    """

    t: np.ndarray
    y: np.ndarray
    err: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def curve_index(self) -> np.ndarray:
        """Curve number of every point."""
        return np.repeat(np.arange(len(self)), self.lengths)

    def tuples(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(t, y, err)`` views per curve, the input of light-curve's ``Extractor.many``."""
        bounds = zip(self.offsets[:-1].tolist(), self.offsets[1:].tolist(), strict=True)
        return [(self.t[a:b], self.y[a:b], self.err[a:b]) for a, b in bounds]

    def subset(self, rows: np.ndarray) -> Curves:
        """The curves ``rows`` (in that order), re-packed."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        starts = self.offsets[rows]
        take = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return Curves(self.t[take], self.y[take], self.err[take], offsets)

    def reduce(self, ufunc: np.ufunc, values: np.ndarray) -> np.ndarray:
        """``ufunc.reduceat`` of per-point ``values`` over each curve (curves must be non-empty)."""
        return ufunc.reduceat(values, self.offsets[:-1])

    def padded_blocks(self, pairwise: bool = False) -> Iterator[tuple[np.ndarray, PaddedBlock]]:
        """Yield ``(rows, block)``: curves of similar length zero-padded to a common width.

        ``pairwise`` budgets width^2 cells per row, for O(n^2) algorithms over pairs of points.
        """
        lengths = self.lengths
        order = np.argsort(lengths, kind="stable")
        start = 0
        while start < len(order):
            stop = start + 1
            while stop < len(order):
                width = lengths[order[stop]]
                cells = width * width if pairwise else width
                if (stop - start + 1) * cells > BLOCK_CELLS:
                    break
                stop += 1
            rows = order[start:stop]
            yield rows, self._pad(rows)
            start = stop

    def _pad(self, rows: np.ndarray) -> PaddedBlock:
        lengths = self.lengths[rows]
        width = int(lengths.max())
        mask = np.arange(width)[None, :] < lengths[:, None]
        index = np.minimum(self.offsets[rows][:, None] + np.arange(width)[None, :], self.offsets[rows + 1][:, None] - 1)
        # padding repeats the last time (zero time step) and carries zero weight via ``mask``
        return PaddedBlock(t=self.t[index], y=np.where(mask, self.y[index], 0.0),
                           err=np.where(mask, self.err[index], 1.0), mask=mask)


@dataclass(frozen=True)
class PaddedBlock:
    """Rows of zero-padded curves: ``mask`` marks real points; padding sits at the end of each row."""

    t: np.ndarray
    y: np.ndarray
    err: np.ndarray
    mask: np.ndarray

    @property
    def n(self) -> np.ndarray:
        return self.mask.sum(axis=1)


def map_padded(curves: Curves, func: Callable[[PaddedBlock], np.ndarray], n_out: int,
               pairwise: bool = False) -> np.ndarray:
    """Apply ``func(block) -> (rows, n_out)`` to every padded block; results in curve order."""
    out = np.full((len(curves), n_out), np.nan)
    if len(curves):
        for rows, block in curves.padded_blocks(pairwise=pairwise):
            out[rows] = func(block)
    return out


def pack(group: np.ndarray, t: np.ndarray, y: np.ndarray, err: np.ndarray) -> tuple[Curves, np.ndarray]:
    """Pack points into curves by integer ``group`` id, sorted by time, duplicate times dropped.

    Returns the curves and the group id of each curve. The same detection reaches lenga in an alert
    and again in later alerts' histories, and light-curve refuses equal times, so for equal
    ``(group, t)`` only the first point is kept. Points that already come sorted are not re-sorted.
    """
    step = np.diff(group)
    if not ((step > 0) | ((step == 0) & (np.diff(t) >= 0))).all():
        order = np.lexsort((t, group))
        group, t, y, err = group[order], t[order], y[order], err[order]
    keep = np.ones(len(t), dtype=bool)
    keep[1:] = (group[1:] != group[:-1]) | (t[1:] != t[:-1])
    group, t, y, err = group[keep], t[keep], y[keep], err[keep]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if len(group) else np.zeros(0, np.int64)
    offsets = np.append(starts, len(group)).astype(np.int64)
    return Curves(t, y, err, offsets), group[starts]


def parabola_peak(x: np.ndarray, y: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Abscissa of the vertex of the parabola through points (i-1, i, i+1) of uniform grids.

    ``x`` and ``y`` are (rows, grid); at a grid edge, or when the three points are not concave, the
    grid point itself is returned.
    """
    rows = np.arange(len(i))
    size = x.shape[1]
    inner = (i > 0) & (i < size - 1)
    lo, hi = np.clip(i - 1, 0, size - 1), np.clip(i + 1, 0, size - 1)
    y0, y1, y2 = y[rows, lo], y[rows, i], y[rows, hi]
    curvature = y0 - 2.0 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(inner & (curvature < 0), 0.5 * (y0 - y2) / curvature, 0.0)
    return x[rows, i] + np.clip(shift, -0.5, 0.5) * (x[:, 1] - x[:, 0])
