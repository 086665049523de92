"""Evaluating and re-ranking a partitioned dataset partition by partition.

Both commands run the same pipeline on an executor (:mod:`reranker.executors`: local processes
or a Dask cluster), holding one partition in memory per worker:

1. **scatter**: each part is read, validated and split into hash buckets of utterances on scratch
   storage (:mod:`reranker.regroup`);
2. **per bucket**: a bucket (whole utterances, in dataset order) is checked for the rules that
   span rows, scored, ranked and, for ``evaluate``, reduced to mergeable sufficient statistics
   (:mod:`reranker.evaluation_stats`); for ``rerank``, its new columns are written back keyed by
   the part and row they came from;
3. ``evaluate`` merges the statistics; ``rerank`` joins each input part with its new columns and
   writes one output part per input part, published atomically (:mod:`reranker.dataset_output`).

The numbers equal those of the in-memory path on the concatenated table (up to floating-point
summation order), and a breach of the data contract is reported with the same message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from reranker._validation import POPULATIONS, check_choice, require_references
from reranker.dataset_scores import ScoreSample, score_sample
from reranker.errors import DataError
from reranker.evaluation_stats import EvaluationStats, FinerGridNeeded, evaluation_stats
from reranker.executors import Executor, Progress, run_all
from reranker.kernel_calibration import first_grid
from reranker.partitioned import PartitionedDataset, open_dataset, read_part
from reranker.regroup import (
    PART,
    ROW,
    Problem,
    gather_bucket,
    raise_first,
    scatter_dataset,
    scratch_directory,
)
from reranker.scoring import load_documents, score_with_documents
from reranker.tables import score_table

__all__ = ["SLICE_ROWS", "evaluate_dataset", "rerank_dataset", "utterance_slices"]

SLICE_ROWS = 250_000
"""Rows a worker scores at once: a bucket is scored and reduced in groups of whole utterances
of about this size, so its intermediate arrays stay small whatever the bucket's size."""

Documents = Mapping[str, Mapping[str, Any]] | None
"""Domain -> weights document, or ``None`` for R0 (:func:`reranker.scoring.load_documents`)."""


def evaluate_bucket(
    dataset: PartitionedDataset,
    scratch: str,
    bucket: int,
    documents: Documents,
    options: dict[str, Any] | None,
) -> tuple[Problem | None, EvaluationStats | ScoreSample | None, dict[str, str]]:
    """Check and score one bucket; reduce it to evaluation statistics taken with ``options``,
    or with ``options=None`` to the scores of its slices (runs on a worker)."""
    frame, problem = gather_bucket(dataset, scratch, bucket)
    if problem is not None or len(frame) == 0:
        return problem, None, {}
    merged: Any = None  # EvaluationStats, or ScoreSample with options=None
    sources: dict[str, str] = {}
    for rows in utterance_slices(frame["utterance_id"]):
        piece = frame if rows is None else frame.iloc[rows].reset_index(drop=True)
        scoring = score_with_documents(piece, documents)
        table = score_table(piece, scoring.score)
        result = score_sample(table) if options is None else evaluation_stats(table, **options)
        merged = result if merged is None else merged + result
        sources.update(scoring.source)
        del piece, scoring, table
    return None, merged, sources


def utterance_slices(
    utterance_ids: pd.Series, rows: int | None = None
) -> list[NDArray[np.int64] | None]:
    """Row numbers of consecutive groups of whole utterances of about ``rows`` rows each.

    Utterances are taken in order of first appearance and each group's rows keep their order,
    so scoring a group gives what scoring the whole table gives on those rows; a table of at
    most ``rows`` rows is one group (``[None]``: all of it). Scoring and reducing a bucket group
    by group bounds the intermediate arrays by ``rows``, not by the bucket's size.
    """
    n, rows = len(utterance_ids), rows or SLICE_ROWS
    if n <= rows:
        return [None]
    codes, uniques = pd.factorize(utterance_ids)
    k = -(-n // rows)
    group = codes.astype(np.int64) * k // max(len(uniques), 1)
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(k + 1))
    return [order[bounds[g] : bounds[g + 1]] for g in range(k) if bounds[g + 1] > bounds[g]]


def _bucket_pass(
    executor: Executor,
    dataset: PartitionedDataset,
    scratch: str,
    documents: Documents,
    options: dict[str, Any] | None,
    progress: Progress | None,
) -> tuple[Any, dict[str, str]]:
    """Run :func:`evaluate_bucket` on every bucket; the merged results and the scorers.

    Results are merged as they arrive (memory stays one bucket's worth); the first breach of
    the data contract, as the in-memory path reports it, is raised after all finished.
    """
    merged: list[Any] = []
    problems: list[Problem | None] = []
    sources: dict[str, str] = {}

    def keep(_index: int, outcome: Any) -> None:
        problem, result, source = outcome
        problems.append(problem)
        sources.update(source)
        if result is not None:
            merged[:] = [result if not merged else merged[0] + result]

    arguments = [(dataset, scratch, b, documents, options) for b in range(len(dataset.parts))]
    phase = "evaluating" if options is not None else "reading scores"
    run_all(executor, evaluate_bucket, arguments, phase=phase, progress=progress, on_result=keep)
    raise_first(problems)
    return merged[0], sources


def evaluate_dataset(
    spec: str | PartitionedDataset,
    weights: str | os.PathLike[str],
    *,
    executor: Executor,
    n_bins: int = 10,
    strategy: str = "uniform",
    population: str = "all",
    n_boot: int = 0,
    confidence: float = 0.9,
    seed: int = 0,
    scratch: str | None = None,
    progress: Progress | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """:func:`reranker.evaluation.evaluate` of a dataset, partition by partition.

    Returns the report and the scorer of each domain (``"r0"`` or ``"<loss> v<version>"``).
    Equal-mass bins (``strategy="quantile"``) take a first pass that collects only the scores
    (8 bytes a hypothesis) to compute every slice's exact quantile edges.
    """
    check_choice("strategy", strategy, ("uniform", "quantile"))
    check_choice("population", population, POPULATIONS)
    dataset = spec if isinstance(spec, PartitionedDataset) else open_dataset(spec)
    documents = load_documents(weights)
    options: dict[str, Any] = {
        "n_bins": n_bins,
        "strategy": strategy,
        "population": population,
        "n_boot": n_boot,
        "seed": seed,
    }
    with scratch_directory(scratch) as tmp:
        summaries = scatter_dataset(executor, dataset, tmp, progress)
        require_references(summaries[0].has_references, "evaluation", source=dataset.source)
        # residual grid of smooth ECE: the first one its search needs on the largest slice
        options["grid"] = first_grid(sum(s.n_rows for s in summaries))
        if strategy == "quantile":
            sample, _ = _bucket_pass(executor, dataset, tmp, documents, None, progress)
            options["edges"] = sample.edges(n_bins)
            del sample
        while True:
            stats, sources = _bucket_pass(executor, dataset, tmp, documents, options, progress)
            try:
                return stats.report(confidence=confidence), sources
            except FinerGridNeeded as finer:  # smooth ECE far below 1/sqrt(n): seldom
                options["grid"] = finer.grid


def rerank_bucket(
    dataset: PartitionedDataset, scratch: str, bucket: int, documents: Documents
) -> tuple[Problem | None, dict[str, str]]:
    """Score and rank one bucket; write its new columns per source part (runs on a worker)."""
    from reranker.dataset_output import write_parquet

    frame, problem = gather_bucket(dataset, scratch, bucket)
    if problem is not None or len(frame) == 0:
        return problem, {}
    scoring = score_with_documents(frame, documents)
    score, source = scoring.score, scoring.source
    scored = score_table(frame, score)
    columns = pd.DataFrame({ROW: frame[ROW].to_numpy(), "score": scored.score, "rank": scored.rank})
    if scored.semer is not None and scored.correct is not None:
        columns["semer"] = scored.semer
        columns["correct"] = scored.correct
    part = frame[PART].to_numpy()
    for p in np.unique(part):
        rows = part == p
        write_parquet(
            columns[rows],
            Path(scratch) / "ranked" / f"part-{p:06d}" / f"b{bucket:05d}.parquet",
            sync=False,
        )
    return None, source


def join_part(dataset: PartitionedDataset, scratch: str, index: int) -> pd.DataFrame:
    """Part ``index`` with its ranking columns, in its own row order (runs on a worker)."""
    frame = read_part(dataset, index)
    directory = Path(scratch) / "ranked" / f"part-{index:06d}"
    pieces = [pd.read_parquet(f) for f in sorted(directory.glob("b*.parquet"))]
    columns = pd.concat(pieces, ignore_index=True).sort_values(ROW, kind="stable")
    if len(columns) != len(frame) or not np.array_equal(
        columns[ROW].to_numpy(), np.arange(len(frame))
    ):
        raise DataError(f"{dataset.parts[index].path}: part changed while it was being re-ranked")
    for name in columns.columns.drop(ROW):
        frame[name] = columns[name].to_numpy()
    in_path = [k for k, _ in dataset.parts[index].partition]
    return frame.drop(columns=[c for c in in_path if c in frame.columns])


def write_ranked_part(dataset: PartitionedDataset, scratch: str, index: int, target: str) -> int:
    """Join part ``index`` and write it under ``target`` at its relative path (runs on a worker)."""
    from reranker.dataset_output import write_parquet

    frame = join_part(dataset, scratch, index)
    pieces = [p for p in dataset.parts[index].relative.split("/") if p not in ("", ".", "..")]
    write_parquet(frame, Path(target).joinpath(*pieces))
    return len(frame)


def rerank_dataset(
    spec: str | PartitionedDataset,
    weights: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    executor: Executor,
    scratch: str | None = None,
    progress: Progress | None = None,
) -> tuple[int, dict[str, str]]:
    """Score and rank a dataset; write one output part per input part, atomically.

    The output directory mirrors the input's layout. Nothing is published unless every part was
    read, validated, ranked and written. Returns the number of rows and each domain's scorer.
    """
    from reranker.dataset_output import DatasetWriter

    dataset = spec if isinstance(spec, PartitionedDataset) else open_dataset(spec)
    documents = load_documents(weights)
    writer = DatasetWriter(out, description={"command": "rerank", "source": dataset.source})
    with scratch_directory(scratch) as tmp:
        scatter_dataset(executor, dataset, tmp, progress)
        buckets = range(len(dataset.parts))
        outcomes = run_all(
            executor,
            rerank_bucket,
            [(dataset, tmp, b, documents) for b in buckets],
            phase="ranking",
            progress=progress,
        )
        raise_first([o[0] for o in outcomes])
        sources: dict[str, str] = {}
        for _, source in outcomes:
            sources.update(source)
        with writer:
            counts = run_all(
                executor,
                write_ranked_part,
                [(dataset, tmp, i, str(writer.tmp)) for i in range(len(dataset.parts))],
                phase="writing parts",
                progress=progress,
            )
            writer.written.extend(p.relative for p in dataset.parts)
    return int(sum(counts)), sources
