"""The demo builder: the media simulation, determinism, and the shipped demo_data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reranker.demo import (
    AMBIGUOUS_TITLES,
    DOMAIN_PRIOR,
    build_demo,
    default_sources,
    generate_media_corpus,
    media_catalogues,
)
from reranker.errors import DataError, ParameterError
from reranker.hypotheses import read_hypotheses
from reranker.nlu import load_models, read_corpus

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "demo_data"


@pytest.fixture(scope="module")
def snips() -> pd.DataFrame:
    return read_corpus(default_sources() / "snips.jsonl")


def test_media_catalogues_hold_real_titles(snips: pd.DataFrame) -> None:
    catalogues = media_catalogues(snips)
    for key in (
        "song_name",
        "album_name",
        "video_name",
        "book_name",
        "artist_name",
        "playlist",
        "city",
    ):
        assert len(catalogues[key]) > 100, key
        assert catalogues[key] == sorted(set(catalogues[key]))
        assert not set(catalogues[key]) & set(AMBIGUOUS_TITLES)


def test_media_corpus_is_deterministic_and_device_dependent(snips: pd.DataFrame) -> None:
    a = generate_media_corpus(snips, 3000, seed=5)
    b = generate_media_corpus(snips, 3000, seed=5)
    assert a.equals(b)
    assert not a.equals(generate_media_corpus(snips, 3000, seed=6))
    assert set(a["device"]) == {"echo_dot", "echo_show", "fire_tv"}
    share = pd.crosstab(a["device"], a["domain"], normalize="index")
    assert share.loc["fire_tv", "Video"] > 0.5 > 0.1 > share.loc["echo_dot", "Video"]
    assert share.loc["echo_dot", "Books"] > 5 * share.loc["fire_tv", "Books"]
    # The same ambiguous request has device-dependent domains.
    amb = a[a["text"].isin([f"play {t}" for t in AMBIGUOUS_TITLES])]
    video_share = amb.groupby("device")["domain"].apply(lambda s: float(np.mean(s == "Video")))
    assert video_share["fire_tv"] > 0.6 and video_share["echo_dot"] < 0.2
    for domain, prior in DOMAIN_PRIOR["fire_tv"].items():
        assert abs(share.loc["fire_tv", domain] - prior) < 0.06


def test_build_demo_small_is_byte_identical(tmp_path: Path) -> None:
    first = tmp_path / "a"
    build_demo(first, small=True, weights=True)
    build_demo(tmp_path / "b", small=True, weights=False)
    for dataset in ("media", "real"):
        root = first / dataset
        for sub in ("corpus", "hypotheses"):
            for path in sorted((root / sub).iterdir()):
                other = tmp_path / "b" / dataset / sub / path.name
                assert path.read_bytes() == other.read_bytes(), path
        for loss in ("r1", "r2", "r3"):
            assert sorted(p.name for p in (root / "weights" / loss).iterdir())
        info = json.loads((root / "dataset.json").read_text())
        assert info["devices"] == "simulated" and info["small"] is True
    assert (first / "sample" / "hypotheses.csv").read_bytes() == (
        tmp_path / "b" / "sample" / "hypotheses.csv"
    ).read_bytes()
    assert "CC BY 4.0" in (first / "ATTRIBUTION.md").read_text()


def test_build_demo_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown demo dataset 'films'"):
        build_demo(tmp_path, datasets=["films"])
    with pytest.raises(DataError, match=r"missing snips\.jsonl"):
        build_demo(tmp_path / "x", datasets=["media"], sources=tmp_path)
    with pytest.raises(ParameterError, match="scope must be 'domain' or 'utterance'"):
        build_demo(tmp_path / "y", scope="global")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        build_demo(tmp_path / "file")


@pytest.mark.parametrize("dataset", ["media", "real"])
def test_shipped_demo_data_layout(dataset: str) -> None:
    root = DEMO / dataset
    info = json.loads((root / "dataset.json").read_text())
    assert info["devices"] == "simulated" and info["name"]
    models = load_models(root / "models")
    assert models.domain_names == info["domains"]
    for split in ("train", "dev", "test"):
        corpus = read_corpus(root / "corpus" / f"{split}.jsonl")
        hyps = read_hypotheses(root / "hypotheses" / f"{split}.parquet")
        assert set(hyps["utterance_id"]) == set(corpus["id"])
        assert info["splits"][split] == {"utterances": len(corpus), "hypotheses": len(hyps)}
    for loss in ("r1", "r2", "r3"):
        from reranker.registry import WeightsRegistry

        registry = WeightsRegistry(root / "weights" / loss)
        assert sorted(registry.domains()) == sorted(models.domain_names)
        assert all(registry.load(d)["loss"] == loss for d in registry.domains())


def test_shipped_sample_is_the_start_of_the_real_test_split() -> None:
    sample = read_hypotheses(DEMO / "sample" / "hypotheses.csv")
    test = read_hypotheses(DEMO / "real" / "hypotheses" / "test.parquet")
    assert sample["utterance_id"].nunique() == 100
    head = test[test["utterance_id"].isin(set(sample["utterance_id"]))].reset_index(drop=True)
    pd.testing.assert_frame_equal(sample, head, check_exact=False, rtol=1e-12)


def test_shipped_real_demo_results_hold() -> None:
    """What the README claims of the real-corpus demo: the NLU's R0 top-1 IE is at most 0.43 on
    the test split, and the shipped R1 and R3 weights lower top-1 SemER against R0 with a 90%
    paired utterance-bootstrap interval below 0 (the README's 500 resamples)."""
    from reranker.compare import compare_scorings
    from reranker.evaluation import evaluate
    from reranker.ranking import r0_score
    from reranker.scoring import score_with_registry
    from reranker.tables import score_table

    test = read_hypotheses(DEMO / "real" / "hypotheses" / "test.parquet")
    r0 = r0_score(test)
    assert evaluate(score_table(test, r0), n_boot=0)["top1_ie"] <= 0.43
    for loss in ("r1", "r3"):
        scores = score_with_registry(test, DEMO / "real" / "weights" / loss).score
        semer = compare_scorings(test, r0, scores, n_boot=500).metrics.loc["top1_semer"]
        assert semer["difference"] < 0 and semer["high"] < 0, (loss, semer.to_dict())
