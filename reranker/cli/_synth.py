"""``reranker synth``: write a large realistic hypothesis dataset, partitioned."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from reranker.cli._app import app
from reranker.cli._common import err_console


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset directory to write.")],
    hypotheses: Annotated[
        int, typer.Option("--hypotheses", "-n", min=1, help="Rows (hypotheses) to write.")
    ],
    parts: Annotated[int, typer.Option("--parts", "-k", min=1, help="Row slices (parts).")] = 1,
    layout: Annotated[
        str,
        typer.Option(
            "--layout",
            help="flat (part-*.parquet), hive (domain=<D>/part-*.parquet) or domain "
            "(one file per domain).",
        ),
    ] = "flat",
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
) -> None:
    """Write N realistic hypotheses (distinct annotations, 2 to 4 domains per utterance,
    references, devices) as a partitioned Parquet dataset, for benchmarks and trying a cluster."""
    from reranker.cli._datasets import partition_progress
    from reranker.dataset_output import LAYOUTS, check_dataset_output
    from reranker.synthetic_dataset import write_synthetic_dataset

    if layout not in LAYOUTS:
        raise typer.BadParameter(f"must be one of {', '.join(LAYOUTS)}", param_hint="--layout")
    if parts > hypotheses:
        raise typer.BadParameter("cannot exceed --hypotheses", param_hint="--parts")
    check_dataset_output(out)
    started = time.perf_counter()
    with partition_progress() as bar:
        summary = write_synthetic_dataset(
            out, hypotheses, parts=parts, layout=layout, seed=seed, progress=bar
        )
    err_console.print(
        f"wrote {summary['rows']:,} hypotheses in {summary['files']} files to {out} "
        f"({time.perf_counter() - started:.1f}s)",
        highlight=False,
    )
