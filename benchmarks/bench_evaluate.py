"""``reranker evaluate`` on a realistic n-best log against the obvious pandas pipeline.

Usage::

    python benchmarks/bench_evaluate.py [--utterances 1000000] [--data PATH] [--repeat 1]

Data: :func:`reranker.synthetic.realistic_hypotheses` (every reference distinct, about one
distinct slot string per three rows, several domains per utterance; about six rows per
utterance, so about six million rows by default), written once to a Parquet file (``--data``
keeps it for later runs; by default a temporary file).

Each side runs in a fresh process that reads the Parquet file and computes the report; its time
(wall and CPU of all the process's threads) includes reading, and its peak resident memory is
the whole process's (``ru_maxrss``). On a busy machine wall times stretch with the waiting for a
core; the CPU times do much less:

- ours: what ``reranker evaluate --hypotheses FILE --weights r0 --json`` runs
  (:func:`reranker.read_hypotheses`, R0 scores, :func:`reranker.evaluation.evaluate`);
- peer: ``pandas.read_parquet``, the rapidfuzz SemER loop over every row, ``groupby``
  ``idxmax`` for the top hypotheses, scikit-learn's ``calibration_curve`` overall, on the top
  hypotheses, per domain and per device (:func:`bench_metrics.pandas_pipeline`).

Every number the peer computes is checked equal to ours to 1e-12; ratios are printed last.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from _timing import ratio_table

KEYS = ("top1_semer", "top1_ie", "ece", "brier", "ece_top1")


def _peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _ours(path: str, queue: Any) -> None:
    from reranker.evaluation import evaluate
    from reranker.hypotheses import read_hypotheses
    from reranker.scoring import score_hypotheses

    start, cpu = time.perf_counter(), time.process_time()
    table = read_hypotheses(path)
    report = evaluate(table, score_hypotheses(table, "r0").score)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    table_bytes = int(table.memory_usage(deep=True).sum())
    queue.put((seconds, cpu, _peak_bytes(), table_bytes, report))


def _peer(path: str, queue: Any) -> None:
    import pandas as pd
    from bench_metrics import pandas_pipeline

    start, cpu = time.perf_counter(), time.process_time()
    frame = pd.read_parquet(path)
    score = (frame["domain_score"] * frame["intent_score"] * frame["slot_score"]).to_numpy()
    result = pandas_pipeline(frame, score)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    queue.put((seconds, cpu, _peak_bytes(), 0, result))


def _run(target: Any, path: str) -> tuple[float, float, int, int, Any]:
    """``target(path, queue)`` in a fresh process: its time, CPU time, peak memory, table size,
    result."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=target, args=(path, queue))
    child.start()
    out = queue.get()
    child.join()
    return out  # type: ignore[no-any-return]


def _check_equal(ours: dict[str, Any], peer: dict[str, Any]) -> None:
    for key in KEYS:
        assert abs(ours[key] - peer[key]) <= 1e-12, (key, ours[key], peer[key])
    for name in ("domain", "device"):
        for k, v in peer[f"by_{name}"].items():
            assert abs(ours[f"by_{name}"][k]["ece"] - v) <= 1e-12, (name, k)


def _write_data(n_utt: int, data: str | None, tmp: str) -> str:
    from reranker.synthetic import realistic_hypotheses

    path = Path(data) if data else Path(tmp) / "hypotheses.parquet"
    if not path.exists():
        start = time.perf_counter()
        realistic_hypotheses(n_utt, seed=1).to_parquet(path, index=False)
        print(f"wrote {path} in {time.perf_counter() - start:.0f} s")
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=1_000_000)
    parser.add_argument("--data", help="Parquet file to reuse (written first if absent)")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        path = _write_data(args.utterances, args.data, tmp)
        ours = min((_run(_ours, path) for _ in range(args.repeat)), key=lambda r: r[0])
        t_ours, cpu_ours, peak_ours, table_bytes, report = ours
        print(f"ours: {t_ours:.1f} s (CPU {cpu_ours:.1f} s), peak {peak_ours / 2**20:,.0f} MiB")
        peer = min((_run(_peer, path) for _ in range(args.repeat)), key=lambda r: r[0])
        t_peer, cpu_peer, peak_peer, _, result = peer
        print(
            f"pandas + rapidfuzz + scikit-learn: {t_peer:.1f} s (CPU {cpu_peer:.1f} s), "
            f"peak {peak_peer / 2**20:,.0f} MiB"
        )
    _check_equal(report, result)
    rows = report["n_hypotheses"]
    print(
        f"{rows:,} hypotheses, {report['n_utterances']:,} utterances; every number equal to 1e-12"
    )
    print(f"table in memory: {table_bytes / 2**20:,.0f} MiB")
    print(f"load average at the end {os.getloadavg()[0]:.1f}\n")
    ratio_table(
        [
            (
                f"evaluate, {rows:,} rows, from Parquet",
                f"{t_ours:.1f} s",
                f"{t_peer:.1f} s",
                t_peer / t_ours,
            ),
            (
                "the same, CPU time of the process (all its threads)",
                f"{cpu_ours:.1f} s",
                f"{cpu_peer:.1f} s",
                cpu_peer / cpu_ours,
            ),
            (
                "evaluate peak memory / table in memory",
                f"{peak_ours / table_bytes:.2f}x",
                f"{peak_peer / table_bytes:.2f}x",
                None,
            ),
        ]
    )


if __name__ == "__main__":
    main()
