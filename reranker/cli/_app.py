"""The Typer application every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="reranker",
    help="Per-domain NLU re-ranking with calibrated scores, and its calibration dashboard.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
