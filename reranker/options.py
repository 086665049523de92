"""The options of training, validated once in one frozen object.

The estimator, :func:`reranker.training.train_domains`, the partitioned trainer, the command
line, the dashboard and the demo builder all describe a training run with a
:class:`TrainingOptions`; a bad option fails when the object is made, before any data is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from reranker._validation import check_choice
from reranker.errors import ParameterError

__all__ = ["AUTO", "LOSSES", "PENALTY_RANGE", "SCOPES", "TEMPERATURE_RANGE", "TrainingOptions"]

LOSSES: tuple[str, ...] = ("r1", "r2", "r3")
"""The trained losses: R1 expected SemER, R2 cross-entropy, R3 = R1 + α·R2."""
SCOPES: tuple[str, ...] = ("domain", "utterance")
"""Where R1's softmax runs: over the domain's own hypotheses or the whole n-best."""
AUTO = "auto"
"""``l2="auto"``: each domain picks its penalty by cross-validation (:mod:`reranker.regularization`)."""
TEMPERATURE_RANGE = (1e-3, 1e3)
"""Accepted R1 softmax temperatures: ``z / τ`` must stay far from float64 overflow."""
PENALTY_RANGE = (0.0, 1e6)
"""Accepted values of ``alpha`` (weight of R2 in R3) and ``l2``."""


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _at_least(name: str, value: float, low: float) -> None:
    if not _number(value) >= low:  # NaN fails too
        raise ParameterError(f"{name} must be >= {low:g}, got {value!r}")


def _within(name: str, value: float, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if not low <= _number(value) <= high:
        raise ParameterError(f"{name} must lie in [{low:g}, {high:g}], got {value!r}")


@dataclass(frozen=True)
class TrainingOptions:
    """How one domain's re-ranker is trained.

    Attributes
    ----------
    loss : {"r1", "r2", "r3"}
    scope : {"utterance", "domain"}
        R1's softmax over the whole n-best (other domains frozen) or the domain's hypotheses.
    alpha : float in :data:`PENALTY_RANGE`
        Weight of R2 in R3.
    l2 : float in :data:`PENALTY_RANGE`, or ``"auto"``
        L2 penalty on the weights (not the bias); ``"auto"`` chooses it per domain.
    device_l2 : float in :data:`PENALTY_RANGE`, ``"auto"`` or None
        Penalty on the device weights; ``"auto"`` (default): chosen per domain by
        cross-validation grouped by utterance (:mod:`reranker.regularization`); ``None``: ``l2``.
    temperature : float in :data:`TEMPERATURE_RANGE`
        Softmax temperature of R1.
    max_iter : int, >= 1
        L-BFGS-B iteration limit.

    Raises
    ------
    ParameterError
        Naming the first bad option and its value.
    """

    loss: str
    scope: str = "utterance"
    alpha: float = 1.0
    l2: float | str = 1e-3
    temperature: float = 1.0
    max_iter: int = 1000
    device_l2: float | str | None = AUTO

    def __post_init__(self) -> None:
        check_choice("loss", self.loss, LOSSES)
        check_choice("scope", self.scope, SCOPES)
        if isinstance(self.l2, str) and self.l2 != AUTO:
            raise ParameterError(f"l2 must be a number or {AUTO!r}, got {self.l2!r}")
        if isinstance(self.device_l2, str) and self.device_l2 != AUTO:
            raise ParameterError(f"device_l2 must be a number or {AUTO!r}, got {self.device_l2!r}")
        if (
            self.device_l2 is not None
            and self.device_l2 != AUTO
            and not _number(self.device_l2) > 0
        ):
            raise ParameterError(f"device_l2 must be > 0, got {self.device_l2!r}")
        for name in ("alpha", "l2", "device_l2"):
            value = getattr(self, name)
            if value != AUTO and value is not None:
                _at_least(name, value, PENALTY_RANGE[0])
                _within(name, value, PENALTY_RANGE)
        _within("temperature", self.temperature, TEMPERATURE_RANGE)
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int):
            raise ParameterError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")
        _at_least("max_iter", self.max_iter, 1)

    def params(self) -> dict[str, Any]:
        """The options as keyword arguments of :class:`~reranker.estimator.DomainReranker`."""
        return {
            "loss": self.loss,
            "l2": AUTO if self.l2 == AUTO else float(self.l2),
            "alpha": float(self.alpha),
            "scope": self.scope,
            "temperature": float(self.temperature),
            "max_iter": int(self.max_iter),
        } | (
            {}
            if self.device_l2 is None
            else {"device_l2": AUTO if self.device_l2 == AUTO else float(self.device_l2)}
        )
