"""The checks every entry point shares: choices, scores in [0, 1], reference columns.

Each raises with the argument's name and the bad value. A bad option (a choice outside its set)
is a :class:`~reranker.errors.ParameterError`; bad data (a score outside [0, 1], a table without
references) is a :class:`~reranker.errors.DataError`. Both are ``ValueError`` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from reranker.errors import DataError, ParameterError

__all__ = [
    "POPULATIONS",
    "STRATEGIES",
    "check_choice",
    "check_unit_interval",
    "describe_choices",
    "first_outside_unit_interval",
    "in_unit_interval",
    "references_needed",
    "require_references",
]

STRATEGIES: tuple[str, ...] = ("uniform", "quantile")
"""Binning strategies: equal-width or equal-mass bins."""
POPULATIONS: tuple[str, ...] = ("all", "top1")
"""Hypotheses entering calibration: every hypothesis or each utterance's top one."""

T = TypeVar("T")


def describe_choices(choices: Sequence[object]) -> str:
    """``'a' or 'b'`` for two choices, ``one of a, b, c`` for more."""
    if len(choices) == 2:
        return f"{choices[0]!r} or {choices[1]!r}"
    return "one of " + ", ".join(str(c) for c in choices)


def check_choice(name: str, value: T, choices: Sequence[T]) -> T:
    """Return ``value`` if it is one of ``choices``, else raise :class:`ParameterError`."""
    if value not in choices:
        raise ParameterError(f"{name} must be {describe_choices(choices)}, got {value!r}")
    return value


def in_unit_interval(values: NDArray[np.generic]) -> bool:
    """Whether every value lies in [0, 1] (a min and a max: NaN fails both comparisons)."""
    return values.size == 0 or bool(values.min() >= 0 and values.max() <= 1)


def first_outside_unit_interval(values: NDArray[np.generic]) -> float:
    """The first value outside [0, 1] (NaN included)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v[np.isnan(v) | (v < 0) | (v > 1)][0])


def check_unit_interval(values: NDArray[np.generic], name: str) -> None:
    """Raise :class:`DataError` naming ``name`` and the first value outside [0, 1]."""
    if not in_unit_interval(values):
        bad = first_outside_unit_interval(values)
        raise DataError(f"{name} must lie in [0, 1], got {bad!r}")


def references_needed(what: str) -> str:
    """The message of a step that needs references: ``"<what> needs the reference columns ..."``."""
    return f"{what} needs the reference columns ref_domain, ref_intent and ref_slots"


def require_references(present: bool, what: str, *, source: str | None = None) -> None:
    """Raise :class:`DataError` (prefixed with ``source``) unless the references are present."""
    if not present:
        message = references_needed(what)
        raise DataError(f"{source}: {message}" if source else message)
