"""``reranker rerank`` and ``reranker evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from reranker._validation import require_references
from reranker.calibration import MAX_BINS
from reranker.cli._app import app
from reranker.cli._common import (
    check_output_path,
    err_console,
    out_console,
    print_table,
    refuse_input_as_output,
    status,
)
from reranker.cli._datasets import (
    EngineOpt,
    JobsOpt,
    SchedulerOpt,
    ScratchOpt,
    open_executor,
    partition_progress,
)
from reranker.evaluation import METRIC_KEYS, evaluate
from reranker.hypotheses import has_references, read_hypotheses, write_table
from reranker.partitioned import is_dataset_path
from reranker.scoring import score_hypotheses
from reranker.tables import score_table

MAX_BOOTSTRAP = 10_000
"""Most bootstrap resamples accepted (intervals settle long before)."""

HypothesesOpt = Annotated[
    str,
    typer.Option(
        "--hypotheses",
        "-H",
        help="Hypothesis table (.parquet, .csv or .jsonl), or a partitioned Parquet dataset "
        "(directory, glob or fsspec URL).",
    ),
]
WeightsOpt = Annotated[
    str,
    typer.Option("--weights", "-w", help="A weights registry directory, or 'r0' for the baseline."),
]


def _report_fallback(source: dict[str, str]) -> None:
    r0 = sorted(d for d, s in source.items() if s == "r0")
    if r0 and len(r0) < len(source):
        err_console.print(f"note: no weights for {', '.join(r0)}: scored with R0", highlight=False)


@app.command()
def rerank(
    hypotheses: HypothesesOpt,
    weights: WeightsOpt,
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Output table (format by extension), or directory for a dataset."
        ),
    ],
    engine: EngineOpt = None,
    scheduler: SchedulerOpt = None,
    jobs: JobsOpt = None,
    scratch: ScratchOpt = None,
) -> None:
    """Score and rank every hypothesis; write the table plus score, rank, semer and correct.

    A dataset is re-ranked partition by partition into a dataset of the same layout, one
    output part per input part, published atomically.
    """
    refuse_input_as_output(out, [Path(hypotheses)], directory=True)
    if engine is not None or is_dataset_path(hypotheses):
        _rerank_dataset(hypotheses, weights, out, engine or "local", scheduler, jobs, scratch)
        return
    check_output_path(out)
    with status(f"reading {hypotheses}"):
        table = read_hypotheses(hypotheses)
    with status("scoring"):
        scoring = score_hypotheses(table, weights)
        scored = score_table(table, scoring.score)
    result = table.copy()
    result["score"] = scored.score
    result["rank"] = scored.rank
    if scored.semer is not None and scored.correct is not None:
        result["semer"] = scored.semer
        result["correct"] = scored.correct
    with status(f"writing {out}"):
        write_table(result, out)
    _report_fallback(scoring.source)
    err_console.print(
        f"wrote {len(result):,} hypotheses of {scored.top.size:,} utterances to {out}",
        highlight=False,
    )


def _rerank_dataset(
    hypotheses: str,
    weights: str,
    out: Path,
    engine: str,
    scheduler: str | None,
    jobs: int | None,
    scratch: str | None,
) -> None:
    from reranker.dataset_output import check_dataset_output
    from reranker.partitioned import open_dataset
    from reranker.streaming import rerank_dataset

    dataset = open_dataset(hypotheses)  # input errors first, then the output's
    check_dataset_output(out)
    with (
        open_executor(engine, scheduler=scheduler, jobs=jobs) as executor,
        partition_progress() as bar,
    ):
        n_rows, source = rerank_dataset(
            dataset, weights, out, executor=executor, scratch=scratch, progress=bar
        )
    _report_fallback(source)
    err_console.print(f"wrote {n_rows:,} hypotheses to the dataset {out}", highlight=False)


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _print_report(report: dict[str, Any]) -> None:
    columns = ["slice", *METRIC_KEYS]
    table = Table(title="Evaluation", show_lines=False)
    for c in columns:
        table.add_column(c, justify="left" if c == "slice" else "right")
    table.add_row("all", *(_fmt(report[k]) for k in METRIC_KEYS))
    for group in ("by_domain", "by_device"):
        for name, metrics in report[group].items():
            table.add_row(f"{group[3:]}={name}", *(_fmt(metrics[k]) for k in METRIC_KEYS))
    print_table(out_console, table)
    if "intervals" in report:
        for k, (lo, hi) in report["intervals"].items():
            out_console.print(f"{k}: {_fmt(report[k])} [{lo:.4f}, {hi:.4f}]", highlight=False)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
BinsOpt = Annotated[int, typer.Option("--bins", min=1, max=MAX_BINS, help="Calibration bins.")]
StrategyOpt = Annotated[
    str, typer.Option("--strategy", help="uniform (equal width) or quantile (equal mass).")
]
PopulationOpt = Annotated[
    str, typer.Option("--population", help="Hypotheses in ece/mce/brier: all or top1.")
]
BootstrapOpt = Annotated[
    int,
    typer.Option(
        "--bootstrap",
        min=0,
        max=MAX_BOOTSTRAP,
        help="Bootstrap resamples of utterances for intervals (0: none).",
    ),
]
ConfidenceOpt = Annotated[
    float, typer.Option("--confidence", min=0.5, max=0.999, help="Bootstrap interval level.")
]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, help="Bootstrap seed.")]


@app.command("evaluate")
def evaluate_cmd(
    hypotheses: HypothesesOpt,
    weights: WeightsOpt,
    as_json: JsonOpt = False,
    bins: BinsOpt = 10,
    strategy: StrategyOpt = "uniform",
    population: PopulationOpt = "all",
    bootstrap: BootstrapOpt = 0,
    confidence: ConfidenceOpt = 0.9,
    seed: SeedOpt = 0,
    engine: EngineOpt = None,
    scheduler: SchedulerOpt = None,
    jobs: JobsOpt = None,
    scratch: ScratchOpt = None,
) -> None:
    """Top-1 SemER / IE and calibration (ECE, MCE, Brier), overall, by domain and by device.

    A dataset (or any input with --engine) is evaluated partition by partition from mergeable
    statistics, with the same numbers as in memory.
    """
    if strategy not in ("uniform", "quantile"):
        raise typer.BadParameter("must be 'uniform' or 'quantile'", param_hint="--strategy")
    if population not in ("all", "top1"):
        raise typer.BadParameter("must be 'all' or 'top1'", param_hint="--population")
    options: dict[str, Any] = {"n_bins": bins, "strategy": strategy, "population": population}
    options |= {"n_boot": bootstrap, "confidence": confidence, "seed": seed}
    if engine is not None or is_dataset_path(hypotheses):
        from reranker.streaming import evaluate_dataset

        with (
            open_executor(engine or "local", scheduler=scheduler, jobs=jobs) as executor,
            partition_progress() as bar,
        ):
            report, source = evaluate_dataset(
                hypotheses, weights, executor=executor, scratch=scratch, progress=bar, **options
            )
    else:
        report, source = _evaluate_table(hypotheses, weights, options)
    _print_evaluation(report, source, as_json)


def _evaluate_table(
    hypotheses: str, weights: str, options: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Read, score and evaluate a table in memory: the report and each domain's scoring."""
    with status(f"reading {hypotheses}"):
        table = read_hypotheses(hypotheses)
    if not has_references(table):
        require_references(False, "evaluation", source=str(hypotheses))
    with status("scoring and evaluating"):
        scoring = score_hypotheses(table, weights)
        report = evaluate(table, scoring.score, **options)
    return report, scoring.source


def _print_evaluation(report: dict[str, Any], source: dict[str, str], as_json: bool) -> None:
    report["weights"] = {d: s for d, s in sorted(source.items())}
    if as_json:
        print(json.dumps(report, indent=1, sort_keys=True, default=_json_default))
    else:
        _report_fallback(source)
        _print_report(report)


def _json_default(value: object) -> object:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
