"""The one exception hierarchy of the project.

The CLI and the dashboard catch :class:`RerankerError` (and nothing broader) and show its message
as a single line; every message names the file, row and column at fault where there is one.
"""

from __future__ import annotations

__all__ = [
    "DataError",
    "ModelError",
    "ParameterError",
    "RerankerError",
    "TrainingError",
    "WeightsError",
]


class RerankerError(Exception):
    """Base class of every error this package raises on purpose."""


class DataError(RerankerError, ValueError):
    """A data file or array is missing, unreadable or breaks the data contract."""


class ParameterError(DataError):
    """An option or argument is outside its allowed values (a loss, a strategy, a count...).

    A ``ValueError``; also a :class:`DataError`, which callers caught before it existed.
    """


class WeightsError(RerankerError):
    """A weights registry or weights document is missing, malformed or inconsistent."""


class ModelError(RerankerError):
    """An NLU model directory is missing, malformed or from an incompatible version."""


class TrainingError(RerankerError):
    """Training one or more domains failed."""
