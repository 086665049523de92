"""Training every domain of a partitioned dataset, each worker reading only what it needs.

:func:`train_dataset_domains` is :func:`reranker.training.train_domains` for a dataset that need
not fit in one process. The calling process never holds the table:

1. a first pass validates every part on the workers, as the in-memory path validates a table:
   each part with the rules of one table, and the rules spanning rows (duplicated hypotheses,
   references differing inside an utterance) over the whole dataset, by regrouping the key and
   reference columns by utterance (:mod:`reranker.regroup`), whatever ``scope`` is; the first
   breach is the one the in-memory path reports. It returns only the domains and devices;
2. each domain's task then runs on a worker and reads the domain's rows itself, with the filter
   pushed down to Parquet (:func:`reranker.partitioned.read_rows`: hive ``domain=``
   directories and row-group statistics skip data unread). With ``scope="utterance"`` the
   worker also reads the other domains' hypotheses of its utterances and computes their frozen
   logits from the weights documents current when the run started;
3. the calling process publishes each document as it arrives.

The rows, their order, the features and the frozen competitors equal those of the in-memory path
on the concatenated parts, so the fitted weights are the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from reranker._validation import require_references
from reranker.errors import DataError
from reranker.estimator import Competitors
from reranker.executors import Executor, Progress, run_all
from reranker.features import default_feature_names, feature_matrix
from reranker.hypotheses import REFERENCE_COLUMNS
from reranker.options import AUTO
from reranker.partitioned import PartitionedDataset, PartsLocator, open_dataset, read_rows
from reranker.registry import WeightsRegistry
from reranker.regroup import (
    PartSummary,
    check_bucket,
    raise_first,
    scatter_dataset,
    scratch_directory,
)
from reranker.scoring import current_documents, logits_with_documents
from reranker.semer import table_errors
from reranker.training import (
    DomainResult,
    DomainTask,
    ProgressCallback,
    _check_options,
    _row_hashes,
    _sha256_rows,
    publish_results,
)

__all__ = ["DatasetDomainTask", "survey_dataset", "train_dataset_domains"]

CHECKED_COLUMNS = ("utterance_id", "domain", "intent", "slots", *REFERENCE_COLUMNS)
"""The columns the rules spanning rows read."""


def survey_dataset(
    executor: Executor,
    dataset: PartitionedDataset,
    *,
    scratch: str | None = None,
    progress: Progress | None = None,
) -> list[PartSummary]:
    """Validate a dataset as :func:`reranker.partitioned.read_dataset` does, holding one part
    or bucket per worker; each part's summary (domains, devices, references)."""
    with scratch_directory(scratch) as tmp:
        summaries = scatter_dataset(executor, dataset, tmp, progress, columns=CHECKED_COLUMNS)
        problems = run_all(
            executor,
            check_bucket,
            [(dataset, tmp, b) for b in range(len(dataset.parts))],
            phase="checking utterances",
            progress=progress,
        )
    raise_first(problems)
    return summaries


def _gather(
    dataset: PartitionedDataset, parts: Iterable[int], domain: str, utterances: Any = None
) -> tuple[pd.DataFrame, PartsLocator]:
    frames, part_of, rows = [], [], []
    for i in parts:
        frame, positions = read_rows(dataset, i, domain=domain, utterances=utterances)
        if len(frame):
            frames.append(frame)
            part_of.append(np.full(len(frame), i, dtype=np.int64))
            rows.append(positions)
    if not frames:
        return pd.DataFrame(), PartsLocator([], np.zeros(0, np.int64), np.zeros(0, np.int64))
    table = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    paths = [p.path for p in dataset.parts]
    return table, PartsLocator(paths, np.concatenate(part_of), np.concatenate(rows))


def _competitors(
    dataset: PartitionedDataset,
    own: pd.DataFrame,
    domain: str,
    documents: Mapping[str, Mapping[str, Any]],
) -> Competitors:
    """The other domains' hypotheses of the domain's utterances, with frozen logits and SemER."""
    utterances = own["utterance_id"].unique().tolist()
    others, _ = _gather(dataset, range(len(dataset.parts)), domain, utterances)
    if not len(others):
        empty = np.zeros(0)
        return Competitors(np.zeros(0, dtype=object), empty, empty)
    return Competitors(
        others["utterance_id"].astype(str).to_numpy(dtype=object),
        logits_with_documents(others, documents),
        table_errors(others)[0],
    )


@dataclass(frozen=True)
class DatasetDomainTask:
    """One domain's training task that reads its rows on the worker (:meth:`materialize`).

    Attributes
    ----------
    dataset : the parts
    domain : str
    parts : indices of the parts holding the domain's rows
    features : feature names (the devices of the whole dataset)
    params : keyword arguments of :class:`~reranker.estimator.DomainReranker`
    documents : current weights documents for ``scope="utterance"`` (else ``None``)
    size : the domain's rows in the dataset (the largest domains are started first)
    """

    dataset: PartitionedDataset
    domain: str
    parts: tuple[int, ...]
    features: list[str]
    params: dict[str, Any]
    documents: Mapping[str, Mapping[str, Any]] | None
    size: int = 0

    def materialize(self) -> DomainTask:
        """Read the domain's rows (and competitors) and build the in-memory task."""
        own, _ = _gather(self.dataset, self.parts, self.domain)
        if not len(own):
            raise DataError(f"no hypotheses of domain {self.domain!r}")
        groups = own["utterance_id"].astype(str).to_numpy(dtype=object)
        columns, hashes = _row_hashes(own)
        competitors, y, semer, interpretations = None, None, None, None
        if self.documents is not None:
            competitors = _competitors(self.dataset, own, self.domain, self.documents)
            semer, y = table_errors(own)
        else:
            interpretations = own[["domain", "intent", "slots", *REFERENCE_COLUMNS]]
        return DomainTask(
            domain=self.domain,
            features=self.features,
            X=feature_matrix(own, self.features),
            groups=groups,
            y=y,
            semer=semer,
            interpretations=interpretations,
            competitors=competitors,
            params=self.params,
            training_data={
                "sha256": _sha256_rows(columns, hashes),
                "n_utterances": len(pd.unique(groups)),
                "n_hypotheses": len(own),
            },
        )


def train_dataset_domains(
    spec: str | os.PathLike[str] | PartitionedDataset,
    *,
    loss: str,
    out: str | os.PathLike[str],
    executor: Executor,
    domains: Iterable[str] | None = None,
    scope: str = "utterance",
    alpha: float = 1.0,
    l2: float | str = 1e-3,
    temperature: float = 1.0,
    max_iter: int = 1000,
    progress: ProgressCallback | None = None,
    part_progress: Progress | None = None,
    scratch: str | None = None,
    device_l2: float | str | None = AUTO,
) -> dict[str, DomainResult]:
    """Train and publish each domain of a dataset; the same weights as in memory.

    Parameters are those of :func:`reranker.training.train_domains`; ``executor`` runs both the
    validation pass (reported through ``part_progress(phase, done, total)``; ``scratch`` holds
    its regrouped columns) and the domains.
    """
    options = _check_options(loss, scope, alpha, l2, temperature, None, max_iter, device_l2)
    dataset = spec if isinstance(spec, PartitionedDataset) else open_dataset(os.fspath(spec))
    surveys = survey_dataset(executor, dataset, scratch=scratch, progress=part_progress)
    if not surveys[0].has_references:
        require_references(False, "training", source=str(dataset.parts[0].path))
    present = sorted(set().union(*(s.domains for s in surveys)))
    chosen = present if domains is None else sorted(set(domains))
    missing = [d for d in chosen if d not in present]
    if missing:
        raise DataError(
            f"no hypotheses of domain(s) {', '.join(map(repr, missing))} "
            f"(domains in the dataset: {', '.join(present)})"
        )
    registry = WeightsRegistry(out)
    documents = current_documents(registry) if scope == "utterance" else None
    names = default_feature_names(set().union(*(s.devices for s in surveys)))
    params = options.params()
    tasks = [
        DatasetDomainTask(
            dataset,
            d,
            tuple(i for i, s in enumerate(surveys) if d in s.domains),
            names,
            params,
            documents,
            sum(dict(s.domain_rows).get(d, 0) for s in surveys),
        )
        for d in chosen
    ]
    return publish_results(executor, tasks, registry, progress)
