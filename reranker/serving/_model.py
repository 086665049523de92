"""Scoring one utterance's n-best with one consistent set of per-domain weights (docs/losses.md).

A :class:`Snapshot` holds the weights each domain is served with, compiled from validated
weights documents into per-domain weight vectors. It is immutable: the service swaps a whole new
snapshot in when a domain publishes or rolls back, so every request is scored by one snapshot.

Scores equal those of the table path (``reranker rerank``): the default features are computed
with the same functions of :mod:`reranker.features` (:func:`~reranker.features.log_confidence`,
:func:`~reranker.features.rank_in_groups`, the device one-hot), other registered features through
:func:`~reranker.features.feature_matrix` itself, domains without weights with the R0 product,
and hypotheses are ordered with :func:`~reranker.ranking.best_first_order` (higher score, then
higher ``domain_score``, then request order).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import expit

from reranker.features import (
    DEVICE_PREFIX,
    LOG_FLOOR,
    feature_matrix,
    log_confidence,
    rank_in_groups,
)
from reranker.ranking import best_first_order
from reranker.scoring import document_source, document_weights

__all__ = ["BASE_FEATURES", "DomainModel", "NBest", "ScoredNBest", "Snapshot"]

BASE_FEATURES: tuple[str, ...] = (
    "log_domain_score",
    "log_intent_score",
    "log_slot_score",
    "domain_score",
    "intent_score",
    "slot_score",
    "rank_in_domain",
)
"""Default features computed without pandas, in the column order of the base block."""

_BASE_INDEX = {name: j for j, name in enumerate(BASE_FEATURES)}
R0 = "r0"
MAX_ROWS = 1024
"""Most hypotheses one n-best may hold (the service's request limit is lower)."""
SMALL_ROWS = 32
"""N-bests up to this size are scored in plain Python floats (no per-call numpy overhead)."""


@dataclass(frozen=True)
class NBest:
    """One utterance's validated n-best, as columns (request order)."""

    utterance_id: str
    device: str
    domain: tuple[str, ...]
    intent: tuple[str, ...]
    slots: tuple[str, ...]
    domain_score: tuple[float, ...]
    intent_score: tuple[float, ...]
    slot_score: tuple[float, ...]
    text: str = ""

    def __len__(self) -> int:
        return len(self.domain)

    def frame(self) -> pd.DataFrame:
        """The n-best as a hypothesis table (for features without a pandas-free form)."""
        n = len(self)
        return pd.DataFrame(
            {
                "utterance_id": [self.utterance_id] * n,
                "text": [self.text] * n,
                "device": [self.device] * n,
                "domain": list(self.domain),
                "intent": list(self.intent),
                "slots": list(self.slots),
                "domain_score": np.asarray(self.domain_score, dtype=np.float64),
                "intent_score": np.asarray(self.intent_score, dtype=np.float64),
                "slot_score": np.asarray(self.slot_score, dtype=np.float64),
            }
        )


@dataclass(frozen=True)
class DomainModel:
    """One domain's weights document compiled for scoring.

    ``base`` holds the weights of :data:`BASE_FEATURES` (0 for those the document does not use),
    ``device`` the weight of each ``device=<name>`` feature, ``custom`` the other features.
    """

    domain: str
    label: str
    version: int
    bias: float
    base: NDArray[np.float64]
    device: Mapping[str, float]
    custom_names: tuple[str, ...] = ()
    custom_weights: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> DomainModel:
        """Compile a document already validated by :meth:`WeightsRegistry.load`."""
        base = np.zeros(len(BASE_FEATURES), dtype=np.float64)
        device: dict[str, float] = {}
        custom: list[tuple[str, float]] = []
        names, weights, bias = document_weights(document)
        for name, w in zip(names, weights.tolist(), strict=True):
            if name in _BASE_INDEX:
                base[_BASE_INDEX[name]] = w
            elif name.startswith(DEVICE_PREFIX):
                device[name[len(DEVICE_PREFIX) :]] = w
            else:
                custom.append((name, w))
        return cls(
            domain=str(document["domain"]),
            label=document_source(document),
            version=int(document["version"]),
            bias=bias,
            base=base,
            device=device,
            custom_names=tuple(n for n, _ in custom),
            custom_weights=np.array([w for _, w in custom], dtype=np.float64),
        )


@dataclass(frozen=True)
class ScoredNBest:
    """Scores of one n-best: ``order`` lists rows best first; ``rank[i]`` is row i's rank."""

    score: NDArray[np.float64]
    rank: NDArray[np.int64]
    order: NDArray[np.int64]
    weights: dict[str, str]


@dataclass(frozen=True)
class Snapshot:
    """The weights every domain is served with at one moment; immutable.

    Parameters
    ----------
    models : mapping
        Domain -> :class:`DomainModel`; domains not listed are scored with R0.
    generation : int
        Increases with every swap, for logs and tests.
    """

    models: Mapping[str, DomainModel] = field(default_factory=dict)
    generation: int = 0
    _stack: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        domains = sorted(self.models)
        k = len(BASE_FEATURES)
        base = np.zeros((len(domains) + 1, k), dtype=np.float64)  # last row: R0 domains
        for i, d in enumerate(domains):
            base[i] = self.models[d].base
        stack = {
            "index": {d: i for i, d in enumerate(domains)},
            "base_t": np.ascontiguousarray(base.T),
            "rows": np.arange(MAX_ROWS, dtype=np.int64),
            "zeros": np.zeros(MAX_ROWS, dtype=np.int64),
            "ranks": np.arange(1, MAX_ROWS + 1, dtype=np.int64),
            # python floats of each domain's base weights and bias, when no domain needs the
            # pandas path of custom features
            "plain": None
            if any(m.custom_names for m in self.models.values())
            else {d: (m.base.tolist(), m.bias, m.device) for d, m in self.models.items()},
        }
        object.__setattr__(self, "_stack", stack)

    def labels(self) -> dict[str, str]:
        """Domain -> label of the weights it is served with (domains with weights only)."""
        return {d: m.label for d, m in sorted(self.models.items())}

    def replace(self, domain: str, model: DomainModel | None) -> Snapshot:
        """A new snapshot with ``domain`` served by ``model`` (``None``: R0), others untouched."""
        models = dict(self.models)
        if model is None:
            models.pop(domain, None)
        else:
            models[domain] = model
        return Snapshot(models, self.generation + 1)

    def score(self, nbest: NBest) -> ScoredNBest:
        """Score and rank one utterance's hypotheses; see the module docstring."""
        n = len(nbest)
        if n <= SMALL_ROWS and self._stack["plain"] is not None:
            return self._score_small(nbest)
        index: dict[str, int] = self._stack["index"]
        codes_of: dict[str, int] = {}
        codes = np.array([codes_of.setdefault(d, len(codes_of)) for d in nbest.domain])
        present = list(codes_of)
        r0_row = len(index)
        model_row = np.array([index.get(d, r0_row) for d in present])[codes]
        offset = np.array([self._offset(d, nbest.device) for d in present])[codes]
        scores = np.array((nbest.domain_score, nbest.intent_score, nbest.slot_score))
        product = scores[0] * scores[1] * scores[2]
        features = np.concatenate(
            (log_confidence(scores), scores, rank_in_groups(codes, product)[None, :])
        )
        # every row against every domain's weights (a few columns), then each row's own domain
        logit = (features.T @ self._stack["base_t"])[self._stack["rows"][:n], model_row] + offset
        logit = self._add_custom(nbest, present, codes, logit)
        score = np.where(model_row == r0_row, product, expit(logit))
        order = best_first_order(self._stack["zeros"][:n], score, scores[0])
        rank = np.empty(n, dtype=np.int64)
        rank[order] = self._stack["ranks"][:n]
        weights = {d: (self.models[d].label if d in self.models else R0) for d in present}
        return ScoredNBest(score, rank, order, weights)

    def _score_small(self, nbest: NBest) -> ScoredNBest:
        """:meth:`score` of a short n-best in plain floats: the same formulas, row by row.

        Features as :func:`~reranker.features.log_confidence` and
        :func:`~reranker.features.rank_in_groups` (rank by product descending within the
        domain, ties in request order); order as :func:`~reranker.ranking.best_first_order`.
        """
        n = len(nbest)
        plain = self._stack["plain"]
        dom, ds, is_, ss = nbest.domain, nbest.domain_score, nbest.intent_score, nbest.slot_score
        product = [ds[i] * is_[i] * ss[i] for i in range(n)]
        rank_in = [0.0] * n
        seen: dict[str, float] = {}
        for i in sorted(range(n), key=product.__getitem__, reverse=True):  # stable, ties in order
            rank_in[i] = seen[dom[i]] = seen.get(dom[i], 0.0) + 1.0
        log, floor, device = math.log, LOG_FLOOR, nbest.device
        score = product[:]
        for i in range(n):
            model = plain.get(dom[i])
            if model is None:
                continue
            w, bias, devices = model
            a, b, c = ds[i], is_[i], ss[i]
            z = (
                w[0] * log(a if a > floor else floor)
                + w[1] * log(b if b > floor else floor)
                + w[2] * log(c if c > floor else floor)
                + w[3] * a
                + w[4] * b
                + w[5] * c
                + w[6] * rank_in[i]
            ) + (bias + devices.get(device, 0.0))
            score[i] = _expit(z)
        order = sorted(range(n), key=lambda i: (-score[i], -ds[i]))  # stable: then request order
        rank = [0] * n
        for place, i in enumerate(order, start=1):
            rank[i] = place
        weights = {d: (self.models[d].label if d in self.models else R0) for d in dom}
        return ScoredNBest(
            np.array(score),
            np.array(rank, dtype=np.int64),
            np.array(order, dtype=np.int64),
            weights,
        )

    def _offset(self, domain: str, device: str) -> float:
        model = self.models.get(domain)
        if model is None:
            return 0.0
        return model.bias + model.device.get(device, 0.0)

    def _add_custom(
        self,
        nbest: NBest,
        present: Sequence[str],
        codes: NDArray[np.int64],
        logit: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        """Add the terms of registered features outside the default set (pandas path)."""
        custom = [(i, self.models[d]) for i, d in enumerate(present) if d in self.models]
        custom = [(i, m) for i, m in custom if m.custom_names]
        if not custom:
            return logit
        frame = nbest.frame()
        for i, model in custom:
            rows = np.flatnonzero(codes == i)  # features of the domain's own rows, as `rerank`
            X = feature_matrix(frame.iloc[rows], model.custom_names)
            logit[rows] += X @ model.custom_weights
        return logit


def _expit(z: float) -> float:
    """The logistic function of one float, without overflow (as :func:`scipy.special.expit`)."""
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
