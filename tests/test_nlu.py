"""Per-domain NLU: classifiers, CRF slot tagger, model store, n-best prediction."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pycrfsuite
import pytest
from sklearn.linear_model import LogisticRegression

from reranker.demo import default_sources
from reranker.errors import DataError, ModelError, TrainingError
from reranker.hypotheses import validate_hypotheses
from reranker.nlu import (
    DomainSettings,
    NluModels,
    default_settings,
    load_models,
    predict_corpus,
    read_corpus,
    train_models,
    validate_corpus,
)
from reranker.nlu.classifiers import TextFeaturizer, fit_text_classifier
from reranker.nlu.settings import settings_for
from reranker.nlu.tagger import bio_spans


@pytest.fixture(scope="module")
def corpus() -> pd.DataFrame:
    from reranker.demo import generate_media_corpus

    snips = read_corpus(default_sources() / "snips.jsonl")
    return generate_media_corpus(snips, 420, seed=3, prefix="t")


@pytest.fixture(scope="module")
def models(corpus: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> NluModels:
    return train_models(corpus, tmp_path_factory.mktemp("nlu") / "models")


def _corpus(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """(domain, intent, annotation) rows -> a validated corpus frame."""
    from reranker.annotation import strip_annotation

    return validate_corpus(
        [
            {"id": f"x{k}", "text": strip_annotation(a), "domain": d, "intent": i, "annotation": a}
            for k, (d, i, a) in enumerate(rows)
        ]
    )


def test_predict_is_a_valid_nbest_table(models: NluModels, corpus: pd.DataFrame) -> None:
    hyps = predict_corpus(models, corpus.head(60), nbest=5, domains=3, intents=2)
    table = validate_hypotheses(hyps)
    assert {"ref_domain", "ref_intent", "ref_slots"} <= set(table.columns)
    assert (
        table["device"] == corpus.set_index("id").loc[table["utterance_id"], "device"].to_numpy()
    ).all()
    for _, group in table.groupby("utterance_id", sort=False):
        assert 1 <= len(group) <= 5
        assert group["domain"].nunique() <= 3
        assert group.groupby("domain").size().max() <= 2
        # Domains in order of decreasing domain score, intents by decreasing intent score.
        firsts = group.drop_duplicates("domain")["domain_score"].to_numpy()
        assert np.all(np.diff(firsts) <= 0)
        for _, dom in group.groupby("domain", sort=False):
            assert np.all(np.diff(dom["intent_score"].to_numpy()) <= 0)
            assert dom["slots"].nunique() == 1 and dom["slot_score"].nunique() == 1
    # Intents are the domain's own.
    for domain, intents in table.groupby("domain")["intent"].unique().items():
        assert set(intents) <= set(models.domains[domain].intents)


def test_top_domain_is_usually_right(models: NluModels, corpus: pd.DataFrame) -> None:
    texts = corpus["text"].tolist()
    top = models.domain_scores(texts).idxmax(axis=1).to_numpy()
    assert np.mean(top == corpus["domain"].to_numpy()) > 0.8


def test_domain_score_matches_sklearn_one_vs_all(models: NluModels, corpus: pd.DataFrame) -> None:
    name = "Weather"
    model = models.domains[name]
    s = model.settings
    rng = np.random.default_rng(s.seed)
    own = corpus["domain"].to_numpy() == name
    others = np.flatnonzero(~own)
    neg = np.sort(
        rng.choice(others, size=max(1, round(s.negative_fraction * others.size)), replace=False)
    )
    rows = np.sort(np.concatenate([np.flatnonzero(own), neg]))
    texts = corpus["text"].to_numpy()[rows].tolist()
    feat = TextFeaturizer.fit(
        texts, word_ngrams=s.word_ngrams, char_ngrams=s.char_ngrams, min_df=s.min_df
    )
    reference = LogisticRegression(
        C=s.domain_c,
        max_iter=2000,
        class_weight="balanced" if s.domain_class_weight == "balanced" else None,
    ).fit(feat.transform(texts), own[rows].astype(int))
    probe = corpus["text"].tolist()[:50]
    expected = reference.predict_proba(feat.transform(probe))[:, 1]
    np.testing.assert_allclose(model.domain_classifier.predict_proba(probe), expected, atol=1e-9)


def test_slot_score_is_the_crf_sequence_probability(models: NluModels) -> None:
    model = models.domains["Music"]
    text = "play purple rain"
    tagging = model.slot_tagger.tag(text)
    tagger = pycrfsuite.Tagger()
    tagger.open(str(model.slot_tagger.model_path))
    tagger.set(model.slot_tagger.features(text.split()))
    labels = tagger.labels()
    # Brute force over every tag sequence: probabilities sum to one; the tagging is the argmax.
    probs = {seq: tagger.probability(list(seq)) for seq in itertools.product(labels, repeat=3)}
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-9)
    best = max(probs, key=probs.__getitem__)
    assert tagging.tags == best
    assert tagging.probability == pytest.approx(probs[best], abs=1e-12)


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        (["O", "B-a", "I-a", "O"], [(1, 3, "a")]),
        (["B-a", "B-a"], [(0, 1, "a"), (1, 2, "a")]),
        (["I-a", "I-a", "I-b"], [(0, 2, "a"), (2, 3, "b")]),
        (["O", "O"], []),
    ],
)
def test_bio_spans(tags: list[str], spans: list[tuple[int, int, str]]) -> None:
    assert bio_spans(tags) == spans


def test_single_intent_and_slotless_domains_work(tmp_path: Path) -> None:
    rows = (
        [
            ("Weather", "Weather.Get", f"weather in [city : {c}]")
            for c in ("paris", "rome", "oslo", "lima")
        ]
        * 3
        + [("General", "General.Greet", t) for t in ("hello", "hi there", "good morning")] * 3
        + [("General", "General.Joke", t) for t in ("tell me a joke", "say something funny")] * 3
        + [("Timer", "Timer.Stop", t) for t in ("stop the timer", "cancel my timer")] * 3
    )
    models = train_models(_corpus(rows), tmp_path / "m")
    hyps = models.predict(
        ["hello there", "weather in rome", "stop timer"], nbest=9, domains=3, intents=3
    )
    timer = hyps[hyps["domain"] == "Timer"]
    assert (timer["intent_score"] == 1.0).all() and (timer["slot_score"] == 1.0).all()
    assert (timer["slots"] == timer["text"]).all()
    general = hyps[hyps["domain"] == "General"]
    assert (general["slot_score"] == 1.0).all() and general["intent"].nunique() == 2
    weather = hyps[(hyps["domain"] == "Weather") & (hyps["text"] == "weather in rome")]
    assert weather["slots"].tolist() == ["weather in [city : rome]"]
    assert (weather["intent_score"] == 1.0).all()
    assert not (tmp_path / "m" / "Timer" / "slot_tagger.crfsuite").exists()
    assert (
        load_models(tmp_path / "m").predict(["hello there"]).equals(models.predict(["hello there"]))
    )


def test_single_domain_corpus_is_refused(tmp_path: Path) -> None:
    corpus = _corpus([("Weather", "Weather.Get", "weather in [city : paris]")] * 1)
    with pytest.raises(DataError, match=r"single domain \('Weather'\).*at least two domains"):
        train_models(corpus, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_empty_corpus_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="corpus is empty"):
        validate_corpus([])
    with pytest.raises(DataError, match="corpus is empty"):
        train_models(
            pd.DataFrame(columns=["id", "text", "domain", "intent", "annotation"]), tmp_path / "m"
        )


def test_save_load_round_trip_is_exact(models: NluModels, corpus: pd.DataFrame) -> None:
    again = load_models(models.path)
    texts = corpus["text"].tolist()[:80]
    pd.testing.assert_frame_equal(again.predict(texts), models.predict(texts))


def test_model_files_hold_no_pickled_objects(models: NluModels) -> None:
    for path in models.path.rglob("*.npz"):
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                assert z[key].dtype != object


def test_settings_are_per_domain_and_recorded(models: NluModels) -> None:
    profiles = {d: m.settings.profile for d, m in models.domains.items()}
    assert len(set(profiles.values())) >= 3
    for name, model in models.domains.items():
        doc = json.loads((models.path / name / "settings.json").read_text())
        assert DomainSettings.from_dict(doc["settings"]) == model.settings == default_settings(name)
        assert doc["training"]["n_utterances"] > 0


def test_settings_overrides(corpus: pd.DataFrame, tmp_path: Path) -> None:
    assert (
        settings_for("Music", {"*": {"intent_c": 9.0}, "Music": {"profile": "cautious"}}).intent_c
        == 9.0
    )
    assert settings_for("Music", {"Music": {"profile": "cautious"}}).profile == "cautious"
    with pytest.raises(DataError, match="unknown setting 'bogus'"):
        settings_for("Music", {"Music": {"bogus": 1}})
    with pytest.raises(DataError, match="domain_c must be > 0"):
        DomainSettings(domain_c=0.0)
    with pytest.raises(DataError, match="settings name domain 'Nope'"):
        train_models(corpus, tmp_path / "m", settings={"Nope": {"domain_c": 1.0}})


def test_training_is_deterministic_serial_or_parallel(corpus: pd.DataFrame, tmp_path: Path) -> None:
    small = corpus[corpus["domain"].isin(["Weather", "General", "Shopping"])]
    a = train_models(small, tmp_path / "a")
    b = train_models(small, tmp_path / "b", jobs=2)
    for path in sorted(p.relative_to(a.path) for p in a.path.rglob("*") if p.is_file()):
        assert (a.path / path).read_bytes() == (b.path / path).read_bytes(), path


def _copy(models: NluModels, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(models.path, target)
    return target


def test_model_directory_of_another_version_is_refused(models: NluModels, tmp_path: Path) -> None:
    target = _copy(models, tmp_path)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["format_version"] = 99
    (target / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        ModelError, match="model format version 99, but this reranker reads version 1"
    ):
        load_models(target)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda p: (p / "manifest.json").unlink(), "no manifest.json"),
        (lambda p: (p / "manifest.json").write_text("{"), "invalid JSON"),
        (
            lambda p: (p / "manifest.json").write_text('{"format": "x"}'),
            "not an NLU model manifest",
        ),
        (lambda p: (p / "Music" / "intent_classifier.npz").unlink(), "missing classifier file"),
        (
            lambda p: (p / "Music" / "domain_classifier.npz").write_bytes(b"garbage"),
            "not a readable classifier",
        ),
        (lambda p: (p / "Music" / "slot_tagger.crfsuite").unlink(), "missing slot_tagger.crfsuite"),
        (
            lambda p: (p / "Music" / "slot_tagger.crfsuite").write_bytes(b"garbage"),
            "not a readable CRF model",
        ),
        (lambda p: (p / "Music" / "settings.json").write_text("{}"), "malformed settings"),
        (
            lambda p: np.savez(
                p / "Music" / "domain_classifier.npz",
                **{
                    **dict(np.load(p / "Video" / "domain_classifier.npz")),
                    "coef": np.zeros((1, 3)),
                },
            ),
            "inconsistent classifier arrays",
        ),
        (
            lambda p: shutil.copyfile(
                p / "Video" / "domain_classifier.npz", p / "Music" / "domain_classifier.npz"
            ),
            "not the one-vs-all classifier of 'Music'",
        ),
    ],
)
def test_damaged_model_directory_is_refused(
    models: NluModels, tmp_path: Path, damage, match: str
) -> None:  # type: ignore[no-untyped-def]
    target = _copy(models, tmp_path)
    damage(target)
    with pytest.raises(ModelError, match=match) as info:
        load_models(target)
    assert "\n" not in str(info.value)


def test_load_models_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such model directory"):
        load_models(tmp_path / "nothing")


def test_predict_bad_arguments(models: NluModels) -> None:
    with pytest.raises(DataError, match="text is empty"):
        models.predict(["play x", "  "])
    with pytest.raises(DataError, match="nbest must be >= 1"):
        models.predict(["play x"], nbest=0)
    with pytest.raises(DataError, match="2 devices for 1 texts"):
        models.predict(["play x"], devices=["a", "b"])
    assert models.predict([]).empty
    assert models.predict(["play x"], devices="fire_tv")["device"].eq("fire_tv").all()
    assert models.predict(["play x"])["device"].eq("unknown").all()


def test_fit_text_classifier_constant_and_two_classes() -> None:
    constant = fit_text_classifier(
        ["a b", "a c"], ["X", "X"], c=1.0, word_ngrams=1, char_ngrams=(0, 0)
    )
    assert constant.kind == "constant"
    np.testing.assert_array_equal(constant.predict_proba(["zzz"]), [[1.0]])
    texts = ["play jazz", "play rock", "stop it", "stop now"] * 3
    labels = ["P", "P", "S", "S"] * 3
    two = fit_text_classifier(texts, labels, c=5.0, word_ngrams=1, char_ngrams=(0, 0))
    reference = LogisticRegression(C=5.0, max_iter=2000).fit(
        two.featurizer.transform(texts), labels
    )
    np.testing.assert_allclose(
        two.predict_proba(["play now"]),
        reference.predict_proba(two.featurizer.transform(["play now"])),
        atol=1e-9,
    )
    with pytest.raises(TrainingError, match="needs both"):
        fit_text_classifier(["a"], ["X"], c=1.0, word_ngrams=1, char_ngrams=(0, 0), positive="X")


def test_a_failing_domain_is_named(corpus: pd.DataFrame, tmp_path: Path) -> None:
    small = corpus[corpus["domain"].isin(["Weather", "General"])]
    with pytest.raises(TrainingError, match="domain 'General': no text features"):
        train_models(
            small, tmp_path / "m", settings={"General": {"min_df": 100000, "char_ngrams": [0, 0]}}
        )
    assert not (tmp_path / "m").exists()
    assert not list(tmp_path.iterdir())  # the staging directory is removed too
