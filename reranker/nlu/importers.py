"""Importers from the upstream formats of HWU64, SLURP and SNIPS to the annotated corpus.

The output format is docs/formats.md#annotated-corpus.

The project ships these corpora already converted (``reranker/data/corpora``); the importers let a
user convert a fresh download of the originals:

- **SLURP** (github.com/pswietojanski/slurp, ``dataset/slurp/{train,devel,test}.jsonl``): one
  JSON object per line with ``slurp_id``, ``sentence``, ``sentence_annotation``, ``scenario``,
  ``action``. Domain = scenario, intent = ``scenario_action``.
- **HWU64** (github.com/xliuhw/NLU-Evaluation-Data, ``NLU-Data-Home-Domain-Annotated-All.csv``
  or the cross-validation folds): semicolon-separated with ``answerid``, ``scenario``,
  ``intent``, ``answer_annotation``. Domain = scenario, intent = ``scenario_intent``.
- **SNIPS** (github.com/sonos/nlu-benchmark, ``2017-06-custom-intent-engines``): JSON files
  ``{"<Intent>": [{"data": [{"text": "play "}, {"text": "x", "entity": "artist"}]}, ...]}``.
  Domain = the intent's group (:data:`SNIPS_DOMAINS`), intent = the SNIPS intent.

Each importer returns a validated corpus frame (:func:`reranker.nlu.corpus.validate_corpus`), so
an annotation whose brackets do not match its text is reported with file and line.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from reranker._files import decode_utf8, parse_json, read_file_bytes
from reranker.annotation import strip_annotation
from reranker.errors import DataError
from reranker.nlu.corpus import DomainMap, apply_domain_map, validate_corpus

__all__ = [
    "FORMATS",
    "SNIPS_DOMAINS",
    "import_corpus",
    "import_hwu64",
    "import_slurp",
    "import_snips",
]

FORMATS: tuple[str, ...] = ("slurp", "hwu64", "snips")

SNIPS_DOMAINS: dict[str, str] = {
    "AddToPlaylist": "music",
    "PlayMusic": "music",
    "BookRestaurant": "restaurant",
    "GetWeather": "weather",
    "RateBook": "books",
    "SearchCreativeWork": "creative_work",
    "SearchScreeningEvent": "movies",
}
"""The domain of each SNIPS intent."""


def _read_text(path: Path) -> str:
    return decode_utf8(path, read_file_bytes(path, what="corpus file"))


def import_slurp(path: str | os.PathLike[str], *, split: str | None = None) -> pd.DataFrame:
    """Import a SLURP ``{train,devel,test}.jsonl`` file (ids ``slurp-<split>-<slurp_id>``)."""
    p = Path(path)
    split = split or p.stem
    records: list[dict[str, object]] = []
    lines: list[int] = []
    for lineno, line in enumerate(_read_text(p).splitlines(), start=1):
        if not line.strip():
            continue
        doc = parse_json(line, source=p, line=lineno)
        if not isinstance(doc, dict):
            raise DataError(f"{p}: line {lineno}: expected a JSON object (not a SLURP file?)")
        missing = [
            k
            for k in ("slurp_id", "sentence", "sentence_annotation", "scenario", "action")
            if k not in doc
        ]
        if missing:
            raise DataError(
                f"{p}: line {lineno}, column {missing[0]!r}: missing value (not a SLURP file?)"
            )
        records.append(
            {
                "id": f"slurp-{split}-{doc['slurp_id']}",
                "text": doc["sentence"],
                "domain": doc["scenario"],
                "intent": f"{doc['scenario']}_{doc['action']}",
                "annotation": doc["sentence_annotation"],
            }
        )
        lines.append(lineno)
    return validate_corpus(records, source=str(p), lines=lines)


def import_hwu64(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Import an HWU64 semicolon-separated CSV (ids ``hwu-<answerid>``).

    Rows without an annotation are skipped; the text is the annotation without its brackets.
    """
    p = Path(path)
    text = _read_text(p)
    reader = csv.DictReader(io.StringIO(text), delimiter=";")
    needed = ("answerid", "scenario", "intent", "answer_annotation")
    if reader.fieldnames is None:
        raise DataError(f"{p}: corpus is empty")
    absent = [k for k in needed if k not in reader.fieldnames]
    if absent:
        raise DataError(f"{p}: missing column {absent[0]!r} (not an HWU64 CSV?)")
    records: list[dict[str, object]] = []
    lines: list[int] = []
    for k, row in enumerate(reader, start=2):
        annotation = " ".join((row.get("answer_annotation") or "").split())
        if not annotation:
            continue
        try:
            plain = strip_annotation(annotation)
        except DataError as e:
            raise DataError(f"{p}: line {k}, column 'answer_annotation': {e}") from e
        scenario, intent = (row.get("scenario") or "").strip(), (row.get("intent") or "").strip()
        records.append(
            {
                "id": f"hwu-{(row.get('answerid') or '').strip()}",
                "text": plain,
                "domain": scenario,
                "intent": f"{scenario}_{intent}"
                if intent and not intent.startswith(f"{scenario}_")
                else intent,
                "annotation": annotation,
            }
        )
        lines.append(k)
    return validate_corpus(records, source=str(p), lines=lines)


def _snips_annotation(chunks: Sequence[dict[str, str]]) -> str:
    pieces: list[str] = []
    for chunk in chunks:
        text = chunk["text"]
        value = text.strip()
        if chunk.get("entity") and value:
            lead = text[: len(text) - len(text.lstrip())]
            trail = text[len(text.rstrip()) :]
            pieces.append(f"{lead}[{chunk['entity']} : {value}]{trail}")
        else:
            pieces.append(text)
    return "".join(pieces)


def import_snips(paths: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """Import SNIPS benchmark JSON files (``train_<Intent>_full.json``, ``validate_<Intent>.json``).

    Ids are ``snips-<split>-<Intent>-<index>`` (split ``train`` or ``validate`` from the file
    name, else the file stem); the annotation wraps each entity chunk as
    ``[entity : text]``. Errors name the file, the intent and the utterance (1-based).
    """
    frames: list[pd.DataFrame] = []
    for path in paths:
        p = Path(path)
        doc = parse_json(_read_text(p), source=p)
        if not isinstance(doc, dict) or not doc:
            raise DataError(f"{p}: expected an object mapping a SNIPS intent to its utterances")
        split = next((s for s in ("train", "validate") if p.stem.startswith(s)), p.stem)
        for intent, utterances in doc.items():
            if intent not in SNIPS_DOMAINS:
                raise DataError(f"{p}: unknown SNIPS intent {intent!r}")
            if not isinstance(utterances, list) or not utterances:
                raise DataError(f"{p}: intent {intent!r}: expected a non-empty list of utterances")
            records: list[dict[str, object]] = []
            for k, utterance in enumerate(utterances):
                chunks = utterance.get("data") if isinstance(utterance, dict) else None
                if not isinstance(chunks, list) or not all(
                    isinstance(c, dict) and isinstance(c.get("text"), str) for c in chunks
                ):
                    raise DataError(
                        f"{p}: intent {intent!r}, utterance {k + 1}: expected "
                        "{'data': [{'text': ..., 'entity': ...}, ...]}"
                    )
                records.append(
                    {
                        "id": f"snips-{split}-{intent}-{k}",
                        "text": "".join(c["text"] for c in chunks),
                        "domain": SNIPS_DOMAINS[intent],
                        "intent": intent,
                        "annotation": _snips_annotation(chunks),
                    }
                )
            frames.append(
                validate_corpus(records, source=f"{p}: intent {intent!r}", unit="utterance")
            )
    if not frames:
        raise DataError("no SNIPS file given")
    frame = pd.concat(frames, ignore_index=True)
    dup = frame["id"].duplicated()
    if dup.any():
        raise DataError(
            f"id {frame['id'].to_numpy()[int(np.argmax(dup.to_numpy()))]!r} appears in more than one input file"
        )
    return frame


def import_corpus(
    fmt: str,
    paths: Sequence[str | os.PathLike[str]],
    *,
    domain_map: DomainMap | None = None,
) -> pd.DataFrame:
    """Import one or more upstream files of format ``fmt`` (``slurp``, ``hwu64`` or ``snips``)."""
    if fmt not in FORMATS:
        raise DataError(f"unknown corpus format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not paths:
        raise DataError("no input file given")
    if fmt == "snips":
        frame = import_snips(paths)
    else:
        reader = import_slurp if fmt == "slurp" else import_hwu64
        frames = [reader(p) for p in paths]
        frame = pd.concat(frames, ignore_index=True)
        dup = frame["id"].duplicated()
        if dup.any():
            raise DataError(
                f"id {frame['id'].to_numpy()[int(np.argmax(dup.to_numpy()))]!r} appears in more than one input file"
            )
    return apply_domain_map(frame, domain_map) if domain_map is not None else frame
