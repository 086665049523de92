"""Annotated corpora: reading, validation errors, domain maps, the shipped real corpora."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reranker.demo import default_domain_map, default_sources
from reranker.errors import DataError
from reranker.nlu import (
    DomainMap,
    apply_domain_map,
    read_corpora,
    read_corpus,
    read_domain_map,
    write_corpus,
)

SOURCES = default_sources()
MAP = default_domain_map()


def _jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


GOOD = {
    "id": "u1",
    "text": "play mary poppins",
    "domain": "Books",
    "intent": "Books.Read",
    "annotation": "play [title : mary poppins]",
}


def test_read_corpus_returns_validated_columns(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "c.jsonl",
        [
            GOOD,
            {
                "id": "u2",
                "text": "  tell me   a joke ",
                "domain": "General",
                "intent": "joke",
                "device": "echo_dot",
            },
        ],
    )
    frame = read_corpus(path)
    assert list(frame.columns[:6]) == ["id", "text", "domain", "intent", "annotation", "device"]
    assert frame["text"].tolist() == ["play mary poppins", "tell me a joke"]
    # No annotation: the text itself, no slots; no device: "".
    assert frame.loc[1, "annotation"] == "tell me a joke"
    assert frame["device"].tolist() == ["", "echo_dot"]
    assert frame["line"].tolist() == [1, 2]


def test_read_corpus_csv_same_as_jsonl(tmp_path: Path) -> None:
    import pandas as pd

    pd.DataFrame([GOOD]).to_csv(tmp_path / "c.csv", index=False)
    a = read_corpus(tmp_path / "c.csv")
    b = read_corpus(_jsonl(tmp_path / "c.jsonl", [GOOD]))
    assert a[["id", "text", "domain", "intent", "annotation"]].equals(
        b[["id", "text", "domain", "intent", "annotation"]]
    )


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("c.txt", json.dumps(GOOD), r"c\.txt: unknown corpus format '\.txt'"),
        ("c.json", json.dumps(GOOD), r"unknown corpus format '\.json'"),
        ("c.jsonl", "", r"c\.jsonl: corpus is empty"),
        ("c.jsonl", "\n  \n", r"corpus is empty"),
        ("c.jsonl", json.dumps(GOOD) + "\n{oops\n", r"line 2, column 2: invalid JSON"),
        ("c.jsonl", "[1, 2]\n", r"line 1: expected a JSON object"),
        (
            "c.jsonl",
            json.dumps({**GOOD, "text": "play mary popins"}),
            r"line 1, column 'annotation': brackets do not match the text: removing them gives 'play mary poppins' but text is 'play mary popins' \(first difference at character 14\)",
        ),
        (
            "c.jsonl",
            json.dumps({**GOOD, "annotation": "play [title : mary poppins"}),
            r"line 1, column 'annotation': unbalanced bracket",
        ),
        (
            "c.jsonl",
            json.dumps({**GOOD, "annotation": "play [mary poppins]"}),
            r"line 1, column 'annotation': slot \[mary poppins\] has no ' : '",
        ),
        (
            "c.jsonl",
            json.dumps({k: v for k, v in GOOD.items() if k != "intent"}),
            r"line 1, column 'intent': missing value",
        ),
        (
            "c.jsonl",
            json.dumps({**GOOD, "domain": "  "}),
            r"line 1, column 'domain': missing value",
        ),
        (
            "c.jsonl",
            json.dumps({**GOOD, "text": 3.5}),
            r"line 1, column 'text': expected text, got float",
        ),
        (
            "c.jsonl",
            json.dumps(GOOD) + "\n" + json.dumps(GOOD),
            r"line 2, column 'id': duplicated id 'u1' \(first on line 1\)",
        ),
    ],
)
def test_read_corpus_errors_are_one_line(
    tmp_path: Path, name: str, content: str, match: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=match) as info:
        read_corpus(path)
    assert "\n" not in str(info.value)


def test_read_corpus_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_corpus(tmp_path / "nope.jsonl")
    (tmp_path / "d.jsonl").mkdir()
    with pytest.raises(DataError, match="is a directory"):
        read_corpus(tmp_path / "d.jsonl")


def test_read_corpora_rejects_ids_repeated_across_files(tmp_path: Path) -> None:
    a = _jsonl(tmp_path / "a.jsonl", [GOOD])
    b = _jsonl(tmp_path / "b.jsonl", [GOOD])
    with pytest.raises(DataError, match=r"b\.jsonl: line 1, column 'id': id 'u1' also appears"):
        read_corpora([a, b])
    with pytest.raises(DataError, match="no corpus file"):
        read_corpora([])


def test_domain_map_splits_play_by_intent() -> None:
    domain_map = read_domain_map(MAP)
    cases = {
        ("play", "play_music"): "Music",
        ("play", "play_audiobook"): "Books",
        ("play", "play_podcasts"): "Podcasts",
        ("play", "play_radio"): "Radio",
        ("play", "play_game"): "Games",
        ("music", "music_query"): "Music",
        ("iot", "iot_coffee"): "SmartHome",
        ("unmapped", "x"): "unmapped",
    }
    for (domain, intent), product in cases.items():
        assert domain_map.product_domain(domain, intent) == product


def test_apply_domain_map_keeps_corpus_domain(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "c.jsonl",
        [
            {"id": "a", "text": "play jazz", "domain": "play", "intent": "play_music"},
            {"id": "b", "text": "play a game", "domain": "play", "intent": "play_game"},
        ],
    )
    frame = read_corpus(
        path, domain_map=DomainMap(intents={"play_music": "Music"}, domains={"play": "Play"})
    )
    assert frame["domain"].tolist() == ["Music", "Play"]
    assert frame["corpus_domain"].tolist() == ["play", "play"]
    assert apply_domain_map(frame, DomainMap()).equals(frame.assign(corpus_domain=frame["domain"]))


@pytest.mark.parametrize(
    ("content", "name", "match"),
    [
        ("{}", "m.json", "maps nothing"),
        ('{"domains": {"a": ""}}', "m.json", "non-empty product domain"),
        ('{"domain": {"a": "b"}}', "m.json", "unknown key 'domain'"),
        ("[1]", "m.json", "a domain map is a JSON object"),
        ("{", "m.json", "invalid JSON"),
        ('{"domains": {"a": "b"}}', "m.yaml", "unknown domain map format"),
    ],
)
def test_read_domain_map_errors(tmp_path: Path, content: str, name: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=match):
        read_domain_map(path)


def test_write_corpus_round_trips(tmp_path: Path) -> None:
    frame = read_corpus(
        _jsonl(tmp_path / "c.jsonl", [GOOD, {**GOOD, "id": "u2", "device": "fire_tv"}])
    )
    out = write_corpus(frame, tmp_path / "out.jsonl")
    again = read_corpus(out)
    cols = ["id", "text", "domain", "intent", "annotation", "device"]
    assert again[cols].equals(frame[cols])
    assert '"device"' not in out.read_text().splitlines()[0]


@pytest.mark.parametrize(
    ("name", "rows", "domains"),
    [("hwu64.jsonl", 8851, 18), ("slurp_devel.jsonl", 2033, 18), ("snips.jsonl", 14484, 6)],
)
def test_shipped_real_corpora_are_valid(name: str, rows: int, domains: int) -> None:
    frame = read_corpus(SOURCES / name)
    assert len(frame) == rows
    assert frame["domain"].nunique() == domains


def test_shipped_sources_carry_attribution() -> None:
    text = " ".join((SOURCES / "ATTRIBUTION.md").read_text().split())
    for line in [
        'HWU64: X. Liu, A. Eshghi, P. Swietojanski, V. Rieser, "Benchmarking Natural Language Understanding Services for building Conversational Agents", IWSDS 2019. CC BY 4.0.',
        'SLURP: E. Bastianelli, A. Vanzo, P. Swietojanski, V. Rieser, "SLURP: A Spoken Language Understanding Resource Package", EMNLP 2020. Text released under CC BY 4.0.',
        'SNIPS: A. Coucke et al., "Snips Voice Platform: an embedded Spoken Language Understanding system for private-by-design voice interfaces", 2018. CC0 1.0.',
    ]:
        assert line in text


def test_unlabelled_corpus_only_when_allowed(tmp_path: Path) -> None:
    from reranker.nlu.corpus import is_labelled

    path = _jsonl(
        tmp_path / "c.jsonl",
        [{"id": "a", "text": "play moana"}, {"id": "b", "text": "hi", "device": "fire_tv"}],
    )
    with pytest.raises(DataError, match="line 1, column 'domain': missing value"):
        read_corpus(path)
    frame = read_corpus(path, require_labels=False)
    assert not is_labelled(frame)
    assert frame["domain"].tolist() == ["", ""] and frame["annotation"].tolist() == ["", ""]
    mixed = _jsonl(tmp_path / "m.jsonl", [GOOD, {"id": "b", "text": "hi"}])
    with pytest.raises(DataError, match="line 2, column 'domain': missing value"):
        read_corpus(mixed, require_labels=False)
    assert is_labelled(read_corpus(_jsonl(tmp_path / "g.jsonl", [GOOD]), require_labels=False))
