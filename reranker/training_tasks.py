"""One domain's training job: the task a worker receives, the fit it runs, the result it returns.

A :class:`DomainTask` holds plain arrays (cheap to ship to a worker process or a Dask cluster);
:func:`fit_domain` trains one :class:`~reranker.estimator.DomainReranker` from it and returns an
unpublished weights document; :class:`DomainResult` is what the caller records once the document
is published (or the domain failed). Nothing here touches a file.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.exceptions import ConvergenceWarning

from reranker.errors import DataError
from reranker.estimator import Competitors, DomainReranker
from reranker.regularization import fit_penalised
from reranker.semer import table_errors

__all__ = ["DomainResult", "DomainTask", "FitOutcome", "fit_domain"]

FitOutcome = tuple[dict[str, Any], list[str], float]
"""What :func:`fit_domain` returns: the weights document, notes and seconds."""


@dataclass(frozen=True)
class DomainTask:
    """Everything a worker needs to train one domain (plain arrays, cheap to ship).

    Attributes
    ----------
    domain : str
    features : list of str
    X, groups : the domain's rows: features and utterance ids
    y, semer : correct bit and SemER of the rows, or ``None`` when the worker computes them
        from ``interpretations`` (so SemER, the costliest step, runs in parallel too)
    interpretations : the rows' ``domain, intent, slots, ref_domain, ref_intent, ref_slots``
        when ``y`` and ``semer`` are ``None``
    competitors : frozen other-domain hypotheses for ``scope="utterance"``, else ``None``
    params : keyword arguments of :class:`DomainReranker`
    training_data : ``{"sha256", "n_utterances", "n_hypotheses"}`` of the domain's rows
    """

    domain: str
    features: list[str]
    X: NDArray[np.float64]
    groups: NDArray[np.object_]
    y: NDArray[np.int64] | None
    semer: NDArray[np.float64] | None
    interpretations: pd.DataFrame | None
    competitors: Competitors | None
    params: dict[str, Any]
    training_data: dict[str, Any]

    @property
    def size(self) -> int:
        """The domain's rows (the largest domains are started first)."""
        return len(self.X)


@dataclass
class DomainResult:
    """The outcome of one domain.

    Attributes
    ----------
    domain : str
    version : int or None
        Version published, ``None`` if the domain failed.
    document : dict or None
        The published weights document.
    error : str or None
        ``"<ExceptionType>: message"`` if training or publishing failed.
    notes : list of str
        Warnings, e.g. L-BFGS-B not converging.
    seconds : float
        Wall time of the fit in its worker.
    """

    domain: str
    version: int | None = None
    document: dict[str, Any] | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the domain was trained and published."""
        return self.error is None and self.version is not None

    @property
    def converged(self) -> bool | None:
        """L-BFGS-B convergence, ``None`` if the domain failed."""
        if self.document is None:
            return None
        return bool(self.document["metrics"]["converged"])


def fit_domain(task: DomainTask) -> FitOutcome:
    """Train one domain; return its weights document (unpublished), notes and seconds.

    Runs in a worker process; it touches no file. A task that loads its rows itself (it has a
    ``materialize()`` method returning a :class:`DomainTask`, as the tasks of
    :func:`reranker.dataset_training.train_dataset_domains` do) is loaded here, on the worker.
    """
    start = time.perf_counter()
    materialize = getattr(task, "materialize", None)
    if materialize is not None:
        task = materialize()
    y, semer = _task_errors(task)
    model, params, notes = _fit_model(task, y, semer)
    document = _weights_document(task, model, params)
    return document, notes, time.perf_counter() - start


def _task_errors(task: DomainTask) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The task's correct bits and SemER: given, or computed from its interpretations."""
    if task.y is not None and task.semer is not None:
        return task.y, task.semer
    if task.interpretations is None:
        raise DataError(f"{task.domain}: the task has neither errors nor interpretations")
    semer, y = table_errors(task.interpretations)
    return y, semer


def _fit_model(
    task: DomainTask,
    y: NDArray[np.int64],
    semer: NDArray[np.float64],
) -> tuple[DomainReranker, dict[str, Any], list[str]]:
    """Fit the domain's model, its penalties chosen first (:func:`fit_penalised`); the options
    to record, with the chosen penalties; L-BFGS-B convergence warnings become notes."""
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model, chosen = fit_penalised(
            dict(task.params),
            task.X,
            np.asarray(y),
            task.groups,
            semer=None if semer is None else np.asarray(semer),
            competitors=task.competitors,
            features=task.features,
        )
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            notes.append(f"{task.domain}: {w.message}")
        else:  # pragma: no cover - re-emit anything unexpected
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return model, {**task.params, **chosen}, notes


def _weights_document(
    task: DomainTask, model: DomainReranker, params: dict[str, Any]
) -> dict[str, Any]:
    """The unpublished weights document of a fitted model (``version`` is set on publishing)."""
    metrics = {k: model.metrics_[k] for k in sorted(model.metrics_)}
    return {
        "domain": task.domain,
        "loss": task.params["loss"],
        "version": None,
        "features": list(task.features),
        "weights": [float(v) for v in model.coef_],
        "bias": float(model.intercept_),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_data": dict(task.training_data),
        "metrics": metrics,
        "options": {k: params[k] for k in sorted(params) if k != "loss"},
    }
