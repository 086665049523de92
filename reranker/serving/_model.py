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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import expit

from reranker.features import DEVICE_PREFIX, feature_matrix, log_confidence, rank_in_groups
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
