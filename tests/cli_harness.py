"""Run the command line in-process and check the bad-input contract of every command.

The contract: a non-zero exit, exactly one ``reranker: error: ...`` line on stderr naming the
file (and row and column where there is one), no traceback, and no output file created or
changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from reranker.cli import run
from reranker.registry import WeightsRegistry
from tests.conftest import CONFORMANCE, REPO

GOOD_TABLE = CONFORMANCE / "hypotheses.csv"
MODELS = REPO / "demo_data" / "media" / "models"


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


def invoke(*args: object) -> Outcome:
    """Run ``reranker ARGS`` in this process and capture its exit status and output."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run([str(a) for a in args])
    return Outcome(code, out.getvalue(), err.getvalue())


def snapshot(*paths: Path) -> dict[str, str]:
    """Digest of every file under ``paths`` (a missing path is recorded as missing)."""
    found: dict[str, str] = {}
    for root in paths:
        if not os.path.lexists(root):
            found[str(root)] = "missing"
            continue
        files = [root] if not root.is_dir() else sorted(p for p in root.rglob("*"))
        for f in files:
            if f.is_symlink():
                found[str(f)] = "symlink:" + os.readlink(f)
            elif f.is_file():
                found[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
            else:
                found[str(f)] = "dir"
    return found


def assert_one_error_line(outcome: Outcome, *fragments: str) -> str:
    """The bad-input contract on one run; returns the error line."""
    assert outcome.code != 0, f"exit 0 on bad input; stderr={outcome.stderr!r}"
    assert "Traceback" not in outcome.stderr + outcome.stdout, outcome.stderr
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got {outcome.stderr!r}"
    line = lines[0]
    assert line.startswith("reranker: error: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def make_registry(root: Path, *, versions: int = 2, domains: tuple[str, ...] = ("Music",)) -> Path:
    """A weights registry with ``versions`` valid versions of each domain."""
    from tests.test_registry import _document

    reg = WeightsRegistry(root)
    for d in domains:
        for k in range(versions):
            reg.publish(d, _document(d, k + 1))
    return root


def copy_models(target: Path) -> Path:
    """A private copy of the shipped media NLU models."""
    shutil.copytree(MODELS, target)
    return target


def write_json(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc))
    return path
