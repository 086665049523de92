"""Utterance tables, filters, n-best detail and alignments, checked against slow references."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reranker import tables, utterances
from reranker.errors import DataError
from reranker.hypotheses import read_hypotheses, validate_hypotheses
from reranker.ranking import r0_score
from tests.conftest import CONFORMANCE, make_table


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return read_hypotheses(CONFORMANCE / "hypotheses.csv")


@pytest.fixture(scope="module")
def prepared(table: pd.DataFrame) -> tables.PreparedTable:
    return tables.prepare(table)


def _slow_utterance_facts(table: pd.DataFrame, score: np.ndarray, correct: np.ndarray) -> dict:
    """Per utterance id: (top row, misranked, best correct rank) by sorting each group in Python."""
    out = {}
    for uid, group in table.groupby("utterance_id", sort=False):
        rows = list(group.index)
        rows.sort(key=lambda r: (-score[r], -table.at[r, "domain_score"], r))
        ranks = {r: k + 1 for k, r in enumerate(rows)}
        correct_ranks = [ranks[r] for r in rows if correct[r]]
        best = min(correct_ranks) if correct_ranks else 0
        out[uid] = (rows[0], bool(correct_ranks) and best > 1, best)
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_utterance_table_matches_a_slow_reference(seed: int) -> None:
    table = validate_hypotheses(make_table(80, seed))
    prep = tables.prepare(table)
    rng = np.random.default_rng(seed)
    score = rng.random(len(table)).round(2)  # ties exercise the tie-break
    scored = tables.scored_view(prep, score)
    utt = utterances.utterance_table(scored, r0=tables.scored_view(prep))
    facts = _slow_utterance_facts(table, score, prep.correct)
    assert list(utt["utterance_id"]) == list(dict.fromkeys(table["utterance_id"]))
    for _, row in utt.iterrows():
        top, misranked, best = facts[row["utterance_id"]]
        assert row["top_domain"] == table.at[top, "domain"]
        assert row["top_semer"] == pytest.approx(prep.semer[top])
        assert row["misranked"] == misranked
        assert row["correct_rank"] == best
        assert row["n_hypotheses"] == (table["utterance_id"] == row["utterance_id"]).sum()


def test_filter_utterances_combines_filters(prepared: tables.PreparedTable) -> None:
    scored = tables.scored_view(prepared)
    utt = utterances.utterance_table(scored)
    out, count = utterances.filter_utterances(
        utt, misranked_only=True, devices=["fire_tv"], domains=["Video", "Music"]
    )
    expected = utt[
        utt["misranked"]
        & (utt["device"] == "fire_tv")
        & utt["reference_domain"].isin(["Video", "Music"])
    ]
    assert count == len(expected) > 0
    assert list(out["utterance_id"]) == list(expected["utterance_id"])


def test_filter_utterances_search_is_literal_and_case_insensitive() -> None:
    table = pd.DataFrame(
        {
            "utterance_id": ["a", "b", "c"],
            "text": ["Play (Mary) Poppins", "play x", "stop"],
            "device": ["d"] * 3,
            "top_domain": ["Music"] * 3,
        }
    )
    assert utterances.filter_utterances(table, search="(mary)")[1] == 1
    assert utterances.filter_utterances(table, search=".*")[1] == 0
    assert utterances.filter_utterances(table, search="PLAY")[1] == 2
    assert utterances.filter_utterances(table, search="  ")[1] == 3
    with pytest.raises(DataError, match="needs references"):
        utterances.filter_utterances(table, misranked_only=True)


def test_filter_utterances_semer_range_sort_and_limit(prepared: tables.PreparedTable) -> None:
    utt = utterances.utterance_table(tables.scored_view(prepared))
    out, count = utterances.filter_utterances(
        utt, semer_range=(0.5, math.inf), sort_by="top_score", descending=True, limit=7
    )
    assert count == int((utt["top_semer"] >= 0.5).sum())
    assert len(out) == min(7, count)
    assert (out["top_semer"] >= 0.5).all()
    assert list(out["top_score"]) == sorted(out["top_score"], reverse=True)
    with pytest.raises(DataError, match="unknown column"):
        utterances.filter_utterances(utt, sort_by="nope")


def test_utterance_detail_lists_the_nbest_by_rank(prepared: tables.PreparedTable) -> None:
    scored = tables.scored_view(prepared, 1.0 - r0_score(prepared.frame))
    r0 = tables.scored_view(prepared)
    detail = utterances.utterance_detail(prepared, scored, "u0", r0=r0)
    rows = np.flatnonzero(prepared.frame["utterance_id"] == "u0")
    assert sorted(detail["row"]) == list(rows)
    assert list(detail["rank"]) == list(range(1, rows.size + 1))
    assert detail["score"].is_monotonic_decreasing
    assert list(detail["r0_rank"]) == list(r0.rank[detail["row"]])
    with pytest.raises(DataError, match="no utterance"):
        utterances.utterance_detail(prepared, scored, "missing")


def test_alignment_frame_shows_the_spec_example() -> None:
    frame = utterances.alignment_frame(
        "Video", "PlayVideo", "play [video_name : moana]", "Books", "ReadBook",
        "play [book_name : moana]",
    )  # fmt: skip
    assert list(frame["operation"]) == ["substitution", "substitution"]
    assert list(frame["reference"]) == ["Video.PlayVideo", "video_name=moana"]
    partial = utterances.alignment_frame("V", "V.Play", "[a : x] [b : y]", "V", "V.Play", "[a : X]")
    assert list(partial["operation"]) == ["match", "match", "deletion"]
    assert partial["hypothesis"].iloc[-1] == ""


def test_top_domain_distribution_shares(prepared: tables.PreparedTable) -> None:
    scored = tables.scored_view(prepared)
    dist = utterances.top_domain_distribution(scored)
    assert dist.groupby("device")["share"].sum().to_numpy() == pytest.approx(1.0)
    assert dist["count"].sum() == prepared.n_utterances
