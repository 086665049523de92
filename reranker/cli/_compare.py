"""``reranker compare``: two scorings of one table, with paired bootstrap intervals."""

from __future__ import annotations

import json
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table
from rich.text import Text

from reranker.cli._app import app
from reranker.cli._common import out_console, status
from reranker.compare import compare_scorings
from reranker.errors import DataError
from reranker.hypotheses import has_references, read_hypotheses
from reranker.scoring import score_hypotheses

MAX_BOOTSTRAP = 10_000


@app.command()
def compare(
    hypotheses: Annotated[
        str, typer.Option("--hypotheses", "-H", help="Hypothesis table with references.")
    ],
    a: Annotated[str, typer.Option("--a", help="Scoring A: a weights registry or 'r0'.")],
    b: Annotated[str, typer.Option("--b", help="Scoring B: a weights registry or 'r0'.")],
    bootstrap: Annotated[
        int,
        typer.Option(
            "--bootstrap", min=1, max=MAX_BOOTSTRAP, help="Paired resamples of utterances."
        ),
    ] = 1000,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Bootstrap seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """B minus A in every metric, with paired utterance-bootstrap 90% intervals, and the
    utterances whose top hypothesis went from right to wrong or back."""
    with status(f"reading {hypotheses}"):
        table = read_hypotheses(hypotheses)
    if not has_references(table):
        raise DataError(
            f"{hypotheses}: comparing needs the reference columns ref_domain, ref_intent and ref_slots"
        )
    with status("scoring and comparing"):
        result = compare_scorings(
            table,
            score_hypotheses(table, a).score,
            score_hypotheses(table, b).score,
            n_boot=bootstrap,
            seed=seed,
        )
    if as_json:
        doc = result.to_dict() | {"a": a, "b": b}
        print(json.dumps(doc, indent=1, sort_keys=True))
        return
    grid = Table(title=f"B ({b}) minus A ({a}) on {result.n_utterances} utterances")
    for column in ("metric", "A", "B", "B - A", "90% interval"):
        grid.add_column(column, justify="left" if column == "metric" else "right")
    for name, row in result.metrics.iterrows():
        grid.add_row(
            str(name),
            f"{row['a']:.4f}",
            f"{row['b']:.4f}",
            f"{row['difference']:+.4f}",
            f"[{row['low']:+.4f}, {row['high']:+.4f}]",
        )
    out_console.print(grid)
    counts = result.changed["change"].value_counts()
    out_console.print(
        f"top hypothesis right to wrong: {int(counts.get('right to wrong', 0))}, "
        f"wrong to right: {int(counts.get('wrong to right', 0))}",
        highlight=False,
    )
    _print_changed(result.changed)


SHOWN_CHANGES = 20
"""Changed utterances listed in the text output (``--json`` lists them all)."""


def _print_changed(changed: pd.DataFrame) -> None:
    """The first changed utterances: id, change and text (plain text, never markup)."""
    if changed.empty:
        return
    grid = Table(title="Utterances whose top hypothesis changed")
    for column in ("utterance_id", "change", "text"):
        grid.add_column(column)
    for row in changed.head(SHOWN_CHANGES).itertuples(index=False):
        text = str(getattr(row, "text", "") or "")
        grid.add_row(Text(str(row.utterance_id)), Text(str(row.change)), Text(text))
    out_console.print(grid)
    if len(changed) > SHOWN_CHANGES:
        out_console.print(
            f"... and {len(changed) - SHOWN_CHANGES} more (--json lists them all)", highlight=False
        )
