"""Importers of the upstream SLURP, HWU64 and SNIPS formats."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reranker.annotation import parse_annotation
from reranker.demo import default_sources
from reranker.errors import DataError
from reranker.nlu import DomainMap, read_corpus
from reranker.nlu.importers import import_corpus, import_hwu64, import_slurp, import_snips

SLURP_LINES = [
    {"slurp_id": 13804, "sentence": "siri what is one american dollar in japanese yen", "sentence_annotation": "siri what is one [currency_name : american dollar] in [currency_name : japanese yen]", "intent": "qa_currency", "action": "currency", "scenario": "qa", "tokens": [], "recordings": []},
    {"slurp_id": 3843, "sentence": "order me chinese food", "sentence_annotation": "order me [food_type : chinese] food", "intent": "takeaway_order", "action": "order", "scenario": "takeaway"},
]  # fmt: skip

HWU_CSV = (
    "userid;answerid;scenario;intent;status;answer_annotation;notes;suggested_entities;answer_normalised;answer;question\n"
    "1;25968;alarm;query;;tell me time of alarm you set;;;tell me time of alarm you set;tell me time of alarm you set;q\n"
    "1;3022;alarm;query;;what alarms are set for [date : today];;;x;x;q\n"
    "2;77;play;music;IRR;;;;;;q\n"
    "2;78;play;play_music;;play [artist_name : abba] please;;;x;x;q\n"
)


def test_import_slurp(tmp_path: Path) -> None:
    path = tmp_path / "devel.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in SLURP_LINES))
    frame = import_slurp(path)
    shipped = read_corpus(default_sources() / "slurp_devel.jsonl").set_index("id")
    cols = ["text", "domain", "intent", "annotation"]
    assert frame.set_index("id")[cols].equals(shipped.loc[frame["id"], cols])


def test_import_hwu64(tmp_path: Path) -> None:
    path = tmp_path / "hwu.csv"
    path.write_text(HWU_CSV)
    frame = import_hwu64(path)
    assert frame["id"].tolist() == ["hwu-25968", "hwu-3022", "hwu-78"]
    assert frame["intent"].tolist() == ["alarm_query", "alarm_query", "play_music"]
    assert frame.loc[1, "text"] == "what alarms are set for today"
    assert frame["line"].tolist() == [2, 3, 5]
    mapped = import_corpus("hwu64", [path], domain_map=DomainMap(intents={"play_music": "Music"}))
    assert mapped["domain"].tolist() == ["alarm", "alarm", "Music"]


_BRACKET = re.compile(r"\[([^\[\]]*)\]")


def _to_snips_chunks(annotation: str) -> list[dict[str, str]]:
    chunks: list[dict[str, str]] = []
    pos = 0
    for match in _BRACKET.finditer(annotation):
        if match.start() > pos:
            chunks.append({"text": annotation[pos : match.start()]})
        slot_type, value = (x.strip() for x in match.group(1).split(":", 1))
        chunks.append({"text": value, "entity": slot_type})
        pos = match.end()
    if pos < len(annotation):
        chunks.append({"text": annotation[pos:]})
    return chunks


def test_import_snips_reproduces_the_shipped_conversion(tmp_path: Path) -> None:
    shipped = read_corpus(default_sources() / "snips.jsonl")
    sample = shipped.groupby("intent").head(40)
    doc: dict[str, list[dict[str, object]]] = {}
    for intent, annotation in zip(sample["intent"], sample["annotation"], strict=True):
        doc.setdefault(intent, []).append({"data": _to_snips_chunks(annotation)})
    path = tmp_path / "train_all.json"
    path.write_text(json.dumps(doc))
    frame = import_snips([path])
    assert len(frame) == len(sample)
    assert frame["text"].tolist() == sample["text"].tolist()
    assert frame["id"].tolist() == sample["id"].tolist()
    assert frame["domain"].tolist() == sample["domain"].tolist()
    assert [parse_annotation(a) for a in frame["annotation"]] == [
        parse_annotation(a) for a in sample["annotation"]
    ]


@pytest.mark.parametrize(
    ("fmt", "name", "content", "match"),
    [
        (
            "slurp",
            "devel.jsonl",
            '{"slurp_id": 1}\n',
            r"line 1, column 'sentence': missing value \(not a SLURP file\?\)",
        ),
        ("slurp", "devel.jsonl", "{oops\n", r"line 1, column 2: invalid JSON"),
        (
            "slurp",
            "devel.jsonl",
            json.dumps({**SLURP_LINES[1], "sentence": "order me thai food"}),
            r"devel\.jsonl: line 1, column 'annotation': brackets do not match the text",
        ),
        ("hwu64", "hwu.csv", "a;b\n1;2\n", r"missing column 'answerid' \(not an HWU64 CSV\?\)"),
        (
            "hwu64",
            "hwu.csv",
            HWU_CSV.replace("[date : today]", "[date : today"),
            r"hwu\.csv: line 3, column 'answer_annotation': unbalanced bracket",
        ),
        ("snips", "s.json", '{"Nope": []}', r"unknown SNIPS intent 'Nope'"),
        (
            "snips",
            "s.json",
            '{"PlayMusic": [{"data": "x"}]}',
            r"intent 'PlayMusic', utterance 1: expected",
        ),
        ("snips", "s.json", "[", r"invalid JSON"),
        ("excel", "x.xlsx", "", r"unknown corpus format 'excel'"),
    ],
)
def test_importer_errors(tmp_path: Path, fmt: str, name: str, content: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=match) as info:
        import_corpus(fmt, [path])
    assert "\n" not in str(info.value)


def test_cli_import_writes_a_corpus(tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import reranker_cli

    src = tmp_path / "devel.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in SLURP_LINES))
    out = tmp_path / "corpus.jsonl"
    result = subprocess.run(
        [*reranker_cli(), "nlu", "import", str(src), "--format", "slurp", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert read_corpus(out)["id"].tolist() == ["slurp-devel-13804", "slurp-devel-3843"]
