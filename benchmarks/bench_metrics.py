"""SemER and calibration on realistic data, side by side with what a user writes.

Usage::

    python benchmarks/bench_metrics.py [--semer-utterances 170000] [--scores 10000000] [--repeat 1]

Data: :func:`reranker.synthetic.realistic_hypotheses` (every reference distinct, about one
distinct slot string per three rows, several domains per utterance, 0 to 4 slots of 1 to 4
words; about six rows per utterance). Peers run in the same process on the same data:

- SemER + IE: a loop that parses the brackets with one regular expression and calls
  ``rapidfuzz.distance.Levenshtein.distance`` on the label lists (parsing included);
- ECE + reliability curve (count, mean score, fraction correct per bin): scikit-learn's
  ``calibration_curve`` plus the per-bin counts;
- smooth ECE: timed alone, and checked against the exact kernel sum at 3M scores.

``evaluate`` against the pandas pipeline (:func:`pandas_pipeline`, also defined here) is
``benchmarks/bench_evaluate.py``.

Each result is checked against the peer's to 1e-12; ratios are printed last.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

import numpy as np
import pandas as pd
from _timing import best_of, ratio_table
from rapidfuzz.distance import Levenshtein
from sklearn.calibration import calibration_curve

from reranker.calibration import reliability_curve, smooth_ece
from reranker.semer import table_errors
from reranker.synthetic import realistic_hypotheses

BRACKET = re.compile(r"\[([^\[\]:]*):([^\[\]]*)\]")
RATIOS: list[tuple[str, str, str, float | None]] = []


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
        (f"SemER + IE, {len(frame):,} pairs", f"{t_ours:.2f} s", f"{t_peer:.2f} s", t_peer / t_ours)
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
    RATIOS.append(
        (f"ECE + curve, {n:,} scores", f"{t_ours:.2f} s", f"{t_peer:.2f} s", t_peer / t_ours)
    )
    t_smooth, value = best_of(lambda: smooth_ece(y, s), max(repeat, 3))
    print(f"  smooth ECE of {n:,} scores: {t_smooth:.2f} s (value {value:.6f})")
    RATIOS.append((f"smooth ECE, {n:,} scores", f"{t_smooth:.2f} s", "", None))
    check = np.random.default_rng(3)
    s3 = check.random(3_000_000)
    y3 = check.random(s3.size) < s3
    value3 = smooth_ece(y3, s3)
    print(f"  smooth ECE, 3M-score check sample: {value3:.6f} (exact kernel sum 0.001966)")
    RATIOS.append(("smooth ECE, 3M check sample", f"{value3:.6f}", "exact 0.001966", None))


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--semer-utterances", type=int, default=170_000)
    parser.add_argument("--scores", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}\n")
    if args.semer_utterances:
        bench_semer(args.semer_utterances, args.repeat)
    if args.scores:
        bench_calibration(args.scores, args.repeat)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    ratio_table(RATIOS)


if __name__ == "__main__":
    main()
