from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reranker.errors import DataError
from reranker.evaluation import METRIC_KEYS, evaluate
from reranker.hypotheses import read_hypotheses, validate_hypotheses
from reranker.ranking import r0_score
from reranker.tables import score_table
from tests.conftest import CONFORMANCE, make_table
from tests.test_calibration import slow_ece
from tests.test_semer import slow_semer


def _assert_close(expected, got, path=""):
    if isinstance(expected, dict):
        for key, value in expected.items():
            assert key in got, f"missing key {path}{key}"
            _assert_close(value, got[key], f"{path}{key}.")
    else:
        assert got == pytest.approx(expected, abs=1e-9), path


def test_evaluate_reproduces_conformance_r0() -> None:
    table = read_hypotheses(CONFORMANCE / "hypotheses.csv")
    expected = json.loads((CONFORMANCE / "expected_r0.json").read_text())
    _assert_close(expected, evaluate(table, r0_score(table)))


def test_semer_conformance_cases() -> None:
    cases = pd.read_csv(CONFORMANCE / "semer_cases.csv", dtype=str, keep_default_na=False)
    table = validate_hypotheses(cases.drop(columns="expected_semer"))
    scored = score_table(table, r0_score(table))
    np.testing.assert_allclose(scored.semer, cases["expected_semer"].astype(float), atol=1e-12)


def independent_evaluate(frame: pd.DataFrame, score: np.ndarray) -> dict:
    """A slow, loop-based implementation of docs/metrics.md, written from the text alone."""
    rows = frame.to_dict("records")
    for k, row in enumerate(rows):
        row["_k"], row["_score"] = k, score[k]
        row["_semer"] = slow_semer(
            row["ref_domain"] + "/" + row["ref_intent"],
            row["ref_slots"],
            row["domain"] + "/" + row["intent"],
            row["slots"],
        )
        row["_correct"] = int(row["_semer"] == 0 and row["domain"] == row["ref_domain"])
    by_utt: dict[str, list] = {}
    for row in rows:
        by_utt.setdefault(row["utterance_id"], []).append(row)
    tops = {
        u: min(rs, key=lambda r: (-r["_score"], -r["domain_score"], r["_k"]))
        for u, rs in by_utt.items()
    }

    def metrics(hyps, utts):
        top = [tops[u] for u in utts]
        ece, mce = slow_ece([r["_correct"] for r in hyps], [r["_score"] for r in hyps])
        ece_top, _ = slow_ece([r["_correct"] for r in top], [r["_score"] for r in top])
        return {
            "n_utterances": len(top),
            "n_hypotheses": len(hyps),
            "top1_semer": sum(r["_semer"] for r in top) / len(top),
            "top1_ie": sum(1 - r["_correct"] for r in top) / len(top),
            "ece": ece,
            "mce": mce,
            "brier": sum((r["_score"] - r["_correct"]) ** 2 for r in hyps) / len(hyps),
            "ece_top1": ece_top,
        }

    out = metrics(rows, list(by_utt))
    out["by_domain"] = {
        d: metrics(
            [r for r in rows if r["domain"] == d],
            [u for u, t in tops.items() if by_utt[u][0]["ref_domain"] == d],
        )
        for d in {r["domain"] for r in rows} & {r["ref_domain"] for r in rows}
    }
    out["by_device"] = {
        v: metrics(
            [r for r in rows if r["device"] == v],
            [u for u in by_utt if by_utt[u][0]["device"] == v],
        )
        for v in {r["device"] for r in rows}
    }
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_evaluate_matches_independent_implementation(seed: int) -> None:
    table = validate_hypotheses(make_table(120, seed=seed))
    rng = np.random.default_rng(seed)
    score = np.round(rng.random(len(table)), 1)  # many exact ties and bin-edge scores
    _assert_close(independent_evaluate(table, score), evaluate(table, score))


def test_domain_slices_follow_spec() -> None:
    table = validate_hypotheses(
        pd.DataFrame(
            {
                "utterance_id": ["u1", "u1", "u2"],
                "domain": ["Books", "Music", "Books"],
                "intent": ["B.Read", "M.Play", "B.Read"],
                "slots": ["", "", ""],
                "domain_score": [0.9, 0.5, 0.5],
                "intent_score": [1, 1, 1],
                "slot_score": [1, 1, 1],
                "ref_domain": ["Music", "Music", "Books"],
                "ref_intent": ["M.Play", "M.Play", "B.Read"],
                "ref_slots": ["", "", ""],
            }
        )
    )
    report = evaluate(table, [0.9, 0.5, 0.5])
    books, music = report["by_domain"]["Books"], report["by_domain"]["Music"]
    assert (books["n_hypotheses"], books["n_utterances"]) == (2, 1)
    assert (music["n_hypotheses"], music["n_utterances"]) == (1, 1)
    # Music's one request (u1) is served by Books' wrong hypothesis at the top
    assert music["top1_ie"] == 1.0 and books["top1_ie"] == 0.0
    assert set(report) >= set(METRIC_KEYS) | {"by_domain", "by_device"}


def test_evaluate_bootstrap_intervals_bracket_estimates() -> None:
    table = validate_hypotheses(make_table(200, seed=4))
    report = evaluate(table, r0_score(table), n_boot=100)
    for key, (low, high) in report["intervals"].items():
        assert low <= report[key] + 1e-12 and report[key] <= high + 1e-12, key


def test_population_top1_uses_top_hypotheses_only() -> None:
    table = validate_hypotheses(make_table(80, seed=5))
    report = evaluate(table, r0_score(table), population="top1")
    assert report["ece"] == pytest.approx(report["ece_top1"])


def test_evaluate_needs_references() -> None:
    table = validate_hypotheses(make_table(5, refs=False))
    with pytest.raises(DataError, match="reference columns"):
        evaluate(table, r0_score(table))


def test_score_table_rejects_wrong_length(tmp_path: Path) -> None:
    table = validate_hypotheses(make_table(5))
    with pytest.raises(DataError, match="scores for"):
        score_table(table, [0.5])


def test_evaluate_intervals_do_not_depend_on_row_order() -> None:
    # Each utterance's resample weights come from its id, so shuffling the rows (as any
    # partitioning of the data does) changes no interval.
    table = validate_hypotheses(make_table(150, seed=6))
    shuffled = table.sample(frac=1.0, random_state=3).reset_index(drop=True)
    a = evaluate(table, r0_score(table), n_boot=60, seed=2)
    b = evaluate(shuffled, r0_score(shuffled), n_boot=60, seed=2)
    for key, (low, high) in a["intervals"].items():
        assert b["intervals"][key] == pytest.approx([low, high], abs=1e-12), key
