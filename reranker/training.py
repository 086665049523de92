"""Training every domain's re-ranker independently and in parallel, then publishing.

The model, losses and training are described in docs/losses.md#training.

:func:`train_domains` splits a hypothesis table by domain, fits one
:class:`~reranker.estimator.DomainReranker` per domain in worker processes and publishes each
result to a :class:`~reranker.registry.WeightsRegistry` as soon as it is ready. Domains never
wait for each other and a failing domain is reported with its error while the others are kept.

The executor is pluggable (:class:`Engine`): ``"serial"`` (in process), ``"local"`` (a process
pool, default all cores) or ``"dask"`` (a Dask cluster: ``scheduler="tcp://host:8786"`` or, with
no scheduler, a local cluster). Workers receive a :class:`DomainTask` of plain arrays and return
a weights document; only the calling process touches the registry, so a remote cluster needs no
access to the weights directory.

With ``scope="utterance"`` each domain's R1 softmax runs over the whole n-best, the other
domains' logits frozen at the weights current in the target registry *when the run starts* (the
R0 logit ``logit(domain_score * intent_score * slot_score)`` for a domain without weights). All
domains of one run therefore see the same frozen competitors, whatever the order they finish in.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.exceptions import ConvergenceWarning

from reranker._validation import require_references
from reranker.errors import DataError, ParameterError, RerankerError, TrainingError
from reranker.estimator import Competitors, DomainReranker
from reranker.features import default_feature_names, feature_matrix
from reranker.hypotheses import REFERENCE_COLUMNS, SCORE_COLUMNS, has_references
from reranker.options import AUTO, TrainingOptions
from reranker.registry import WeightsRegistry
from reranker.regularization import choose_l2
from reranker.scoring import current_documents, logits_with_documents
from reranker.semer import table_errors

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
    "publish_results",
    "train_domains",
]

ProgressCallback = Callable[[str, str, float], None]
ENGINES: tuple[str, ...] = ("local", "serial", "dask")


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


def fit_domain(task: DomainTask) -> tuple[dict[str, Any], list[str], float]:
    """Train one domain; return its weights document (unpublished), notes and seconds.

    Runs in a worker process; it touches no file. A task that loads its rows itself (it has a
    ``materialize()`` method returning a :class:`DomainTask`, as the tasks of
    :func:`reranker.dataset_training.train_dataset_domains` do) is loaded here, on the worker.
    """
    start = time.perf_counter()
    materialize = getattr(task, "materialize", None)
    if materialize is not None:
        task = materialize()
    y, semer = task.y, task.semer
    if y is None or semer is None:
        if task.interpretations is None:
            raise DataError(f"{task.domain}: the task has neither errors nor interpretations")
        semer, y = table_errors(task.interpretations)
    params = dict(task.params)
    l2_search: dict[str, Any] | None = None
    if params["l2"] == AUTO:
        params["l2"], l2_search = choose_l2(
            task.X,
            np.asarray(y),
            task.groups,
            semer=None if semer is None else np.asarray(semer),
            competitors=task.competitors,
            params=params,
        )
    model = DomainReranker(**params)
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(task.X, y, groups=task.groups, semer=semer, competitors=task.competitors)
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            notes.append(f"{task.domain}: {w.message}")
        else:  # pragma: no cover - re-emit anything unexpected
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    metrics = {k: model.metrics_[k] for k in sorted(model.metrics_)}
    document = {
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
    if l2_search is not None:
        document["options"]["l2_search"] = l2_search
    return document, notes, time.perf_counter() - start


class Engine(Protocol):
    """Runs :func:`fit_domain` over tasks, yielding each task's outcome as it completes."""

    def run(
        self, tasks: Sequence[DomainTask]
    ) -> Iterator[tuple[DomainTask, tuple[dict[str, Any], list[str], float] | BaseException]]:
        """Yield ``(task, result or exception)`` in completion order."""
        ...


class SerialEngine:
    """Train domains one after another in the calling process."""

    def run(
        self, tasks: Sequence[DomainTask]
    ) -> Iterator[tuple[DomainTask, tuple[dict[str, Any], list[str], float] | BaseException]]:
        for task in tasks:
            try:
                outcome: Any = fit_domain(task)
            except Exception as e:
                outcome = e
            yield task, outcome


def _single_threaded_worker() -> None:
    """Keep each worker's BLAS on one thread: the pool already uses every core."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


class LocalEngine:
    """Train domains in a pool of worker processes.

    Workers start from a ``forkserver`` (``spawn`` where that does not exist), never by forking
    the caller, so training is safe from threaded callers such as the dashboard.

    Parameters
    ----------
    jobs : int, optional
        Worker processes; default all cores, never more than there are domains.
    """

    def __init__(self, jobs: int | None = None) -> None:
        self.jobs = jobs

    def run(
        self, tasks: Sequence[DomainTask]
    ) -> Iterator[tuple[DomainTask, tuple[dict[str, Any], list[str], float] | BaseException]]:
        import multiprocessing.context

        if not tasks:
            return
        workers = max(1, min(self.jobs or os.cpu_count() or 1, len(tasks)))
        if workers == 1:
            yield from SerialEngine().run(tasks)
            return
        context: multiprocessing.context.BaseContext
        if "forkserver" in multiprocessing.get_all_start_methods():
            # workers fork from a clean server that has imported the package once
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["reranker.training"])
        else:  # pragma: no cover
            context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_single_threaded_worker
        ) as pool:
            pending: dict[Future[Any], DomainTask] = {pool.submit(fit_domain, t): t for t in tasks}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: pending[f].domain):
                    task = pending.pop(future)
                    error = future.exception()
                    yield task, (error if error is not None else future.result())


class DaskEngine:
    """Train domains on a Dask cluster.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``). Without one a local cluster of
        ``jobs`` single-threaded worker processes is started for the run and closed after it.
    jobs : int, optional
        Workers of the local cluster (default all cores).
    """

    def __init__(self, scheduler: str | None = None, jobs: int | None = None) -> None:
        self.scheduler = scheduler
        self.jobs = jobs

    def run(
        self, tasks: Sequence[DomainTask]
    ) -> Iterator[tuple[DomainTask, tuple[dict[str, Any], list[str], float] | BaseException]]:
        try:
            from dask.distributed import Client, LocalCluster, as_completed
        except ImportError as e:  # pragma: no cover
            raise TrainingError(
                "the dask engine needs dask[distributed]: pip install 'reranker[dask]'"
            ) from e
        if not tasks:
            return
        cluster = None
        try:
            if self.scheduler:
                client = Client(self.scheduler, timeout="10s")
            else:
                cluster = LocalCluster(
                    n_workers=max(1, min(self.jobs or os.cpu_count() or 1, len(tasks))),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
                client = Client(cluster)
        except (OSError, TimeoutError, ValueError) as e:
            if cluster is not None:
                cluster.close()
            raise TrainingError(
                f"cannot connect to the dask scheduler {self.scheduler!r}: {e}"
            ) from e
        try:
            futures = {
                client.submit(fit_domain, t, key=f"reranker-train-{t.domain}-{i}", pure=False): t
                for i, t in enumerate(tasks)
            }
            for future in as_completed(list(futures)):
                task = futures[future]
                if future.status == "error":
                    yield task, future.exception()
                else:
                    yield task, future.result()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def make_engine(engine: str, *, jobs: int | None = None, scheduler: str | None = None) -> Engine:
    """The executor named ``engine`` (``"local"``, ``"serial"`` or ``"dask"``)."""
    if scheduler and engine != "dask":
        raise DataError("--scheduler applies only to the dask engine")
    if engine == "local":
        return LocalEngine(jobs)
    if engine == "serial":
        return SerialEngine()
    if engine == "dask":
        return DaskEngine(scheduler, jobs)
    raise DataError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")


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
) -> TrainingOptions:
    """The run's :class:`TrainingOptions` (validated once), after checking ``jobs``."""
    options = TrainingOptions(
        loss=loss, scope=scope, alpha=alpha, l2=l2, temperature=temperature, max_iter=max_iter
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
    names = (
        list(features)
        if features is not None
        else default_feature_names(hypotheses["device"].astype(str).unique())
    )
    domain = hypotheses["domain"].to_numpy(dtype=object)
    groups = hypotheses["utterance_id"].astype(str).to_numpy(dtype=object)
    X_all = feature_matrix(hypotheses, names)  # row-wise, so equal to per-domain computation
    hash_columns, row_hashes = _row_hashes(hypotheses)
    errors = None
    z_frozen = None
    if options.scope == "utterance":  # competitors need every row's SemER up front
        errors = table_errors(hypotheses)
        z_frozen = logits_with_documents(hypotheses, current_documents(registry))
    interpretation_columns = ["domain", "intent", "slots", *REFERENCE_COLUMNS]
    params = options.params()
    tasks = []
    for d in chosen:
        mask = domain == d
        idx = np.flatnonzero(mask)
        competitors = None
        if errors is not None and z_frozen is not None:
            utts = pd.unique(groups[idx])
            others = ~mask & np.isin(groups, utts)
            competitors = Competitors(groups[others], z_frozen[others], errors[0][others])
        tasks.append(
            DomainTask(
                domain=str(d),
                features=names,
                X=X_all[idx],
                groups=groups[idx],
                y=None if errors is None else errors[1][idx],
                semer=None if errors is None else errors[0][idx],
                interpretations=(
                    None
                    if errors is not None
                    else hypotheses.iloc[idx][interpretation_columns].reset_index(drop=True)
                ),
                competitors=competitors,
                params=params,
                training_data={
                    "sha256": _sha256_rows(hash_columns, row_hashes[idx]),
                    "n_utterances": len(pd.unique(groups[idx])),
                    "n_hypotheses": int(idx.size),
                },
            )
        )
    return tasks


def train_domains(
    hypotheses: pd.DataFrame,
    *,
    loss: str,
    out: str | os.PathLike[str],
    domains: Iterable[str] | None = None,
    scope: str = "utterance",
    alpha: float = 1.0,
    l2: float | str = 1e-3,
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

    Notes
    -----
    The local engine starts its workers from a ``forkserver`` (``spawn`` on platforms without
    one), so a script calling this function must guard its entry point with
    ``if __name__ == "__main__":``, as for any :mod:`multiprocessing` code. Pass
    ``engine="serial"`` (or ``jobs=1``) to train in the calling process.
    """
    options = _check_options(loss, scope, alpha, l2, temperature, jobs, max_iter)
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

    Tasks are :class:`DomainTask` objects or tasks that load their rows on the worker; see
    :func:`train_domains` for ``progress`` and the result.
    """

    def report(domain: str, message: str, fraction: float) -> None:
        if progress is not None:
            progress(domain, message, fraction)

    results: dict[str, DomainResult] = {}
    for task in tasks:
        report(task.domain, "training", 0.0)
    for task, outcome in executor.run(tasks):
        result = DomainResult(task.domain)
        if isinstance(outcome, BaseException):
            result.error = f"{type(outcome).__name__}: {outcome}"
            report(task.domain, f"failed: {result.error}", 1.0)
        else:
            document, notes, seconds = outcome
            result.notes, result.seconds = list(notes), float(seconds)
            try:
                result.version = registry.publish(task.domain, document)
                result.document = registry.load(task.domain, result.version)
            except (RerankerError, OSError) as e:
                result.error = f"{type(e).__name__}: {e}"
                report(task.domain, f"failed: {result.error}", 1.0)
            else:
                metrics = document["metrics"]
                state = "converged" if metrics["converged"] else "NOT converged"
                report(
                    task.domain,
                    f"published v{result.version} ({metrics['n_iter']} iterations, {state}, "
                    f"loss {metrics['objective']:.5g})",
                    1.0,
                )
        results[task.domain] = result
    for note in (n for r in results.values() for n in r.notes):
        warnings.warn(note, ConvergenceWarning, stacklevel=2)
    return {d: results[d] for d in sorted(results)}
