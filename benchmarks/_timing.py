"""Timing shared by the benchmark scripts (run as ``python benchmarks/<script>.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall time of ``repeat`` calls of ``fn`` (seconds) and the last call's result."""
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def ratio_table(rows: list[tuple[str, str, str, float | None]]) -> None:
    """Print the final table: step, ours, peer, peer / ours (a ratio of None prints blank)."""
    head = ("step", "ours", "peer", "peer / ours")
    cells = [head] + [(s, o, p, "" if r is None else f"{r:.1f}x") for s, o, p, r in rows]
    widths = [max(len(row[j]) for row in cells) for j in range(4)]
    print("ratios")
    for row in cells:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
