"""SemER and calibration on one million hypotheses, side by side with named peers.

Peers, run in the same process on the same data:
- SemER: the textbook per-pair Python dynamic programme (what one writes without vectorising),
  timed on a random subsample and scaled to the full size;
- ECE: scikit-learn's ``calibration_curve`` (binning and per-bin means) plus the weighted gap.

Usage: ``python benchmarks/bench_metrics.py [--rows 1000000]``. Prints seconds and ratios.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve

from reranker.annotation import normalize_value, parse_slots
from reranker.calibration import expected_calibration_error
from reranker.evaluation import evaluate
from reranker.hypotheses import validate_hypotheses
from reranker.ranking import r0_score
from reranker.semer import table_errors

TYPES = ["song", "artist", "album", "title", "device", "date"]
VALUES = ["mary poppins", "moana", "thriller", "the lion king", "harry potter", "today", "tv"]
DOMAINS = ["Music", "Video", "Books", "Weather", "Shopping", "Podcasts"]


def make_hypotheses(n_rows: int, seed: int = 0) -> pd.DataFrame:
    """A realistic table: 4 hypotheses per utterance, 0-3 slots each, references per utterance."""
    rng = np.random.default_rng(seed)
    n_utt = n_rows // 4

    pool = np.array(
        [
            " ".join(f"[{TYPES[t]} : {VALUES[v]}]" for t, v in zip(ts[:k], vs[:k], strict=True))
            for ts, vs, k in zip(
                rng.integers(0, 6, (500, 3)),
                rng.integers(0, 7, (500, 3)),
                rng.integers(0, 4, 500),
                strict=True,
            )
        ]
    )

    def annotations(n: int) -> np.ndarray:
        return pool[rng.integers(0, len(pool), size=n)]

    utt = np.repeat(np.arange(n_utt), 4)
    ref_domain = rng.integers(0, 6, size=n_utt)
    domain = rng.integers(0, 6, size=n_rows)
    ref_slots = annotations(n_utt)
    slots = np.where(rng.random(n_rows) < 0.4, ref_slots[utt], annotations(n_rows))
    frame = pd.DataFrame(
        {
            "utterance_id": pd.Series(utt).astype(str).radd("u"),
            "device": np.array(["echo_dot", "echo_show", "fire_tv"])[rng.integers(0, 3, n_rows)],
            "domain": np.array(DOMAINS)[domain],
            "intent": np.array(DOMAINS)[domain]
            + ".Intent"
            + rng.integers(0, 3, n_rows).astype(str),
            "slots": slots,
            "domain_score": rng.random(n_rows),
            "intent_score": rng.random(n_rows),
            "slot_score": rng.random(n_rows),
            "ref_domain": np.array(DOMAINS)[ref_domain][utt],
            "ref_intent": (np.array(DOMAINS)[ref_domain] + ".Intent0")[utt],
            "ref_slots": ref_slots[utt],
        }
    )
    # make every (utterance, domain, intent, slots) unique by construction
    frame["slots"] = frame["slots"] + np.where(
        np.arange(n_rows) % 4 == 0, "", " x" + (np.arange(n_rows) % 4).astype(str)
    )
    return frame


def python_semer(ref_i: str, ref_s: str, hyp_i: str, hyp_s: str) -> float:
    ref = [ref_i] + [(t, normalize_value(v)) for t, v in parse_slots(ref_s)]
    hyp = [hyp_i] + [(t, normalize_value(v)) for t, v in parse_slots(hyp_s)]
    prev = list(range(len(hyp) + 1))
    for i, a in enumerate(ref, 1):
        cur = [i]
        for j, b in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a != b)))
        prev = cur
    return prev[-1] / len(ref)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--peer-sample", type=int, default=50_000)
    args = parser.parse_args()

    frame = validate_hypotheses(make_hypotheses(args.rows))
    n = len(frame)
    t_semer, (semer, correct) = timed(table_errors, frame)

    rng = np.random.default_rng(1)
    sample = rng.choice(n, size=min(args.peer_sample, n), replace=False)
    sub = frame.iloc[sample]
    t_peer, peer = timed(
        lambda: [
            python_semer(a + "/" + b, c, d + "/" + e, f)
            for a, b, c, d, e, f in zip(
                sub["ref_domain"],
                sub["ref_intent"],
                sub["ref_slots"],
                sub["domain"],
                sub["intent"],
                sub["slots"],
                strict=True,
            )
        ]
    )
    assert np.allclose(peer, semer[sample]), (
        "vectorised SemER disagrees with the per-pair reference"
    )
    t_peer_full = t_peer * n / len(sample)

    score = r0_score(frame)
    t_ece, ece = timed(expected_calibration_error, correct, score)

    def sklearn_ece():
        prob_true, prob_pred = calibration_curve(correct, score, n_bins=10)
        idx = np.minimum(np.floor(score * 10), 9).astype(int)
        counts = np.bincount(idx, minlength=10)
        return float(np.sum(counts[counts > 0] / n * np.abs(prob_true - prob_pred)))

    t_sk, ece_sk = timed(sklearn_ece)
    t_eval, _ = timed(evaluate, frame, score)

    print(f"rows: {n:,} hypotheses, {frame['utterance_id'].nunique():,} utterances")
    print(f"SemER + IE (vectorised, table_errors): {t_semer:8.2f} s")
    print(
        f"SemER per-pair Python DP (peer, {len(sample):,} rows scaled): {t_peer_full:8.2f} s  -> ratio peer/ours {t_peer_full / t_semer:.1f}x"
    )
    print(f"ECE (ours):                 {t_ece * 1000:8.1f} ms  ece={ece:.6f}")
    print(
        f"ECE via sklearn calibration_curve (peer): {t_sk * 1000:8.1f} ms  ece={ece_sk:.6f}  -> ratio peer/ours {t_sk / t_ece:.1f}x"
    )
    print(f"full evaluate() incl. SemER, ranks, slices: {t_eval:8.2f} s")


if __name__ == "__main__":
    main()
