"""Time training every domain on ~1M hypotheses: serial vs parallel, and vs scikit-learn.

Usage::

    .venv/bin/python benchmarks/bench_training.py [--hypotheses 1000000] [--jobs 2]
        [--table FILE]   # resample a real hypothesis table instead of synthesising one

Three measurements run side by side in one process on the same table:

1. ``train_domains(..., engine="serial")``: every domain one after another, end to end (features,
   SemER, fits, publishing to a temporary registry);
2. ``train_domains(..., engine="local", jobs=N)``: the same in N worker processes;
3. scikit-learn's ``LogisticRegression`` (lbfgs) on exactly the R2 problem of each domain: same
   feature matrix, ``C = 1 / (2 λ U)`` with U the domain's utterances (our R2 is
   ``(1/U) Σ CE + λ‖w‖²``), against our R2 fit alone on the same matrices.

Timings are wall-clock (``time.perf_counter``), best of ``--repeat`` runs. The worker processes'
one-time start-up (a forkserver importing the package) is measured separately on a tiny table
first; each parallel run still pays for creating its pool and shipping the domains' arrays.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from reranker.estimator import DomainReranker
from reranker.hypotheses import read_hypotheses, validate_hypotheses
from reranker.losses import make_problem, objective
from reranker.registry import WeightsRegistry
from reranker.semer import table_errors
from reranker.training import prepare_tasks, synthetic_hypotheses, train_domains


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _resample(table: pd.DataFrame, n_rows: int, seed: int) -> pd.DataFrame:
    """Resample whole utterances (with new ids) until the table has about ``n_rows`` rows."""
    rng = np.random.default_rng(seed)
    groups = table.groupby("utterance_id", sort=False).indices
    ids = list(groups)
    per_utt = len(table) / len(ids)
    picks = rng.integers(0, len(ids), int(n_rows / per_utt))
    index = np.concatenate([groups[ids[i]] for i in picks])
    copy_no = np.repeat(np.arange(picks.size), [groups[ids[i]].size for i in picks])
    out = table.iloc[index].reset_index(drop=True)
    out["utterance_id"] = out["utterance_id"].astype(str) + "#" + pd.Series(copy_no).astype(str)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hypotheses", type=int, default=1_000_000, help="target number of rows")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--l2", type=float, default=1e-3)
    parser.add_argument("--table", help="a real hypothesis table to resample instead")
    args = parser.parse_args()

    start = time.perf_counter()
    if args.table:
        table = _resample(read_hypotheses(args.table), args.hypotheses, seed=0)
    else:
        # ~6 hypotheses per utterance
        table = synthetic_hypotheses(max(1, args.hypotheses // 6), seed=0)
    table = validate_hypotheses(table)
    print(
        f"data: {len(table):,} hypotheses, {table['utterance_id'].nunique():,} utterances, "
        f"{table['domain'].nunique()} domains ({time.perf_counter() - start:.1f} s to build)"
    )
    print(f"machine: {os.cpu_count()} cores\n")

    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        # the first pool starts the forkserver, which imports the package once per process
        warm = validate_hypotheses(synthetic_hypotheses(200, seed=1))
        seconds, _ = _best(
            lambda: train_domains(warm, loss="r2", out=os.path.join(tmp, "warm"), jobs=args.jobs), 1
        )
        print(f"{'one-time worker start-up (tiny table)':<44} {seconds:8.2f} s")
        for loss in ("r2", "r3"):
            for engine, jobs in (("serial", 1), ("local", args.jobs)):
                out = os.path.join(tmp, f"{loss}-{engine}")
                seconds, results = _best(
                    lambda out=out, engine=engine, jobs=jobs, loss=loss: train_domains(
                        table, loss=loss, out=out, engine=engine, jobs=jobs, l2=args.l2
                    ),
                    args.repeat,
                )
                assert all(r.ok for r in results.values()), results
                rows.append((f"train_domains {loss} {engine} (jobs={jobs})", seconds))
                print(f"{rows[-1][0]:<44} {seconds:8.2f} s", flush=True)

        tasks = prepare_tasks(table, loss="r2", registry=WeightsRegistry(os.path.join(tmp, "x")))
    # the correct bit of each domain's rows (workers compute it inside train_domains)
    tasks = [
        t if t.y is not None else replace(t, y=table_errors(t.interpretations)[1]) for t in tasks
    ]

    def ours() -> list[DomainReranker]:
        return [DomainReranker("r2", l2=args.l2).fit(t.X, t.y, groups=t.groups) for t in tasks]

    def sklearn() -> list[LogisticRegression]:
        fitted = []
        for t in tasks:
            n_utt = len(pd.unique(t.groups))
            model = LogisticRegression(C=1.0 / (2.0 * args.l2 * n_utt), max_iter=10_000, tol=1e-6)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fitted.append(model.fit(t.X, t.y))
        return fitted

    t_ours, ours_models = _best(ours, args.repeat)
    t_sk, sk_models = _best(sklearn, args.repeat)
    rows.append(("DomainReranker r2 fits only (serial)", t_ours))
    rows.append(("sklearn LogisticRegression (serial)", t_sk))
    for name, s in rows[-2:]:
        print(f"{name:<44} {s:8.2f} s")

    gaps = []
    for t, a, b in zip(tasks, ours_models, sk_models, strict=True):
        problem = make_problem(t.X, t.y, t.groups)
        la = objective(np.r_[a.coef_, a.intercept_], problem, loss="r2", l2=args.l2)[0]
        lb = objective(np.r_[b.coef_.ravel(), b.intercept_], problem, loss="r2", l2=args.l2)[0]
        gaps.append(lb - la)
    print(
        "\nR2 objective, sklearn minus ours, per domain: "
        + ", ".join(f"{t.domain} {g:+.2e}" for t, g in zip(tasks, gaps, strict=True))
    )
    times = dict(rows)
    print("\nratios")
    for loss in ("r2", "r3"):
        serial = times[f"train_domains {loss} serial (jobs=1)"]
        parallel = times[f"train_domains {loss} local (jobs={args.jobs})"]
        print(f"  {loss}: serial / parallel (jobs={args.jobs}) = {serial / parallel:.2f}x")
    print(f"  sklearn / DomainReranker (R2 fits) = {t_sk / t_ours:.2f}x")
    print(
        "\n| run | seconds |\n|---|---:|\n" + "\n".join(f"| {name} | {s:.2f} |" for name, s in rows)
    )


if __name__ == "__main__":
    main()
