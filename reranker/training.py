"""Training every domain's re-ranker independently and in parallel, then publishing.

The model, losses and training are described in docs/losses.md#training.

:func:`train_domains` splits a hypothesis table by domain, fits one
:class:`~reranker.estimator.DomainReranker` per domain in worker processes and publishes each
result to a :class:`~reranker.registry.WeightsRegistry` as soon as it is ready. Domains never
wait for each other and a failing domain is reported with its error while the others are kept.

The executor is pluggable (:mod:`reranker.training_engines`): ``"serial"`` (in process),
``"local"`` (a process pool, default all cores) or ``"dask"`` (a Dask cluster). Workers receive a
:class:`~reranker.training_tasks.DomainTask` of plain arrays and return a weights document
(:func:`~reranker.training_tasks.fit_domain`); only the calling process touches the registry, so
a remote cluster needs no access to the weights directory.

The local engine starts its workers from a ``forkserver`` (``spawn`` on platforms without one),
so a script calling :func:`train_domains` must guard its entry point with
``if __name__ == "__main__":``, as for any :mod:`multiprocessing` code. Pass ``engine="serial"``
(or ``jobs=1``) to train in the calling process.

With ``scope="utterance"`` each domain's R1 softmax runs over the whole n-best, the other
domains' logits frozen at the weights current in the target registry *when the run starts* (the
R0 logit ``logit(domain_score * intent_score * slot_score)`` for a domain without weights). All
domains of one run therefore see the same frozen competitors, whatever the order they finish in.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.exceptions import ConvergenceWarning

from reranker._validation import require_references
from reranker.errors import DataError, ParameterError, RerankerError
from reranker.estimator import Competitors
from reranker.features import default_feature_names, feature_matrix
from reranker.hypotheses import REFERENCE_COLUMNS, SCORE_COLUMNS, has_references
from reranker.options import AUTO, TrainingOptions
from reranker.registry import WeightsRegistry
from reranker.scoring import current_documents, logits_with_documents
from reranker.semer import table_errors
from reranker.training_engines import (
    ENGINES,
    DaskEngine,
    Engine,
    LocalEngine,
    SerialEngine,
    make_engine,
)
from reranker.training_tasks import DomainResult, DomainTask, FitOutcome, fit_domain

__all__ = [
    "ENGINES",
    "DaskEngine",
    "DomainResult",
    "DomainTask",
    "Engine",
    "LocalEngine",
    "ProgressCallback",
    "SerialEngine",
    "fit_domain",
    "make_engine",
    "prepare_tasks",
    "publish_results",
    "train_domains",
]

ProgressCallback = Callable[[str, str, float], None]


def _row_hashes(hypotheses: pd.DataFrame) -> tuple[list[str], NDArray[np.uint64]]:
    """pandas' stable 64-bit hash of every row's data columns."""
    columns = ["utterance_id", "device", "domain", "intent", "slots", *SCORE_COLUMNS]
    columns += [c for c in REFERENCE_COLUMNS if c in hypotheses.columns]
    hashes = pd.util.hash_pandas_object(hypotheses[columns], index=False)
    return columns, np.asarray(hashes, dtype=np.uint64)


def _sha256_rows(columns: list[str], row_hashes: NDArray[np.uint64]) -> str:
    """SHA-256 over the column names and the rows' 64-bit hashes, in row order."""
    digest = hashlib.sha256(",".join(columns).encode("utf-8"))
    digest.update(np.ascontiguousarray(row_hashes).tobytes())
    return digest.hexdigest()


def _check_options(
    loss: str,
    scope: str,
    alpha: float,
    l2: float | str,
    temperature: float,
    jobs: int | None,
    max_iter: int = 1000,
    device_l2: float | str | None = AUTO,
) -> TrainingOptions:
    """The run's :class:`TrainingOptions` (validated once), after checking ``jobs``."""
    options = TrainingOptions(
        loss=loss,
        scope=scope,
        alpha=alpha,
        l2=l2,
        temperature=temperature,
        max_iter=max_iter,
        device_l2=device_l2,
    )
    if jobs is not None and jobs < 1:
        raise ParameterError(f"jobs must be >= 1, got {jobs!r}")
    return options


def prepare_tasks(
    hypotheses: pd.DataFrame,
    options: TrainingOptions,
    *,
    registry: WeightsRegistry,
    domains: Iterable[str] | None = None,
    features: Sequence[str] | None = None,
) -> list[DomainTask]:
    """Split a validated table with references into one :class:`DomainTask` per domain."""
    require_references(has_references(hypotheses), "training")
    chosen = _chosen_domains(hypotheses, domains)
    names = (
        list(features)
        if features is not None
        else default_feature_names(hypotheses["device"].astype(str).unique())
    )
    rows = _TrainingRows.of(hypotheses, names, options.scope, registry)
    params = options.params()
    return [rows.task(d, names, params) for d in chosen]


def _chosen_domains(hypotheses: pd.DataFrame, domains: Iterable[str] | None) -> list[str]:
    """The domains to train, sorted: every domain of the table, or those asked for."""
    present = sorted(hypotheses["domain"].unique())
    if domains is None:
        chosen = present
    else:
        chosen = sorted(set(domains))
        missing = [d for d in chosen if d not in set(present)]
        if missing:
            raise DataError(
                f"no hypotheses of domain(s) {', '.join(map(repr, missing))} "
                f"(domains in the table: {', '.join(present)})"
            )
    if not chosen:
        raise DataError("no domain to train")
    return chosen


_INTERPRETATION_COLUMNS = ["domain", "intent", "slots", *REFERENCE_COLUMNS]


@dataclass(frozen=True)
class _TrainingRows:
    """The whole table's arrays, from which each domain's task takes its rows.

    With ``scope="utterance"`` every row's SemER and frozen logit are computed up front (a
    domain's competitors are the other domains' rows); otherwise each task carries its rows'
    interpretations and the worker computes SemER.
    """

    hypotheses: pd.DataFrame
    domain: NDArray[np.object_]
    groups: NDArray[np.object_]
    X: NDArray[np.float64]
    hash_columns: list[str]
    row_hashes: NDArray[np.uint64]
    errors: tuple[NDArray[np.float64], NDArray[np.int64]] | None
    z_frozen: NDArray[np.float64] | None

    @classmethod
    def of(
        cls, hypotheses: pd.DataFrame, names: list[str], scope: str, registry: WeightsRegistry
    ) -> _TrainingRows:
        domain = hypotheses["domain"].to_numpy(dtype=object)
        groups = hypotheses["utterance_id"].astype(str).to_numpy(dtype=object)
        X = feature_matrix(hypotheses, names)  # row-wise, so equal to per-domain computation
        hash_columns, row_hashes = _row_hashes(hypotheses)
        errors = z_frozen = None
        if scope == "utterance":  # competitors need every row's SemER up front
            errors = table_errors(hypotheses)
            z_frozen = logits_with_documents(hypotheses, current_documents(registry))
        return cls(hypotheses, domain, groups, X, hash_columns, row_hashes, errors, z_frozen)

    def task(self, d: str, names: list[str], params: dict[str, Any]) -> DomainTask:
        """Domain ``d``'s task: its rows, errors or interpretations, and competitors."""
        mask = self.domain == d
        idx = np.flatnonzero(mask)
        groups = self.groups[idx]
        competitors = None
        if self.errors is not None and self.z_frozen is not None:
            # a hash look-up: np.isin on strings compares every row with every utterance
            others = ~mask & pd.Series(self.groups).isin(pd.unique(groups)).to_numpy()
            competitors = Competitors(
                self.groups[others], self.z_frozen[others], self.errors[0][others]
            )
        interpretations = None
        if self.errors is None:
            rows = self.hypotheses.iloc[idx][_INTERPRETATION_COLUMNS]
            interpretations = rows.reset_index(drop=True)
        return DomainTask(
            domain=str(d),
            features=names,
            X=self.X[idx],
            groups=groups,
            y=None if self.errors is None else self.errors[1][idx],
            semer=None if self.errors is None else self.errors[0][idx],
            interpretations=interpretations,
            competitors=competitors,
            params=params,
            training_data={
                "sha256": _sha256_rows(self.hash_columns, self.row_hashes[idx]),
                "n_utterances": len(pd.unique(groups)),
                "n_hypotheses": int(idx.size),
            },
        )


def train_domains(
    hypotheses: pd.DataFrame,
    *,
    loss: str,
    out: str | os.PathLike[str],
    domains: Iterable[str] | None = None,
    scope: str = "utterance",
    alpha: float = 1.0,
    l2: float | str = 1e-3,
    device_l2: float | str | None = AUTO,
    temperature: float = 1.0,
    jobs: int | None = None,
    engine: str | Engine = "local",
    scheduler: str | None = None,
    progress: ProgressCallback | None = None,
    max_iter: int = 1000,
) -> dict[str, DomainResult]:
    """Train each domain's re-ranker independently and publish it to the registry at ``out``.

    Parameters
    ----------
    hypotheses : pandas.DataFrame
        A validated hypothesis table with references (:func:`reranker.read_hypotheses`).
    loss : {"r1", "r2", "r3"}
    out : path
        Weights registry directory (created if needed). Each trained domain gets a new version;
        other domains' files are not touched.
    domains : iterable of str, optional
        Domains to train (default: every domain of the table).
    scope, alpha, l2, temperature : options of :class:`~reranker.estimator.DomainReranker`.
    device_l2 : float, "auto" or None
        Penalty on the device weights: ``"auto"`` (default) chooses it per domain by
        cross-validation grouped by utterance (:mod:`reranker.regularization`); ``None``: ``l2``.
    jobs : int, optional
        Worker processes (default all cores).
    engine : {"local", "serial", "dask"} or Engine
        The executor; any object with :meth:`Engine.run` can be passed.
    scheduler : str, optional
        Dask scheduler address (``engine="dask"``); without it a local cluster is started.
    progress : callable, optional
        ``progress(domain, message, fraction)``, called in this process when a domain is queued
        (fraction 0.0), and when it is published or fails (fraction 1.0; the message starts
        with ``"published"`` or ``"failed"``). ``fraction`` is the domain's own progress.
    max_iter : int, default 1000
        L-BFGS-B iteration limit per domain.

    Returns
    -------
    dict of str to DomainResult
        One entry per requested domain, sorted by domain. A failed domain has ``error`` set and
        nothing published; the others are published regardless.

    Raises
    ------
    DataError
        On bad options or data, before anything is trained or written.
    """
    options = _check_options(loss, scope, alpha, l2, temperature, jobs, max_iter, device_l2)
    executor = (
        make_engine(engine, jobs=jobs, scheduler=scheduler) if isinstance(engine, str) else engine
    )
    registry = WeightsRegistry(out)
    tasks = prepare_tasks(hypotheses, options, registry=registry, domains=domains)
    return publish_results(executor, tasks, registry, progress)


def publish_results(
    executor: Engine,
    tasks: Sequence[Any],
    registry: WeightsRegistry,
    progress: ProgressCallback | None = None,
) -> dict[str, DomainResult]:
    """Run the tasks on ``executor`` and publish each domain's document as it completes.

    Tasks are :class:`DomainTask` objects or tasks that load their rows on the worker; they are
    started largest first (by their ``size``, the domain's rows), so that with fewer workers
    than domains the run does not end waiting for one large domain started last. See
    :func:`train_domains` for ``progress`` and the result.
    """

    def report(domain: str, message: str, fraction: float) -> None:
        if progress is not None:
            progress(domain, message, fraction)

    results: dict[str, DomainResult] = {}
    for task in tasks:
        report(task.domain, "training", 0.0)
    # largest first: with fewer workers than domains the last to start are the shortest
    queue = sorted(tasks, key=lambda t: -int(getattr(t, "size", 0)))
    for task, outcome in executor.run(queue):
        results[task.domain] = _publish(task.domain, outcome, registry, report)
    for note in (n for r in results.values() for n in r.notes):
        warnings.warn(note, ConvergenceWarning, stacklevel=2)
    return {d: results[d] for d in sorted(results)}


def _publish(
    domain: str,
    outcome: FitOutcome | BaseException,
    registry: WeightsRegistry,
    report: ProgressCallback,
) -> DomainResult:
    """Publish one domain's fitted document; a failed fit or publish sets ``error``."""
    result = DomainResult(domain)
    if isinstance(outcome, BaseException):
        result.error = f"{type(outcome).__name__}: {outcome}"
        report(domain, f"failed: {result.error}", 1.0)
        return result
    document, notes, seconds = outcome
    result.notes, result.seconds = list(notes), float(seconds)
    try:
        result.version = registry.publish(domain, document)
        result.document = registry.load(domain, result.version)
    except (RerankerError, OSError) as e:
        result.error = f"{type(e).__name__}: {e}"
        report(domain, f"failed: {result.error}", 1.0)
        return result
    metrics = document["metrics"]
    state = "converged" if metrics["converged"] else "NOT converged"
    report(
        domain,
        f"published v{result.version} ({metrics['n_iter']} iterations, {state}, "
        f"loss {metrics['objective']:.5g})",
        1.0,
    )
    return result
