"""The slices of an evaluation, and the scores of their calibration populations.

:func:`table_slices` names the slices :func:`reranker.evaluation.evaluate` reports (overall,
each domain, each device) and which hypotheses and top ones each holds. A :class:`ScoreSample`
keeps only the scores of those populations (8 bytes a hypothesis, 2 per slice code): the
samples of a dataset's partitions concatenate, and give every slice's exact equal-mass bin
edges before the partitions are reduced to mergeable statistics
(:mod:`reranker.evaluation_stats`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from reranker.calibration import bin_indices
from reranker.tables import ScoredTable

__all__ = ["ScoreSample", "Slices", "score_sample", "table_slices"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Slices:
    """The slices of one family (overall, domains or devices) of a table."""

    names: list[str]
    hyp: NDArray[np.int64]  # slice of each hypothesis (-1: none)
    top: NDArray[np.int64]  # slice of each utterance's top hypothesis


def table_slices(t: ScoredTable) -> dict[str, Slices]:
    frame, n = t.hypotheses, len(t.hypotheses)
    dom_codes, dom_names = pd.factorize(pd.concat([frame["domain"], frame["ref_domain"]]))
    dev_codes, dev_names = pd.factorize(frame["device"])
    return {
        "all": Slices(["all"], np.zeros(n, np.int64), np.zeros(t.top.size, np.int64)),
        "domain": Slices([str(d) for d in dom_names], dom_codes[:n], dom_codes[n:][t.top]),
        "device": Slices([str(d) for d in dev_names], dev_codes, dev_codes[t.top]),
    }


@dataclass
class ScoreSample:
    """The scores of every slice's calibration populations: enough for exact quantile edges.

    ``hyp`` and ``top`` hold the scores of the hypotheses and of each utterance's top one;
    ``*_domain`` / ``*_device`` their slice names as codes into ``domains`` / ``devices``.
    Samples of partitions concatenate (``a + b``); 8 bytes a score and 2 a code.
    """

    hyp: FloatArray
    hyp_domain: NDArray[np.int16]
    hyp_device: NDArray[np.int16]
    top: FloatArray
    top_domain: NDArray[np.int16]
    top_device: NDArray[np.int16]
    domains: list[str]
    devices: list[str]

    def __add__(self, other: ScoreSample) -> ScoreSample:
        domains, dom_map = _union(self.domains, other.domains)
        devices, dev_map = _union(self.devices, other.devices)
        return ScoreSample(
            np.concatenate([self.hyp, other.hyp]),
            np.concatenate([self.hyp_domain, dom_map[other.hyp_domain]]),
            np.concatenate([self.hyp_device, dev_map[other.hyp_device]]),
            np.concatenate([self.top, other.top]),
            np.concatenate([self.top_domain, dom_map[other.top_domain]]),
            np.concatenate([self.top_device, dev_map[other.top_device]]),
            domains,
            devices,
        )

    def edges(self, n_bins: int) -> dict[str, FloatArray]:
        """Inner quantile edges of every slice, as :func:`reranker.calibration.bin_indices`
        computes them on the slice's scores."""
        out: dict[str, FloatArray] = {}
        for kind, scores, by_domain, by_device in (
            ("hyp", self.hyp, self.hyp_domain, self.hyp_device),
            ("top", self.top, self.top_domain, self.top_device),
        ):
            out[f"{kind}:all"] = _inner_edges(scores, n_bins)
            for family, codes, names in (
                ("domain", by_domain, self.domains),
                ("device", by_device, self.devices),
            ):
                for k, name in enumerate(names):
                    chosen = scores[codes == k]
                    if chosen.size:
                        out[f"{kind}:{family}={name}"] = _inner_edges(chosen, n_bins)
        return out


def _inner_edges(scores: FloatArray, n_bins: int) -> FloatArray:
    return bin_indices(scores, n_bins=n_bins, strategy="quantile")[1][1:-1]


def _union(mine: list[str], theirs: list[str]) -> tuple[list[str], NDArray[np.int16]]:
    names = list(mine)
    index = {name: k for k, name in enumerate(names)}
    for name in theirs:
        if name not in index:
            index[name] = len(names)
            names.append(name)
    return names, np.array([index[name] for name in theirs] or [0], dtype=np.int16)


def score_sample(t: ScoredTable, slices: dict[str, Slices] | None = None) -> ScoreSample:
    """The scores and slice codes of a scored table's calibration populations."""
    sl = table_slices(t) if slices is None else slices
    dom, dev = sl["domain"], sl["device"]
    return ScoreSample(
        t.score.copy(),
        dom.hyp.astype(np.int16),
        dev.hyp.astype(np.int16),
        t.score[t.top],
        dom.top.astype(np.int16),
        dev.top.astype(np.int16),
        dom.names,
        dev.names,
    )
