"""The ``reranker`` command line (docs/cli.md).

Every command exits non-zero with a single ``reranker: error: ...`` line on bad input.
"""

from __future__ import annotations

import sys

from reranker.cli import _evaluate  # noqa: F401  (registers rerank, evaluate)
from reranker.cli._app import app
from reranker.errors import RerankerError

__all__ = ["app", "main"]

for _module in ("_train", "_nlu", "_dashboard", "_serve", "_synth"):
    # Command groups of the training, NLU, dashboard and serving layers register on import.
    __import__(f"reranker.cli.{_module}")


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="reranker")
    except RerankerError as e:
        print(f"reranker: error: {' '.join(str(e).split())}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("reranker: interrupted", file=sys.stderr)
        sys.exit(130)
