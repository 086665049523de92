"""The ``reranker`` command line (docs/cli.md).

Every command exits non-zero with a single ``reranker: error: ...`` line on bad input: a project
error, a usage error (unknown option, a value out of range, a bad choice) and an operating-system
error on a named file are all reported that way by :func:`run`, never as a traceback or a box.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import typer

from reranker.cli import _evaluate  # noqa: F401  (registers rerank, evaluate)
from reranker.cli._app import app
from reranker.errors import RerankerError

__all__ = ["app", "main", "run"]

for _module in ("_train", "_nlu", "_dashboard", "_serve", "_synth", "_compare"):
    # Command groups of the training, NLU, dashboard and serving layers register on import.
    __import__(f"reranker.cli.{_module}")

USAGE_EXIT = 2
ERROR_EXIT = 2

# The exceptions of the click that typer runs on (its own vendored copy in recent versions).
_click = importlib.import_module(typer.BadParameter.__module__)
_UsageError: type[Exception] = _click.UsageError
_ClickException: type[Exception] = _click.ClickException
_NoArgsIsHelp: type[Exception] | None = getattr(_click, "NoArgsIsHelpError", None)


def _error(message: str) -> None:
    print(f"reranker: error: {' '.join(message.split())}", file=sys.stderr)


def _usage_message(e: Exception) -> str:
    message = e.format_message()  # type: ignore[attr-defined]
    ctx = getattr(e, "ctx", None)
    if ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message


def _os_message(e: OSError) -> str:
    reason = e.strerror or type(e).__name__
    return f"{e.filename}: {reason}" if e.filename is not None else reason


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``) and return the exit status.

    Usage and input errors print one ``reranker: error: ...`` line on stderr.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = app(args=args, prog_name="reranker", standalone_mode=False)
    except typer.Exit as e:
        return int(e.exit_code)
    except typer.Abort:
        print("reranker: interrupted", file=sys.stderr)
        return 130
    except _ClickException as e:
        if _NoArgsIsHelp is not None and isinstance(e, _NoArgsIsHelp):
            e.show()  # type: ignore[attr-defined]  # bare `reranker` or `reranker nlu`: the help
        elif isinstance(e, _UsageError):
            _error(_usage_message(e))
        else:
            _error(e.format_message())  # type: ignore[attr-defined]
        return USAGE_EXIT
    except RerankerError as e:
        _error(str(e))
        return ERROR_EXIT
    except OSError as e:  # a file-system condition no reader anticipated: still one line
        _error(_os_message(e))
        return ERROR_EXIT
    except KeyboardInterrupt:
        print("reranker: interrupted", file=sys.stderr)
        return 130
    return int(result) if isinstance(result, int) else 0


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())
