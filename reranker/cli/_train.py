"""``reranker train`` and ``reranker weights list|show|rollback|rollforward``."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sklearn.exceptions import ConvergenceWarning

from reranker._validation import check_choice
from reranker.cli._app import app
from reranker.cli._common import (
    err_console,
    out_console,
    print_table,
    refuse_input_as_output,
    status,
)
from reranker.errors import ParameterError, TrainingError, WeightsError
from reranker.hypotheses import read_hypotheses
from reranker.options import PENALTY_RANGE, TEMPERATURE_RANGE, TrainingOptions
from reranker.partitioned import is_dataset_path
from reranker.registry import WeightsRegistry
from reranker.training import ENGINES, DomainResult, train_domains

weights_app = typer.Typer(
    name="weights",
    help="Inspect a weights registry and roll domains back.",
    no_args_is_help=True,
)
app.add_typer(weights_app, name="weights")

MAX_JOBS = 256
"""Most worker processes one training run may start."""

RegistryArg = Annotated[Path, typer.Argument(help="A weights registry directory.")]
DomainOpt = Annotated[str, typer.Option("--domain", "-d", help="The domain.")]


def _check_train_options(
    loss: str,
    scope: str,
    engine: str,
    scheduler: str | None,
    alpha: float,
    l2: float | str,
    temperature: float,
    jobs: int | None,
    out: Path,
    device_l2: float | str | None = None,
) -> None:
    try:
        TrainingOptions(
            loss=loss, scope=scope, alpha=alpha, l2=l2, temperature=temperature, device_l2=device_l2
        )
    except ParameterError as e:  # the command line names its options with their dashes
        raise ParameterError(f"--{e}") from e
    check_choice("--engine", engine, ENGINES)
    if scheduler and engine != "dask":
        raise ParameterError("--scheduler applies only to --engine dask")
    if jobs is not None and jobs < 1:
        raise ParameterError(f"--jobs must be >= 1, got {jobs}")
    if out.exists() and not out.is_dir():
        raise WeightsError(f"{out}: exists and is not a weights directory")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise WeightsError(f"{out}: directory {parent} does not exist")


def _parse_l2(text: str) -> float | str:
    """``--l2``: a number or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise ParameterError(f"--l2 must be a number or 'auto', got {text!r}") from None


def _parse_device_l2(text: str) -> float | str | None:
    """``--device-l2``: ``off`` (the device weights share ``--l2``), a number or ``auto``."""
    if text.strip().lower() == "off":
        return None
    try:
        return _parse_l2(text)
    except ParameterError:
        raise ParameterError(
            f"--device-l2 must be 'off', a number or 'auto', got {text!r}"
        ) from None


class _Display:
    """Per-domain progress: rich bars on a terminal, one line per event otherwise."""

    def __init__(self) -> None:
        self.live = err_console.is_terminal
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.fields[domain]:<14}"),
            BarColumn(bar_width=20),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _Display:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.progress.stop()

    def __call__(self, domain: str, message: str, fraction: float) -> None:
        if self.live:
            if domain not in self.tasks:
                self.tasks[domain] = self.progress.add_task(message, total=1.0, domain=domain)
            self.progress.update(self.tasks[domain], description=message, completed=fraction)
        elif fraction >= 1.0:
            err_console.print(f"{domain}: {message}", highlight=False, soft_wrap=True)


def _summary(results: dict[str, DomainResult], out: Path) -> Table:
    table = Table(title=f"Weights published to {out}")
    for column in ("domain", "version", "hypotheses", "iterations", "converged", "loss", "seconds"):
        table.add_column(column, justify="left" if column == "domain" else "right")
    for d, r in results.items():
        if r.document is None:
            table.add_row(d, "-", "-", "-", "-", "[red]failed[/red]", f"{r.seconds:.2f}")
            continue
        m = r.document["metrics"]
        table.add_row(
            d,
            f"v{r.version}",
            f"{r.document['training_data']['n_hypotheses']:,}",
            str(m["n_iter"]),
            "yes" if m["converged"] else "[yellow]NO[/yellow]",
            f"{m['objective']:.5g}",
            f"{r.seconds:.2f}",
        )
    return table


HypothesesOpt = Annotated[
    str,
    typer.Option(
        "--hypotheses",
        "-H",
        help="Hypothesis table with references (.parquet, .csv, .jsonl), or a partitioned "
        "Parquet dataset (directory, glob or fsspec URL): each worker reads its domain's rows.",
    ),
]
LossOpt = Annotated[
    str,
    typer.Option("--loss", help="r1 (expected SemER), r2 (cross-entropy) or r3 (r1 + alpha*r2)."),
]
OutOpt = Annotated[
    Path, typer.Option("--out", "-o", help="Weights registry directory (created if needed).")
]
DomainsOpt = Annotated[
    list[str] | None,
    typer.Option("--domain", "-d", help="Train only this domain (repeatable; default all)."),
]
ScopeOpt = Annotated[
    str,
    typer.Option(
        "--scope",
        help="R1 softmax over the whole n-best (other domains frozen at their current "
        "weights) or over the domain's own hypotheses.",
    ),
]
AlphaOpt = Annotated[
    float,
    typer.Option("--alpha", min=PENALTY_RANGE[0], max=PENALTY_RANGE[1], help="Weight of R2 in R3."),
]
L2Opt = Annotated[
    str,
    typer.Option(
        "--l2",
        help="L2 penalty on the weights (bias unpenalised; 0 to 1e6), or 'auto': each "
        "domain picks its own by 3-fold cross-validation grouped by utterance.",
    ),
]
DeviceL2Opt = Annotated[
    str,
    typer.Option(
        "--device-l2",
        help="Penalty on the device weights alone: 'auto' (default): each domain picks it by "
        "3-fold cross-validation grouped by utterance, keeping a device preference only when "
        "held-out utterances clearly support it, so devices that carry no information get "
        "weights near zero; 'off': they share --l2; or a number.",
    ),
]
TemperatureOpt = Annotated[
    float,
    typer.Option(
        "--temperature",
        min=TEMPERATURE_RANGE[0],
        max=TEMPERATURE_RANGE[1],
        help="Softmax temperature of R1.",
    ),
]
TrainJobsOpt = Annotated[
    int | None,
    typer.Option(
        "--jobs", "-j", min=1, max=MAX_JOBS, help="Worker processes (default: all cores)."
    ),
]
TrainEngineOpt = Annotated[
    str, typer.Option("--engine", help="local (process pool), serial or dask.")
]
TrainSchedulerOpt = Annotated[
    str | None,
    typer.Option("--scheduler", help="Dask scheduler address (default: start a local cluster)."),
]
MaxIterOpt = Annotated[
    int,
    typer.Option(
        "--max-iter", min=1, help="Solver iteration limit (Newton for r2, L-BFGS-B for r1/r3)."
    ),
]


@app.command()
def train(
    hypotheses: HypothesesOpt,
    loss: LossOpt,
    out: OutOpt,
    domain: DomainsOpt = None,
    scope: ScopeOpt = "utterance",
    alpha: AlphaOpt = 1.0,
    l2: L2Opt = "1e-3",
    temperature: TemperatureOpt = 1.0,
    jobs: TrainJobsOpt = None,
    engine: TrainEngineOpt = "local",
    scheduler: TrainSchedulerOpt = None,
    max_iter: MaxIterOpt = 1000,
    device_l2: DeviceL2Opt = "auto",
) -> None:
    """Train each domain's re-ranker in parallel and publish a new version per domain."""
    l2_value, device_value = _parse_l2(l2), _parse_device_l2(device_l2)
    _check_train_options(
        loss, scope, engine, scheduler, alpha, l2_value, temperature, jobs, out, device_value
    )
    refuse_input_as_output(out, [Path(hypotheses)])
    options = {"domains": domain or None, "scope": scope, "alpha": alpha, "l2": l2_value}
    options |= {"temperature": temperature, "max_iter": max_iter, "device_l2": device_value}
    run = _Run(hypotheses, loss, out, engine, scheduler, jobs, options)
    results = _train_dataset(run) if is_dataset_path(hypotheses) else _train_table(run)
    _report_results(results, out)


@dataclass(frozen=True)
class _Run:
    """One ``reranker train`` run: the input, loss, registry, executor and training options."""

    hypotheses: str
    loss: str
    out: Path
    engine: str
    scheduler: str | None
    jobs: int | None
    options: dict[str, Any]


def _train_table(run: _Run) -> dict[str, DomainResult]:
    """Read the table and train its domains (:func:`reranker.training.train_domains`)."""
    with status(f"reading {run.hypotheses}"):
        table = read_hypotheses(run.hypotheses)
    with _Display() as display, warnings.catch_warnings():
        # non-convergence is reported after the run, once per domain, as a one-line warning
        warnings.simplefilter("ignore", ConvergenceWarning)
        return train_domains(
            table,
            loss=run.loss,
            out=run.out,
            jobs=run.jobs,
            engine=run.engine,
            scheduler=run.scheduler,
            progress=display,
            **run.options,
        )


def _train_dataset(run: _Run) -> dict[str, DomainResult]:
    """Train the domains of a partitioned dataset, each worker reading its domain's rows."""
    from reranker.cli._datasets import open_executor, partition_progress
    from reranker.dataset_training import train_dataset_domains

    kind, workers = ("local", 1) if run.engine == "serial" else (run.engine, run.jobs)
    with (
        open_executor(kind, scheduler=run.scheduler, jobs=workers) as executor,
        partition_progress() as bar,
        _Display() as display,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", ConvergenceWarning)
        return train_dataset_domains(
            run.hypotheses,
            loss=run.loss,
            out=run.out,
            executor=executor,
            progress=display,
            part_progress=bar,
            **run.options,
        )


FEW_UTTERANCES = 20
"""Below this many training utterances a domain's published weights get a warning."""


def _few_utterances(result: DomainResult) -> str | None:
    """A warning when ``result``'s weights were learnt from fewer than :data:`FEW_UTTERANCES`."""
    data = (result.document or {}).get("training_data") or {}
    n = data.get("n_utterances")
    if n is None or n >= FEW_UTTERANCES:
        return None
    return (
        f"{result.domain}: trained on {n} utterance{'s' if n != 1 else ''} (fewer than "
        f"{FEW_UTTERANCES}): its weights rest on too little data to be trusted; compare it with R0"
    )


def _report_results(results: dict[str, DomainResult], out: Path) -> None:
    print_table(err_console, _summary(results, out))
    for r in results.values():
        for note in [*r.notes, _few_utterances(r)]:
            if note:
                err_console.print(f"warning: {note}", highlight=False, soft_wrap=True)
    failed = {d: r.error for d, r in results.items() if not r.ok}
    if failed:
        kept = len(results) - len(failed)
        detail = "; ".join(f"{d}: {e}" for d, e in failed.items())
        raise TrainingError(
            f"training failed for {len(failed)} domain(s) ({detail}); "
            f"{kept} other domain(s) published"
        )


def _registry(path: Path) -> WeightsRegistry:
    if not path.is_dir():
        raise WeightsError(f"{path}: no such weights directory")
    return WeightsRegistry(path)


@weights_app.command("list")
def list_cmd(
    weights: RegistryArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """List the domains of a registry with their current and available versions."""
    reg = _registry(weights)
    domains = reg.domains()
    if not domains:
        raise WeightsError(f"{weights}: no published weights")
    rows: list[dict[str, Any]] = []
    for d in domains:
        current = reg.current_version(d)
        doc = reg.load(d) if current is not None else None
        rows.append(
            {
                "domain": d,
                "current": current,
                "versions": reg.versions(d),
                "loss": doc["loss"] if doc else None,
                "trained_at": doc["trained_at"] if doc else None,
                "n_hypotheses": doc["training_data"]["n_hypotheses"] if doc else None,
                "converged": doc["metrics"].get("converged") if doc else None,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table(title=str(weights))
    for column in (
        "domain",
        "current",
        "versions",
        "loss",
        "trained at",
        "hypotheses",
        "converged",
    ):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["domain"],
            f"v{r['current']}" if r["current"] else "-",
            ", ".join(f"v{v}" for v in r["versions"]),
            r["loss"] or "-",
            r["trained_at"] or "-",
            f"{r['n_hypotheses']:,}" if r["n_hypotheses"] is not None else "-",
            {True: "yes", False: "NO", None: "-"}[r["converged"]],
        )
    print_table(out_console, table)


@weights_app.command("show")
def show_cmd(
    weights: RegistryArg,
    domain: DomainOpt,
    version: Annotated[
        int | None, typer.Option("--version", "-v", min=1, help="Version (default: current).")
    ] = None,
) -> None:
    """Print one weights document (JSON) of a domain: the current version unless --version."""
    reg = _registry(weights)
    if domain not in reg.domains():
        known = ", ".join(reg.domains()) or "none"
        raise WeightsError(f"{weights}: no weights for domain {domain!r} (domains: {known})")
    print(json.dumps(reg.load(domain, version), indent=2))


@weights_app.command("rollback")
def rollback_cmd(weights: RegistryArg, domain: DomainOpt) -> None:
    """Make the previous version of one domain current again (other domains are untouched)."""
    _move_current(weights, domain, WeightsRegistry.rollback)


@weights_app.command("rollforward")
def rollforward_cmd(weights: RegistryArg, domain: DomainOpt) -> None:
    """Undo a rollback: make the next newer version of one domain current (others untouched)."""
    _move_current(weights, domain, WeightsRegistry.roll_forward)


def _move_current(weights: Path, domain: str, move: Callable[[WeightsRegistry, str], int]) -> None:
    """Move one domain's current version with ``move`` and print ``<domain>: vA -> vB``."""
    reg = _registry(weights)
    current = reg.current_version(domain)
    target = move(reg, domain)
    err_console.print(f"{domain}: v{current} -> v{target}", highlight=False)
