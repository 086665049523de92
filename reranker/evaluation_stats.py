"""Mergeable sufficient statistics of :func:`reranker.evaluation.evaluate`.

Every number ``evaluate`` reports is a function of sums: per slice, the number of utterances and
hypotheses, the sums of top-1 SemER and IE, for the calibration populations (every hypothesis,
and each utterance's top one) the count, score sum and correct sum of each bin and the sum of
squared errors, and for smooth ECE the residuals ``y - s`` of the chosen population spread onto
a grid by linear binning (:func:`reranker.kernel_calibration.linear_binning`). Sums of separate
data partitions add up, so a dataset is evaluated partition by partition (each holding whole
utterances) and the statistics merged at the end: every metric comes out as on the whole table,
exactly at the requested bins, up to floating-point summation order. Smooth ECE reads the merged
residual masses at the grids its fixed-point search asks for: linear binning on a grid is the
exact restriction of linear binning on any finer grid of which it is a sub-grid.

Equal-mass bins (``strategy="quantile"``) have edges at each slice's own score quantiles: the
statistics of partitions merge when they were taken at the same edges, computed beforehand from
the scores of the whole dataset (:class:`reranker.dataset_scores.ScoreSample`), as
:func:`reranker.streaming.evaluate_dataset` does in a first pass.

Bootstrap resamples are merged the same way: with Poisson weights that depend only on the
utterance id and the seed (:mod:`reranker.bootstrap`), each partition adds its weighted sums for
every resample, and the intervals do not depend on how the data were partitioned.

Layout of one statistics vector (length ``6 + 6 * n_bins + grid + 1``)::

    0 utterances, 1 hypotheses, 2 sum top-1 SemER, 3 sum top-1 IE,
    4 sum (s - y)^2 over hypotheses, 5 sum (s - y)^2 over top-1,
    then per bin: hypotheses' count, sum s, sum y; top-1 count, sum s, sum y;
    then the residual mass at each of the grid's points (none in the bootstrap resamples).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from reranker._validation import POPULATIONS, check_choice, references_needed
from reranker.calibration import bin_indices
from reranker.dataset_scores import Slices, score_sample, table_slices
from reranker.errors import DataError
from reranker.evaluation import METRIC_KEYS, reliability_json
from reranker.kernel_calibration import first_grid, smooth_ece_of_masses
from reranker.tables import ScoredTable

__all__ = [
    "INTERVAL_KEYS",
    "EvaluationStats",
    "FinerGridNeeded",
    "evaluation_stats",
]

FloatArray = NDArray[np.float64]
INTERVAL_KEYS = ("top1_semer", "top1_ie", "ece", "mce", "brier", "ece_top1")
_FIXED = 6
Edges = Mapping[str, FloatArray]
"""Inner quantile edges per slice: ``"hyp:<slice>"`` / ``"top:<slice>"``, where ``<slice>`` is
``all``, ``domain=<D>`` or ``device=<d>`` (the slice of the hypotheses, or of the top ones)."""


class FinerGridNeeded(DataError):
    """Smooth ECE needs residual masses on a finer grid than the statistics hold."""

    def __init__(self, grid: int) -> None:
        super().__init__(f"smooth ECE needs a grid of {grid} intervals")
        self.grid = grid


def _width(n_bins: int, grid: int) -> int:
    return _FIXED + 6 * n_bins + (grid + 1 if grid else 0)


def _bin_entries(
    t: ScoredTable, h: NDArray[np.int64], u: NDArray[np.int64], bins: tuple[Any, Any], n_bins: int
) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """Columns and values added by hypotheses ``h`` and top rows of utterances ``u``."""
    assert t.correct is not None and t.semer is not None
    y, s = t.correct.astype(np.float64), t.score
    top = t.top[u]
    yt, st = y[top], s[top]
    hb, tb = bins[0][h], bins[1][u]
    b0, t0 = _FIXED, _FIXED + 3 * n_bins
    ones_h, ones_u = np.ones(h.size), np.ones(u.size)
    hyp_cols = [np.full(h.size, 1), np.full(h.size, 4), b0 + hb, b0 + n_bins + hb]
    hyp_cols.append(b0 + 2 * n_bins + hb)
    hyp_values = [ones_h, (s[h] - y[h]) ** 2, ones_h, s[h], y[h]]
    top_cols = [np.full(u.size, c) for c in (0, 2, 3, 5)]
    top_cols += [t0 + tb, t0 + n_bins + tb, t0 + 2 * n_bins + tb]
    top_values = [ones_u, t.semer[top], 1.0 - yt, (st - yt) ** 2, ones_u, st, yt]
    return hyp_cols, hyp_values, top_cols, top_values


def _entries(
    t: ScoredTable,
    rows: tuple[NDArray[np.int64], NDArray[np.int64], int],
    bins: tuple[NDArray[np.int64], NDArray[np.int64]],
    n_bins: int,
    grid: int,
    population: str,
) -> tuple[NDArray[np.int64], NDArray[np.int64], FloatArray, tuple[int, int]]:
    """Row, column and value of every addition to the statistics vectors, and their shape.

    ``rows = (hyp_row, utt_row, n_rows)``: hypothesis i adds to row ``hyp_row[i]``, utterance u
    (its top hypothesis) to row ``utt_row[u]``; negative rows are left out. With ``grid > 0``
    the population's residuals are spread onto the grid's points.
    """
    hyp_row, utt_row, n_rows = rows
    h, u = np.flatnonzero(hyp_row >= 0), np.flatnonzero(utt_row >= 0)
    hyp_cols, hyp_values, top_cols, top_values = _bin_entries(t, h, u, bins, n_bins)
    hr, ur = hyp_row[h], utt_row[u]
    row_list = [hr] * len(hyp_cols) + [ur] * len(top_cols)
    cols, values = hyp_cols + top_cols, hyp_values + top_values
    if grid:
        assert t.correct is not None
        which, r_rows = (t.top[u], ur) if population == "top1" else (h, hr)
        pos = t.score[which] * grid
        j = np.minimum(pos.astype(np.int64), grid - 1)
        right = (pos - j) * (t.correct[which] - t.score[which])
        g0 = _FIXED + 6 * n_bins
        row_list += [r_rows, r_rows]
        cols += [g0 + j, g0 + j + 1]
        values += [(t.correct[which] - t.score[which]) - right, right]
    shape = (n_rows, _width(n_bins, grid))
    return np.concatenate(row_list), np.concatenate(cols), np.concatenate(values), shape


def _dense_sums(*args: Any) -> FloatArray:
    """The statistics vectors of :func:`_entries` (same arguments) as a dense array: one
    ``bincount`` over ``row * width + column`` (a few slices, so the array is small)."""
    row, col, values, (n_rows, width) = _entries(*args)
    flat = np.bincount(row * width + col, weights=values, minlength=n_rows * width)
    return np.asarray(flat, dtype=np.float64).reshape(n_rows, width)


def _sparse_sums(*args: Any) -> sparse.csr_matrix:
    """The statistics vectors of :func:`_entries` (same arguments) as rows of a sparse matrix
    (one row per utterance for the bootstrap)."""
    row, col, values, shape = _entries(*args)
    return sparse.coo_matrix((values, (row, col)), shape=shape).tocsr()


def _bins(
    score: FloatArray,
    groups: NDArray[np.int64],
    keys: list[str],
    n_bins: int,
    edges: Edges | None,
) -> NDArray[np.int64]:
    """Bin of each score; with quantile ``edges`` each group ``g`` uses ``edges[keys[g]]``."""
    if edges is None:
        return bin_indices(score, n_bins=n_bins)[0]
    out = np.zeros(score.size, dtype=np.int64)
    for g, key in enumerate(keys):
        mask = groups == g
        if mask.any():
            out[mask] = np.searchsorted(edges[key], score[mask], side="right")
    return out


def _slice_key(family: str, name: str) -> str:
    return "all" if family == "all" else f"{family}={name}"


@dataclass(frozen=True)
class _Options:
    n_bins: int
    strategy: str
    population: str
    grid: int
    edges: Edges | None


def _family(t: ScoredTable, family: str, sl: Slices, o: _Options) -> dict[str, FloatArray]:
    keys = [_slice_key(family, name) for name in sl.names]
    edges = o.edges if o.strategy == "quantile" else None
    hyp_bin = _bins(t.score, sl.hyp, [f"hyp:{k}" for k in keys], o.n_bins, edges)
    top_bin = _bins(t.score[t.top], sl.top, [f"top:{k}" for k in keys], o.n_bins, edges)
    rows = (sl.hyp, sl.top, len(keys))
    dense = _dense_sums(t, rows, (hyp_bin, top_bin), o.n_bins, o.grid, o.population)
    return {name: dense[k] for k, name in enumerate(sl.names)}


@dataclass
class EvaluationStats:
    """Sums behind every number of an evaluation; ``a + b`` merges two partitions.

    Attributes
    ----------
    n_bins, strategy, population, grid : how the sums were taken (``grid``: intervals of the
        smooth-ECE residual grid).
    overall : statistics vector of the whole table.
    by_domain, by_device : slice name -> statistics vector.
    replicates : ``(n_boot, width)`` statistics of each bootstrap resample (overall slice,
        without the grid).
    edges : the quantile edges the bins were taken at (``strategy="quantile"``).
    """

    n_bins: int
    strategy: str
    overall: FloatArray
    by_domain: dict[str, FloatArray] = field(default_factory=dict)
    by_device: dict[str, FloatArray] = field(default_factory=dict)
    replicates: FloatArray | None = None
    population: str = "all"
    grid: int = 0
    edges: Edges | None = None

    def __add__(self, other: EvaluationStats) -> EvaluationStats:
        mine = (self.n_bins, self.strategy, self.population, self.grid)
        if mine != (other.n_bins, other.strategy, other.population, other.grid):
            raise DataError("cannot merge statistics taken at different bins or grids")
        if (self.replicates is None) != (other.replicates is None):
            raise DataError("cannot merge statistics with and without bootstrap resamples")
        return replace(
            self,
            overall=self.overall + other.overall,
            by_domain=_merge(self.by_domain, other.by_domain),
            by_device=_merge(self.by_device, other.by_device),
            replicates=(
                None
                if self.replicates is None or other.replicates is None
                else self.replicates + other.replicates
            ),
        )

    def report(self, *, population: str | None = None, confidence: float = 0.9) -> dict[str, Any]:
        """The object :func:`reranker.evaluation.evaluate` returns, from the merged sums.

        ``population`` defaults to the one the statistics were taken for; another one is
        possible only without a residual grid (``grid=0``: smooth ECE is then ``None``).
        Raises :class:`FinerGridNeeded` if smooth ECE needs a finer grid than ``grid``.
        """
        if population is not None and population != self.population:
            check_choice("population", population, POPULATIONS)
            if self.grid:
                raise DataError(f"these statistics were taken for population {self.population!r}")
            return replace(self, population=population).report(confidence=confidence)
        result = self._metrics(self.overall)
        for family in ("by_domain", "by_device"):
            slices = getattr(self, family)
            result[family] = {k: self._metrics(slices[k]) for k in sorted(slices)}
        reliability = self._reliability()
        if self.replicates is not None:
            from reranker.bootstrap import bootstrap_intervals

            reps = _rates(self.replicates, self.n_bins, self.population)
            values = np.column_stack([reps[k] for k in INTERVAL_KEYS])
            estimates = [np.nan if result[k] is None else result[k] for k in INTERVAL_KEYS]
            low, high = bootstrap_intervals(estimates, values, confidence=confidence)
            result["intervals"] = {
                k: [float(lo), float(hi)]
                for k, lo, hi in zip(INTERVAL_KEYS, low, high, strict=True)
            }
            result["confidence"] = confidence
            frac, boot = _fractions(self.overall, self.replicates, self.n_bins, self.population)
            reliability += list(bootstrap_intervals(frac, boot, confidence=confidence))
        result["reliability"] = reliability_json(*reliability)
        return result

    def _metrics(self, v: FloatArray) -> dict[str, Any]:
        rates = _rates(v, self.n_bins, self.population)
        out: dict[str, Any] = {
            "n_utterances": int(np.rint(v[0])),
            "n_hypotheses": int(np.rint(v[1])),
        }
        for key in METRIC_KEYS[2:]:
            value = float(rates[key][0])
            out[key] = None if np.isnan(value) else value
        out["smooth_ece"] = self._smooth_ece(v)
        return out

    def _smooth_ece(self, v: FloatArray) -> float | None:
        n = int(np.rint(v[0] if self.population == "top1" else v[1]))
        if n == 0 or not self.grid:
            return None
        fine = v[_FIXED + 6 * self.n_bins :] / n

        def masses(m: int) -> FloatArray:
            if m > self.grid:
                raise FinerGridNeeded(m)
            return _coarsen(fine, m)

        return smooth_ece_of_masses(masses, n)

    def _reliability(self) -> list[FloatArray]:
        cal = _calibration_bins(np.atleast_2d(self.overall), self.n_bins, self.population)[0]
        count, sum_s, sum_y = cal[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, sum_s / np.where(count > 0, count, 1), np.nan)
            frac = np.where(count > 0, sum_y / np.where(count > 0, count, 1), np.nan)
        if self.edges is not None and self.strategy == "quantile":
            inner = self.edges["hyp:all" if self.population == "all" else "top:all"]
            edges = np.concatenate([[0.0], inner, [1.0]])
        else:
            edges = bin_indices(np.zeros(0), n_bins=self.n_bins)[1]
        return [edges, count, mean, frac]


def _coarsen(fine: FloatArray, m: int) -> FloatArray:
    """Masses on ``m`` intervals from masses on ``len(fine) - 1`` (a multiple of ``m``): each
    fine point's mass splits between the coarse points around it in proportion to distance."""
    k = (fine.size - 1) // m
    if k == 1:
        return fine.copy()
    t = np.arange(k) / k
    inner = fine[:-1].reshape(m, k)
    coarse = np.zeros(m + 1)
    coarse[:m] += inner @ (1.0 - t)
    coarse[1:] += inner @ t
    coarse[m] += fine[-1]
    return coarse


def _merge(a: Mapping[str, FloatArray], b: Mapping[str, FloatArray]) -> dict[str, FloatArray]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out[k] + v if k in out else v
    return out


def _calibration_bins(
    v: FloatArray, n_bins: int, population: str
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(count, sum s, sum y)`` per bin of the population, the top ones' bins, and the
    population's squared-error sum, of statistics vectors ``v`` (shape ``(k, width)``)."""
    b0, t0 = _FIXED, _FIXED + 3 * n_bins
    top = v[:, t0 : t0 + 3 * n_bins].reshape(-1, 3, n_bins)
    if population == "all":
        return v[:, b0 : b0 + 3 * n_bins].reshape(-1, 3, n_bins), top, v[:, 4]
    return top, top, v[:, 5]


def _fractions(
    overall: FloatArray, replicates: FloatArray, n_bins: int, population: str
) -> tuple[FloatArray, FloatArray]:
    """Fraction correct per bin of the population, and of each resample."""
    both = np.vstack([overall[: replicates.shape[1]], replicates])
    cal = _calibration_bins(both, n_bins, population)[0]
    count, sum_y = cal[:, 0], cal[:, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(count > 0, sum_y / np.where(count > 0, count, 1), np.nan)
    return frac[0], frac[1:]


def _rates(v: FloatArray, n_bins: int, population: str) -> dict[str, FloatArray]:
    """Every rate of statistics vectors ``v`` (shape ``(width,)`` or ``(k, width)``); nan if empty."""
    v = np.atleast_2d(v)
    cal, top, sq = _calibration_bins(v, n_bins, population)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_top = v[:, 0]
        ece, mce = _ece_mce(cal)
        return {
            "top1_semer": np.where(n_top > 0, v[:, 2] / n_top, np.nan),
            "top1_ie": np.where(n_top > 0, v[:, 3] / n_top, np.nan),
            "ece": ece,
            "mce": mce,
            "brier": np.where(cal[:, 0].sum(axis=1) > 0, sq / cal[:, 0].sum(axis=1), np.nan),
            "ece_top1": _ece_mce(top)[0],
        }


def _ece_mce(bins: FloatArray) -> tuple[FloatArray, FloatArray]:
    count, sum_s, sum_y = bins[:, 0], bins[:, 1], bins[:, 2]
    total = count.sum(axis=1)
    gap = np.abs(sum_y - sum_s)
    with np.errstate(invalid="ignore", divide="ignore"):
        ece = np.where(total > 0, gap.sum(axis=1) / total, np.nan)
        per_bin = np.where(count > 0, gap / np.where(count > 0, count, 1), -np.inf)
        mce = per_bin.max(axis=1)
    return ece, np.where(total > 0, mce, np.nan)


def evaluation_stats(
    t: ScoredTable,
    *,
    n_bins: int = 10,
    strategy: str = "uniform",
    population: str = "all",
    n_boot: int = 0,
    seed: int = 0,
    grid: int | None = None,
    edges: Edges | None = None,
) -> EvaluationStats:
    """Sufficient statistics of a scored table (with references) holding whole utterances.

    ``evaluation_stats(t).report()`` equals ``evaluate(t)``; the statistics of tables holding
    disjoint sets of utterances add up to those of their union when taken at the same ``grid``
    (default: the first grid smooth ECE uses for this table) and, for ``strategy="quantile"``,
    the same ``edges`` (default: this table's own quantiles, :meth:`~reranker.dataset_scores.ScoreSample.edges`).
    """
    if t.correct is None or t.semer is None:
        raise DataError(references_needed("evaluation"))
    if not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise DataError(f"n_bins must be a positive integer, got {n_bins!r}")
    check_choice("population", population, POPULATIONS)
    check_choice("strategy", strategy, ("uniform", "quantile"))
    slices = table_slices(t)
    if strategy == "quantile" and edges is None:
        edges = score_sample(t, slices).edges(n_bins)
    if grid is None:
        grid = first_grid(len(t.hypotheses) if population == "all" else int(t.top.size))
    o = _Options(n_bins, strategy, population, grid, edges if strategy == "quantile" else None)
    families = {f: _family(t, f, sl, o) for f, sl in slices.items()}
    replicates = None
    if n_boot > 0:
        replicates = _replicates(t, slices["all"], replace(o, grid=0), n_boot, seed)
    return EvaluationStats(
        n_bins,
        strategy,
        families["all"]["all"],
        families["domain"],
        families["device"],
        replicates,
        population=population,
        grid=grid,
        edges=o.edges,
    )


def _replicates(t: ScoredTable, overall: Slices, o: _Options, n_boot: int, seed: int) -> FloatArray:
    """Overall statistics (without the grid) of each Poisson bootstrap resample of the
    utterances."""
    from reranker.bootstrap import weight_chunks

    n_utt = int(t.top.size)
    edges = o.edges if o.strategy == "quantile" else None
    hyp_bin = _bins(t.score, overall.hyp, ["hyp:all"], o.n_bins, edges)
    top_bin = _bins(t.score[t.top], overall.top, ["top:all"], o.n_bins, edges)
    rows = (t.codes, np.arange(n_utt), n_utt)
    per_utterance = _sparse_sums(t, rows, (hyp_bin, top_bin), o.n_bins, 0, o.population)
    out = np.empty((n_boot, _width(o.n_bins, 0)))
    transposed = per_utterance.T.tocsr()
    for start, weights in weight_chunks(t.utterance_keys, n_boot, seed=seed):
        out[start : start + len(weights)] = (transposed @ weights.T).T
    return out
