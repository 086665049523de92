"""The dashboard's analysis layer (reranker.views), checked against slow obvious references."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from reranker import views
from reranker.bootstrap import bootstrap_interval, poisson_weights, utterance_keys
from reranker.calibration import (
    brier_loss,
    expected_calibration_error,
    maximum_calibration_error,
    reliability_curve,
    smooth_ece,
)
from reranker.errors import DataError, WeightsError
from reranker.evaluation import evaluate
from reranker.features import default_feature_names
from reranker.hypotheses import read_hypotheses, validate_hypotheses
from reranker.ranking import r0_score, rank_within_utterance, top1_indices, utterance_codes
from reranker.registry import WeightsRegistry, score_with_registry
from tests.conftest import CONFORMANCE, make_table


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return read_hypotheses(CONFORMANCE / "hypotheses.csv")


@pytest.fixture(scope="module")
def prepared(table: pd.DataFrame) -> views.PreparedTable:
    return views.prepare(table)


def _document(domain: str, devices: list[str], seed: int, *, loss: str = "r2") -> dict:
    rng = np.random.default_rng(seed)
    names = default_feature_names(devices)
    return {
        "domain": domain,
        "loss": loss,
        "version": None,
        "features": names,
        "weights": [float(x) for x in rng.normal(0, 1, len(names))],
        "bias": float(rng.normal()),
        "trained_at": "2026-01-01T00:00:00+00:00",
        "training_data": {"sha256": "0" * 64, "n_utterances": 1, "n_hypotheses": 1},
        "metrics": {"converged": True, "n_iter": 3, "objective": 0.5},
        "options": {"l2": 0.001},
    }


# ---------------------------------------------------------------------------- datasets


def _write_dataset(root: Path, key: str, *, meta: dict | None, splits: list[str]) -> None:
    d = root / key
    (d / "hypotheses").mkdir(parents=True)
    for split in splits:
        shutil.copy(CONFORMANCE / "hypotheses.csv", d / "hypotheses" / f"{split}.csv")
    if meta is not None:
        (d / "dataset.json").write_text(json.dumps(meta))


def test_discover_datasets_reads_the_demo_layout(tmp_path: Path) -> None:
    _write_dataset(
        tmp_path,
        "media",
        meta={"name": "Media demo", "description": "films", "devices": "simulated"},
        splits=["train", "dev", "test"],
    )
    (tmp_path / "media" / "weights" / "r2").mkdir(parents=True)
    (tmp_path / "media" / "models").mkdir()
    (tmp_path / "sample").mkdir()
    shutil.copy(CONFORMANCE / "hypotheses.csv", tmp_path / "sample" / "hypotheses.csv")
    (tmp_path / "sources").mkdir()  # not a dataset
    found = views.discover_datasets(tmp_path)
    assert [d.key for d in found] == ["media", "sample"]
    media, sample = found
    assert media.name == "Media demo" and media.devices_simulated
    assert list(media.splits) == ["test", "dev", "train"]
    assert media.default_split == "test"
    assert set(media.weights) == {"r2"} and media.models == tmp_path / "media" / "models"
    assert sample.name == "Sample" and not sample.devices_simulated
    assert sample.splits == {"all": tmp_path / "sample" / "hypotheses.csv"}
    assert sample.default_split == "all" and sample.weights == {} and sample.models is None


def test_discover_datasets_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert views.discover_datasets(tmp_path / "nope") == []


def test_registry_fingerprint_changes_on_publish_and_rollback(tmp_path: Path) -> None:
    reg = WeightsRegistry(tmp_path / "w")
    reg.publish("Music", _document("Music", ["a"], 0))
    first = views.registry_fingerprint(reg.path)
    assert views.registry_fingerprint(reg.path) == first
    reg.publish("Music", _document("Music", ["a"], 1))
    second = views.registry_fingerprint(reg.path)
    assert second != first
    reg.rollback("Music")
    assert views.registry_fingerprint(reg.path) not in (second,)
    assert views.registry_fingerprint(None) == "r0"


# ---------------------------------------------------------------------------- utterances


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
    prep = views.prepare(table)
    rng = np.random.default_rng(seed)
    score = rng.random(len(table)).round(2)  # ties exercise the tie-break
    scored = views.scored_view(prep, score)
    utt = views.utterance_table(scored, r0=views.scored_view(prep))
    facts = _slow_utterance_facts(table, score, prep.correct)
    assert list(utt["utterance_id"]) == list(dict.fromkeys(table["utterance_id"]))
    for _, row in utt.iterrows():
        top, misranked, best = facts[row["utterance_id"]]
        assert row["top_domain"] == table.at[top, "domain"]
        assert row["top_semer"] == pytest.approx(prep.semer[top])
        assert row["misranked"] == misranked
        assert row["correct_rank"] == best
        assert row["n_hypotheses"] == (table["utterance_id"] == row["utterance_id"]).sum()


def test_scored_view_ranks_like_the_ranking_module() -> None:
    table = validate_hypotheses(make_table(200, 5)).sample(frac=1.0, random_state=1)
    prep = views.prepare(table.reset_index(drop=True))
    score = np.random.default_rng(2).integers(0, 4, len(table)) / 4  # many exact ties
    scored = views.scored_view(prep, score)
    codes = utterance_codes(prep.frame["utterance_id"])
    dscore = prep.frame["domain_score"].to_numpy()
    np.testing.assert_array_equal(scored.rank, rank_within_utterance(codes, score, dscore))
    np.testing.assert_array_equal(scored.top, top1_indices(codes, score, dscore))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        views.scored_view(prep, score + 2)


def test_filter_utterances_combines_filters(prepared: views.PreparedTable) -> None:
    scored = views.scored_view(prepared)
    utt = views.utterance_table(scored)
    out, count = views.filter_utterances(
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
    assert views.filter_utterances(table, search="(mary)")[1] == 1
    assert views.filter_utterances(table, search=".*")[1] == 0
    assert views.filter_utterances(table, search="PLAY")[1] == 2
    assert views.filter_utterances(table, search="  ")[1] == 3
    with pytest.raises(DataError, match="needs references"):
        views.filter_utterances(table, misranked_only=True)


def test_filter_utterances_semer_range_sort_and_limit(prepared: views.PreparedTable) -> None:
    utt = views.utterance_table(views.scored_view(prepared))
    out, count = views.filter_utterances(
        utt, semer_range=(0.5, math.inf), sort_by="top_score", descending=True, limit=7
    )
    assert count == int((utt["top_semer"] >= 0.5).sum())
    assert len(out) == min(7, count)
    assert (out["top_semer"] >= 0.5).all()
    assert list(out["top_score"]) == sorted(out["top_score"], reverse=True)
    with pytest.raises(DataError, match="unknown column"):
        views.filter_utterances(utt, sort_by="nope")


def test_utterance_detail_lists_the_nbest_by_rank(prepared: views.PreparedTable) -> None:
    scored = views.scored_view(prepared, 1.0 - r0_score(prepared.frame))
    r0 = views.scored_view(prepared)
    detail = views.utterance_detail(prepared, scored, "u0", r0=r0)
    rows = np.flatnonzero(prepared.frame["utterance_id"] == "u0")
    assert sorted(detail["row"]) == list(rows)
    assert list(detail["rank"]) == list(range(1, rows.size + 1))
    assert detail["score"].is_monotonic_decreasing
    assert list(detail["r0_rank"]) == list(r0.rank[detail["row"]])
    with pytest.raises(DataError, match="no utterance"):
        views.utterance_detail(prepared, scored, "missing")


def test_rows_of_groups_rows_by_utterance(table: pd.DataFrame) -> None:
    shuffled = table.sample(frac=1.0, random_state=0).reset_index(drop=True)
    prep = views.prepare(shuffled)
    for uid in ["u0", "u5", "u299"]:
        expected = np.flatnonzero(shuffled["utterance_id"] == uid)
        np.testing.assert_array_equal(prep.rows_of(uid), expected)
    with pytest.raises(DataError, match="no utterance"):
        prep.rows_of("nope")


def test_alignment_frame_shows_the_spec_example() -> None:
    frame = views.alignment_frame(
        "Video", "PlayVideo", "play [video_name : moana]", "Books", "ReadBook",
        "play [book_name : moana]",
    )  # fmt: skip
    assert list(frame["operation"]) == ["substitution", "substitution"]
    assert list(frame["reference"]) == ["Video.PlayVideo", "video_name=moana"]
    partial = views.alignment_frame("V", "V.Play", "[a : x] [b : y]", "V", "V.Play", "[a : X]")
    assert list(partial["operation"]) == ["match", "match", "deletion"]
    assert partial["hypothesis"].iloc[-1] == ""


# ---------------------------------------------------------------------------- weights


def test_contributions_and_rescore_agree_with_the_registry(
    tmp_path: Path, table: pd.DataFrame
) -> None:
    devices = sorted(table["device"].unique())
    docs = {d: _document(d, devices, k) for k, d in enumerate(["Music", "Video"])}
    reg = WeightsRegistry(tmp_path / "w")
    for d, doc in docs.items():
        reg.publish(d, doc)
    expected = score_with_registry(table, reg.path).score
    current = {d: reg.load(d) for d in docs}
    for uid in ["u0", "u1", "u7", "u42"]:
        rows = table[table["utterance_id"] == uid].reset_index(drop=True)
        idx = np.flatnonzero(table["utterance_id"] == uid)
        contrib = views.hypothesis_contributions(rows, current)
        for h, part in contrib.groupby("hypothesis"):
            assert expit(part["contribution"].sum()) == pytest.approx(expected[idx[h]], rel=1e-12)
            assert (part["contribution"] == part["value"] * part["weight"]).all()
        rescored = views.rescore_utterance(rows, current)
        by_key = rescored.set_index(["domain", "intent", "slots"])["score"]
        for h in range(len(rows)):
            key = tuple(rows.loc[h, ["domain", "intent", "slots"]])
            assert by_key.loc[key] == pytest.approx(expected[idx[h]], rel=1e-12)
        assert list(rescored["rank"]) == list(range(1, len(rows) + 1))
        assert set(rescored.loc[~rescored["domain"].isin(docs), "scored_by"]) <= {"r0"}


def test_rescore_changes_the_ranking_when_a_bias_is_raised(table: pd.DataFrame) -> None:
    devices = sorted(table["device"].unique())
    rows = table[table["utterance_id"] == "u1"].reset_index(drop=True)
    domains = sorted(rows["domain"].unique())
    assert len(domains) >= 2
    docs = {d: _document(d, devices, 3) for d in domains}
    loser = views.rescore_utterance(rows, docs)["domain"].iloc[-1]
    docs[loser] = {**docs[loser], "bias": 50.0}
    assert views.rescore_utterance(rows, docs)["domain"].iloc[0] == loser


def test_malformed_document_is_a_weights_error(table: pd.DataFrame) -> None:
    rows = table[table["utterance_id"] == "u0"]
    doc = _document(rows["domain"].iloc[0], ["echo_dot"], 0)
    doc["weights"] = doc["weights"][:-1]
    with pytest.raises(WeightsError, match="features but"):
        views.rescore_utterance(rows, {doc["domain"]: doc})


def test_device_weights_reads_the_device_features() -> None:
    doc = _document("Video", ["echo_dot", "fire_tv"], 0)
    frame = views.device_weights({"Video": doc})
    assert list(frame["device"]) == ["echo_dot", "fire_tv"]
    names = doc["features"]
    assert list(frame["weight"]) == [
        doc["weights"][names.index("device=echo_dot")],
        doc["weights"][names.index("device=fire_tv")],
    ]


def test_registry_table_and_compare_documents(tmp_path: Path) -> None:
    reg = WeightsRegistry(tmp_path / "w")
    reg.publish("Music", _document("Music", ["a"], 0))
    reg.publish("Music", _document("Music", ["a", "b"], 1))
    reg.publish("Books", _document("Books", ["a"], 2))
    overview = views.registry_table(reg.path)
    assert list(overview["domain"]) == ["Books", "Music"]
    assert list(overview["current"]) == [1, 2]
    assert overview.loc[1, "versions"] == "v1, v2"
    weights, facts = views.compare_documents(reg.load("Music", 1), reg.load("Music", 2))
    assert weights["feature"].iloc[-1] == "bias"
    assert np.isnan(weights.set_index("feature").loc["device=b", "a"])
    assert weights["change"].iloc[0] == pytest.approx(weights["b"].iloc[0] - weights["a"].iloc[0])
    assert facts.set_index("item").loc["version"].tolist() == ["1", "2"]


def test_top_domain_distribution_shares(prepared: views.PreparedTable) -> None:
    scored = views.scored_view(prepared)
    dist = views.top_domain_distribution(scored)
    assert dist.groupby("device")["share"].sum().to_numpy() == pytest.approx(1.0)
    assert dist["count"].sum() == prepared.n_utterances


def test_dataset_summary_counts_and_oracle(prepared: views.PreparedTable) -> None:
    s = views.dataset_summary(prepared)
    frame = prepared.frame
    assert s["n_utterances"] == frame["utterance_id"].nunique()
    assert s["n_hypotheses"] == len(frame)
    oracle = pd.Series(prepared.correct).groupby(frame["utterance_id"].to_numpy()).max().mean()
    assert s["oracle_accuracy"] == pytest.approx(oracle)


# ---------------------------------------------------------------------------- calibration


@pytest.mark.parametrize(
    ("domain", "device"), [(None, None), ("Video", None), (None, "fire_tv"), ("Music", None)]
)
def test_calibration_metrics_match_evaluate_slices(
    prepared: views.PreparedTable, domain: str | None, device: str | None
) -> None:
    score = r0_score(prepared.frame)
    scored = views.scored_view(prepared, score)
    report = evaluate(prepared.frame, score)
    expected = report
    if domain is not None:
        expected = report["by_domain"][domain]
    if device is not None:
        expected = report["by_device"][device]
    got = views.calibration_metrics(scored, domain=domain, device=device, smooth=False)
    for key in ("ece", "mce", "brier", "ece_top1", "top1_semer", "top1_ie"):
        assert got[key]["value"] == pytest.approx(expected[key], abs=1e-12), key
    assert got["n_utterances"]["value"] == expected["n_utterances"]
    assert got["n_hypotheses"]["value"] == expected["n_hypotheses"]


def test_calibration_metrics_top1_population(prepared: views.PreparedTable) -> None:
    scored = views.scored_view(prepared)
    report = evaluate(prepared.frame, scored.score, population="top1", n_bins=7)
    got = views.calibration_metrics(scored, population="top1", n_bins=7, smooth=False)
    for key in ("ece", "mce", "brier"):
        assert got[key]["value"] == pytest.approx(report[key], abs=1e-12)


def _slow_bootstrap(ids, y, s, n_boot, seed, metric):
    """Weight every row by its own utterance's Poisson count, one utterance id at a time."""
    out = []
    for b in range(n_boot):
        w = np.array(
            [poisson_weights(utterance_keys([u]), 1, seed=seed, start=b)[0, 0] for u in ids]
        )
        out.append(metric(y, s, w))
    return np.array(out)


def test_bootstrap_intervals_match_a_slow_reference(prepared: views.PreparedTable) -> None:
    scored = views.scored_view(prepared)
    n_boot, seed = 40, 3
    got = views.calibration_metrics(scored, n_boot=n_boot, seed=seed, confidence=0.8)
    y, s, _ = views.calibration_sample(scored)
    ids = scored.hypotheses["utterance_id"].to_numpy()
    refs = {
        "ece": lambda y, s, w: expected_calibration_error(y, s, sample_weight=w),
        "mce": lambda y, s, w: maximum_calibration_error(y, s, sample_weight=w),
        "brier": lambda y, s, w: brier_loss(y, s, sample_weight=w),
    }
    for key, fn in refs.items():
        values = _slow_bootstrap(ids, y, s, n_boot, seed, fn)
        lo, hi = bootstrap_interval(got[key]["value"], values, confidence=0.8)
        assert got[key]["low"] == pytest.approx(lo, abs=1e-12), key
        assert got[key]["high"] == pytest.approx(hi, abs=1e-12), key
        assert got[key]["low"] <= got[key]["value"] <= got[key]["high"]


def test_bootstrap_smooth_ece_is_close_to_the_exact_one() -> None:
    rng = np.random.default_rng(0)
    for bias in (0.0, 0.1, 0.25):
        s = rng.random(4000)
        y = (rng.random(4000) < np.clip(s - bias, 0, 1)).astype(float)
        exact = smooth_ece(y, s)
        grid = (np.arange(200) + 0.5) / 200
        fine = np.minimum((s * 200).astype(int), 199)
        resid = np.bincount(fine, weights=y - s, minlength=200) / s.size
        approx = views._smooth_ece_on_grid(resid[None, :], 200, 48)[0]
        assert grid.size == 200
        assert approx == pytest.approx(exact, rel=0.15, abs=0.004)


def test_smooth_calibration_value_and_interval(prepared: views.PreparedTable) -> None:
    scored = views.scored_view(prepared)
    got = views.smooth_calibration(scored, n_boot=40, seed=2)
    y, s, _ = views.calibration_sample(scored)
    assert got["value"] == pytest.approx(smooth_ece(y, s), abs=1e-12)
    assert got["low"] < got["high"]
    assert got["low"] <= got["value"] * 1.2 and got["high"] >= got["value"] * 0.8
    empty = views.smooth_calibration(scored, device="no such device", n_boot=10)
    assert empty == {"value": None, "low": None, "high": None}


def test_slice_curve_bands_match_a_slow_reference(prepared: views.PreparedTable) -> None:
    scored = views.scored_view(prepared)
    y, s, g = views.calibration_sample(scored)
    curve = views.slice_curve(y, s, g, n_boot=30, seed=1)
    plain = reliability_curve(y, s)
    np.testing.assert_allclose(curve.frac_correct, plain.frac_correct)
    np.testing.assert_array_equal(curve.count, plain.count)

    def frac_in_bins(y, s, w):
        idx = np.minimum((s * 10).astype(int), 9)
        c = np.bincount(idx, weights=w, minlength=10)
        sy = np.bincount(idx, weights=w * y, minlength=10)
        return np.where(c > 0, sy / np.where(c > 0, c, 1), np.nan)

    ids = scored.hypotheses["utterance_id"].to_numpy()
    fracs = _slow_bootstrap(ids, y, s, 30, 1, frac_in_bins)
    for k in np.flatnonzero(plain.count > 0):
        lo, hi = bootstrap_interval(plain.frac_correct[k], fracs[:, k], confidence=0.9)
        assert curve.low[k] == pytest.approx(lo) and curve.high[k] == pytest.approx(hi)
        assert curve.low[k] <= curve.frac_correct[k] <= curve.high[k]


def test_calibration_needs_references() -> None:
    table = validate_hypotheses(make_table(10, 0, refs=False))
    scored = views.scored_view(views.prepare(table))
    with pytest.raises(DataError, match="reference"):
        views.calibration_metrics(scored)
    with pytest.raises(DataError, match="population"):
        views.calibration_sample(
            views.scored_view(views.prepare(validate_hypotheses(make_table(5)))),
            population="half",  # type: ignore[arg-type]
        )


def test_recalibrate_keeps_rankings_and_improves_a_miscalibrated_score(
    prepared: views.PreparedTable,
) -> None:
    score = r0_score(prepared.frame) ** 3  # strongly under-confident
    scored = views.scored_view(prepared, score)
    for method in ("temperature", "isotonic"):
        calibrated = views.recalibrate(scored, method)  # type: ignore[arg-type]
        before = expected_calibration_error(scored.correct, scored.score)
        after = expected_calibration_error(calibrated.correct, calibrated.score)
        assert after < before
        if method == "temperature":
            np.testing.assert_array_equal(calibrated.top, scored.top)


def test_metrics_frame_flattens_intervals(prepared: views.PreparedTable) -> None:
    scored = views.scored_view(prepared)
    m = views.calibration_metrics(scored, n_boot=10, smooth=False)
    frame = views.metrics_frame({"r0": m})
    assert frame.loc[0, "loss"] == "R0"
    assert {"ece", "ece_low", "ece_high", "n_utterances"} <= set(frame.columns)
    assert frame.loc[0, "n_utterances"] == prepared.n_utterances


def test_safe_file_name() -> None:
    assert views.safe_file_name("media/R2 reliability: all data") == "media_R2_reliability_all_data"
    assert views.safe_file_name("///") == "data"
