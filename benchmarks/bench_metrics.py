"""SemER, calibration and ``evaluate`` on realistic data, side by side with what a user writes.

Usage::

    python benchmarks/bench_metrics.py [--semer-utterances 170000] [--scores 10000000]
        [--evaluate-utterances 1000000] [--repeat 1]

Data: :func:`reranker.synthetic.realistic_hypotheses` (every reference distinct, about one
distinct slot string per three rows, several domains per utterance, 0 to 4 slots of 1 to 4
words; about six rows per utterance). Peers run in the same process on the same data:

- SemER + IE: a loop that parses the brackets with one regular expression and calls
  ``rapidfuzz.distance.Levenshtein.distance`` on the label lists (parsing included);
- ECE + reliability curve (count, mean score, fraction correct per bin): scikit-learn's
  ``calibration_curve`` plus the per-bin counts;
- smooth ECE: timed alone, and checked against the exact kernel sum at 3M scores;
- ``evaluate``: the obvious pandas pipeline (the SemER loop over every row, ``groupby``
  ``idxmax`` for the top hypotheses, ``calibration_curve`` overall and per domain and device),
  and the peak memory of ``evaluate`` in a fresh process against the table's size.

Each result is checked against the peer's to 1e-12; ratios are printed last.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import resource
from typing import Any

import numpy as np
import pandas as pd
from _timing import best_of
from rapidfuzz.distance import Levenshtein
from sklearn.calibration import calibration_curve

from reranker.calibration import reliability_curve, smooth_ece
from reranker.evaluation import evaluate
from reranker.ranking import r0_score
from reranker.semer import table_errors
from reranker.synthetic import realistic_hypotheses

BRACKET = re.compile(r"\[([^\[\]:]*):([^\[\]]*)\]")
RATIOS: list[str] = []


def rapidfuzz_errors(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The loop a user writes: one regex per annotation, rapidfuzz on the label lists."""
    columns = ["ref_domain", "ref_intent", "ref_slots", "domain", "intent", "slots"]
    semer = np.empty(len(frame))
    correct = np.empty(len(frame), dtype=np.int64)
    rows = zip(*(frame[c].tolist() for c in columns), strict=True)
    for k, (rd, ri, rs, hd, hi, hs) in enumerate(rows):
        ref = [(rd, ri)] + [
            (t.strip(), " ".join(v.lower().split())) for t, v in BRACKET.findall(rs)
        ]
        hyp = [(hd, hi)] + [
            (t.strip(), " ".join(v.lower().split())) for t, v in BRACKET.findall(hs)
        ]
        d = Levenshtein.distance(ref, hyp)
        semer[k] = d / len(ref)
        correct[k] = d == 0
    return semer, correct


def bench_semer(n_utt: int, repeat: int) -> None:
    frame = realistic_hypotheses(n_utt, seed=0)
    ratio = frame["slots"].nunique() / len(frame)
    print(f"SemER + IE: {len(frame):,} pairs, {ratio:.2f} distinct slot strings per row")
    t_ours, (semer, correct) = best_of(lambda: table_errors(frame), repeat)
    t_peer, (p_semer, p_correct) = best_of(lambda: rapidfuzz_errors(frame), repeat)
    assert np.abs(semer - p_semer).max() <= 1e-12 and (correct == p_correct).all()
    print(f"  ours table_errors {t_ours:.2f} s, rapidfuzz loop {t_peer:.2f} s (same values)")
    RATIOS.append(
        f"SemER + IE on {len(frame):,} pairs: rapidfuzz loop / ours = {t_peer / t_ours:.1f}x"
    )


def sklearn_curve(y: np.ndarray, s: np.ndarray, n_bins: int = 10) -> tuple[np.ndarray, ...]:
    """calibration_curve plus the counts and ECE a user adds to it."""
    frac, mean = calibration_curve(y, s, n_bins=n_bins)
    counts = np.bincount(np.minimum((s * n_bins).astype(int), n_bins - 1), minlength=n_bins)
    counts = counts[counts > 0]
    return counts, mean, frac, np.sum(counts / s.size * np.abs(frac - mean))


def bench_calibration(n: int, repeat: int) -> None:
    rng = np.random.default_rng(0)
    s = rng.random(n)
    y = (rng.random(n) < s**1.2).astype(np.int64)
    print(f"\nECE + reliability curve: {n:,} scores")

    def ours() -> tuple[Any, float]:
        c = reliability_curve(y, s, n_bins=10)
        ece = np.nansum(c.count * np.abs(c.frac_correct - c.mean_score)) / c.count.sum()
        return c, float(ece)

    t_ours, (curve, ece) = best_of(ours, max(repeat, 3))
    t_peer, (counts, mean, frac, p_ece) = best_of(lambda: sklearn_curve(y, s), max(repeat, 3))
    keep = curve.count > 0
    assert (curve.count[keep] == counts).all() and abs(ece - p_ece) <= 1e-12
    assert np.abs(curve.mean_score[keep] - mean).max() <= 1e-12
    assert np.abs(curve.frac_correct[keep] - frac).max() <= 1e-12
    print(f"  ours {t_ours * 1e3:.0f} ms, calibration_curve {t_peer * 1e3:.0f} ms (same values)")
    RATIOS.append(f"ECE + curve on {n:,} scores: calibration_curve / ours = {t_peer / t_ours:.1f}x")
    t_smooth, value = best_of(lambda: smooth_ece(y, s), max(repeat, 3))
    print(f"  smooth ECE of {n:,} scores: {t_smooth:.2f} s (value {value:.6f})")
    RATIOS.append(f"smooth ECE on {n:,} scores: {t_smooth:.2f} s")
    check = np.random.default_rng(3)
    s3 = check.random(3_000_000)
    y3 = check.random(s3.size) < s3
    print(
        f"  smooth ECE, 3M-score check sample: {smooth_ece(y3, s3):.6f} (exact kernel sum 0.001966)"
    )


def pandas_pipeline(frame: pd.DataFrame, score: np.ndarray) -> dict[str, Any]:
    """The obvious pipeline: SemER loop, groupby-idxmax, calibration_curve per slice."""
    d = frame.assign(score=score)
    d["semer"], d["correct"] = rapidfuzz_errors(d)
    top = d.loc[d.groupby("utterance_id", sort=False)["score"].idxmax()]

    def ece(part: pd.DataFrame) -> float:
        return float(sklearn_curve(part["correct"].to_numpy(), part["score"].to_numpy())[3])

    out: dict[str, Any] = {
        "top1_semer": top["semer"].mean(),
        "top1_ie": 1 - top["correct"].mean(),
        "ece": ece(d),
        "brier": float(((d["score"] - d["correct"]) ** 2).mean()),
        "ece_top1": ece(top),
    }
    out["by_domain"] = {k: ece(g) for k, g in d.groupby("domain")}
    out["by_device"] = {k: ece(g) for k, g in d.groupby("device")}
    return out


def _evaluate_peak(n_utt: int, queue: Any) -> None:
    warm = realistic_hypotheses(200, seed=2)
    evaluate(warm, r0_score(warm))  # imports and allocator pools, not counted
    frame = realistic_hypotheses(n_utt, seed=1)
    score = r0_score(frame)
    table_bytes = int(frame.memory_usage(deep=True).sum())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with open("/proc/self/statm") as f:
        current = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    evaluate(frame, score)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    queue.put((table_bytes, current, max(peak, before)))


def bench_evaluate(n_utt: int, repeat: int) -> None:
    frame = realistic_hypotheses(n_utt, seed=1)
    score = r0_score(frame)
    print(f"\nevaluate: {len(frame):,} hypotheses, {n_utt:,} utterances")
    t_ours, ours = best_of(lambda: evaluate(frame, score), repeat)
    t_peer, peer = best_of(lambda: pandas_pipeline(frame, score), repeat)
    for key in ("top1_semer", "top1_ie", "ece", "brier", "ece_top1"):
        assert abs(ours[key] - peer[key]) <= 1e-12, (key, ours[key], peer[key])
    for name in ("domain", "device"):
        for k, v in peer[f"by_{name}"].items():
            assert abs(ours[f"by_{name}"][k]["ece"] - v) <= 1e-12
    print(
        f"  ours evaluate {t_ours:.2f} s, pandas + rapidfuzz + sklearn {t_peer:.2f} s (same values)"
    )
    RATIOS.append(
        f"evaluate on {len(frame):,} rows: pandas pipeline / ours = {t_peer / t_ours:.1f}x"
    )
    queue: Any = multiprocessing.get_context("spawn").Queue()
    child = multiprocessing.get_context("spawn").Process(target=_evaluate_peak, args=(n_utt, queue))
    child.start()
    table_bytes, before, peak = queue.get()
    child.join()
    print(
        f"  table in memory {table_bytes / 2**20:,.0f} MiB; process before evaluate "
        f"{before / 2**20:,.0f} MiB, peak {peak / 2**20:,.0f} MiB"
    )
    RATIOS.append(
        f"evaluate peak memory above the loaded table / table size = "
        f"{(peak - before) / table_bytes:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--semer-utterances", type=int, default=170_000)
    parser.add_argument("--scores", type=int, default=10_000_000)
    parser.add_argument("--evaluate-utterances", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}\n")
    if args.semer_utterances:
        bench_semer(args.semer_utterances, args.repeat)
    if args.scores:
        bench_calibration(args.scores, args.repeat)
    if args.evaluate_utterances:
        bench_evaluate(args.evaluate_utterances, args.repeat)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}\nratios")
    for line in RATIOS:
        print(f"  {line}")


if __name__ == "__main__":
    main()
