"""Re-rankers trained on one half of SLURP devel and tested on the other, both ways.

The real-corpus demo trains its re-rankers on HWU64's cross-fitted hypotheses and tests on all of
SLURP devel (``demo_data/real/hypotheses/test.parquet``). This script measures the alternative
that uses SLURP devel alone: cut it into two random halves (seed 0), train on one half and test
on the other, then swap, and pool the two test halves (every utterance scored by re-rankers that
did not see it). It prints, per loss and λ, the paired top-1 SemER and top-1 IE difference
against R0 for each direction and pooled (90% paired utterance-bootstrap intervals), and, with
``--cross-fitted``, the shipped weights' difference on each half, for comparison.

Usage::

    python benchmarks/slurp_halves.py                       # R1 and R3, λ = 1e-3 and auto
    python benchmarks/slurp_halves.py --loss r3 --l2 0.001 --cross-fitted
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reranker.compare import compare_scorings
from reranker.hypotheses import read_hypotheses
from reranker.ranking import r0_score
from reranker.scoring import score_with_registry
from reranker.training import train_domains

DEMO = Path(__file__).resolve().parent.parent / "demo_data" / "real"


def halves(test: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """SLURP devel cut into two random halves of its utterances (in corpus order)."""
    ids = test["utterance_id"].drop_duplicates().to_numpy()
    order = np.random.default_rng(seed).permutation(ids.size)
    first = set(ids[np.sort(order[: ids.size // 2])])
    mask = test["utterance_id"].isin(first).to_numpy()
    return test[mask].reset_index(drop=True), test[~mask].reset_index(drop=True)


def _difference(table: pd.DataFrame, scores: Any, n_boot: int) -> str:
    metrics = compare_scorings(table, r0_score(table), scores, n_boot=n_boot).metrics
    cells = []
    for key in ("top1_semer", "top1_ie"):
        row = metrics.loc[key]
        cells.append(f"{row['difference']:+.4f} [{row['low']:+.4f}, {row['high']:+.4f}]")
    return " | ".join(cells)


def _scores(train: pd.DataFrame, test: pd.DataFrame, out: Path, loss: str, l2: Any) -> Any:
    train_domains(train, loss=loss, out=out, l2=l2)
    return score_with_registry(test, out).score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", type=Path, default=DEMO / "hypotheses" / "test.parquet")
    parser.add_argument("--loss", action="append", help="r1, r2 or r3 (repeatable; r1 and r3)")
    parser.add_argument("--l2", action="append", help="a number or auto (repeatable; both)")
    parser.add_argument("--boot", type=int, default=500)
    parser.add_argument("--cross-fitted", action="store_true", help="also the shipped weights")
    args = parser.parse_args()
    test = read_hypotheses(args.test)
    a, b = halves(test)
    both = pd.concat([a, b], ignore_index=True)
    print(f"halves of {args.test}: {a['utterance_id'].nunique()} and {b['utterance_id'].nunique()}")
    print("\n| loss | λ | run | top-1 SemER − R0 | top-1 IE − R0 |\n|---|---|---|---|---|")
    for loss in args.loss or ["r1", "r3"]:
        for l2 in args.l2 or ["0.001", "auto"]:
            lam: Any = l2 if l2 == "auto" else float(l2)
            with tempfile.TemporaryDirectory() as tmp:
                on_b = _scores(a, b, Path(tmp) / "a", loss, lam)
                on_a = _scores(b, a, Path(tmp) / "b", loss, lam)
            runs = [("train A, test B", b, on_b), ("train B, test A", a, on_a)]
            runs.append(("pooled", both, np.concatenate([on_a, on_b])))
            for name, table, scores in runs:
                print(f"| {loss} | {l2} | {name} | {_difference(table, scores, args.boot)} |")
        if args.cross_fitted:
            for name, table in (("half A", a), ("half B", b)):
                scores = score_with_registry(table, DEMO / "weights" / loss).score
                print(f"| {loss} | shipped | {name} | {_difference(table, scores, args.boot)} |")


if __name__ == "__main__":
    main()
