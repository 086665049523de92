"""Annotated corpora: reading, validating and mapping corpus domains to product domains.

The formats are those of docs/formats.md#annotated-corpus and docs/formats.md#domain-map.

An annotated corpus is JSONL (or CSV with the same columns), one utterance per line::

    {"id": "u1", "text": "play mary poppins", "domain": "Books", "intent": "Books.PlayAudiobook",
     "annotation": "play [title : mary poppins]", "device": "echo_dot"}

``annotation`` uses the bracket form ``[type : value]``; removing the brackets must give ``text``
(up to white space). ``device`` is optional; ``annotation`` may be omitted for an utterance
without slots. Every error names the file, the line and the column (field) at fault.

A *domain map* renames corpus domains to product domains, optionally per intent, e.g. SLURP's
``play`` scenario split into Music, Books, Podcasts, Radio and Games by intent::

    {"domains": {"play": "Play", "music": "Music"},
     "intents": {"play_music": "Music", "play_audiobook": "Books"}}

An intent entry wins over its domain's entry; unmapped domains keep their corpus name.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from reranker._files import (
    check_suffix,
    decode_utf8,
    json_object_lines,
    read_csv_text,
    read_file_bytes,
    read_json_file,
)
from reranker.annotation import parse_annotation
from reranker.errors import DataError

__all__ = [
    "CORPUS_COLUMNS",
    "CORPUS_SUFFIXES",
    "DomainMap",
    "apply_domain_map",
    "corpus_sha256",
    "is_labelled",
    "read_corpora",
    "read_corpus",
    "read_domain_map",
    "validate_corpus",
    "write_corpus",
]

CORPUS_COLUMNS: tuple[str, ...] = ("id", "text", "domain", "intent", "annotation", "device")
"""Columns of a validated corpus frame, in order (extra fields follow them)."""
_REQUIRED: tuple[str, ...] = ("id", "text", "domain", "intent")
CORPUS_SUFFIXES: tuple[str, ...] = (".jsonl", ".ndjson", ".csv")


def _suffix(path: Path) -> str:
    return check_suffix(
        path,
        CORPUS_SUFFIXES,
        what="corpus format",
        no_suffix="(no extension)",
        advice="use .jsonl (one JSON object per line) or .csv",
    )


def _records_jsonl(path: Path, text: str) -> tuple[list[dict[str, object]], list[int]]:
    numbered = list(json_object_lines(path, text))
    return [record for _, record in numbered], [lineno for lineno, _ in numbered]


def _records_csv(path: Path, text: str) -> tuple[list[dict[str, object]], list[int]]:
    frame = read_csv_text(path, text, empty="corpus is empty")
    records = frame.to_dict(orient="records")
    return [{str(k): v for k, v in r.items()} for r in records], list(range(2, len(records) + 2))


def read_corpus(
    path: str | os.PathLike[str],
    *,
    domain_map: DomainMap | None = None,
    require_labels: bool = True,
) -> pd.DataFrame:
    """Read and validate an annotated corpus file.

    Parameters
    ----------
    path : str or path-like
        A ``.jsonl`` (or ``.ndjson``) file with one JSON object per line, or a ``.csv`` file with
        the same columns.
    domain_map : DomainMap, optional
        Applied after validation (see :func:`apply_domain_map`).
    require_labels : bool
        With ``False``, a corpus whose lines all lack ``domain`` and ``intent`` (texts to
        predict, without references) is accepted; its ``domain``, ``intent`` and ``annotation``
        are ``""``. A corpus that labels some lines but not others is still an error.

    Returns
    -------
    pandas.DataFrame
        Columns ``id, text, domain, intent, annotation, device`` (``device`` is ``""`` where the
        corpus has none) followed by any extra fields, plus ``line`` (the source line number).
        ``text`` has its white space collapsed.

    Raises
    ------
    DataError
        Unknown format, unreadable or empty file, a missing or non-text field, a duplicated id,
        or an annotation whose brackets are malformed or do not match ``text``.
    """
    p = Path(path)
    suffix = _suffix(p)
    text = decode_utf8(p, read_file_bytes(p, what="corpus file"))
    if not text.strip():
        raise DataError(f"{p}: corpus is empty")
    reader = _records_csv if suffix == ".csv" else _records_jsonl
    records, lines = reader(p, text)
    frame = validate_corpus(records, source=str(p), lines=lines, require_labels=require_labels)
    if not is_labelled(frame):
        return frame
    return apply_domain_map(frame, domain_map) if domain_map is not None else frame


def _field(record: Mapping[str, object], name: str, where: str, *, required: bool) -> str:
    value = record.get(name)
    if value is None or (isinstance(value, float) and value != value):
        if required:
            raise DataError(f"{where}, column {name!r}: missing value")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DataError(f"{where}, column {name!r}: expected text, got {type(value).__name__}")
    out = str(value)
    if required and not out.strip():
        raise DataError(f"{where}, column {name!r}: missing value")
    return out


def _first_difference(a: str, b: str) -> int:
    for k, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return k + 1
    return min(len(a), len(b)) + 1


def validate_corpus(
    records: Sequence[Mapping[str, object]],
    *,
    source: str = "<corpus>",
    lines: Sequence[int] | None = None,
    unit: str = "line",
    require_labels: bool = True,
) -> pd.DataFrame:
    """Validate corpus records (dicts, as parsed from JSONL) and return the corpus frame.

    See :func:`read_corpus` for the columns and the rules; ``lines`` gives each record's line
    number for error messages (default: 1, 2, ...), ``unit`` what that number counts.
    """
    if not records:
        raise DataError(f"{source}: corpus is empty")
    if lines is None:
        lines = range(1, len(records) + 1)
    unlabelled = not require_labels and all(
        record.get("domain") in (None, "") and record.get("intent") in (None, "")
        for record in records
    )
    rows: list[dict[str, object]] = []
    seen: dict[str, int] = {}
    for record, lineno in zip(records, lines, strict=True):
        where = f"{source}: {unit} {lineno}"
        row = _corpus_row(record, where, unlabelled=unlabelled)
        uid = str(row["id"])
        if uid in seen:
            raise DataError(
                f"{where}, column 'id': duplicated id {uid!r} (first on {unit} {seen[uid]})"
            )
        seen[uid] = lineno
        row["line"] = lineno
        rows.append(row)
    frame = pd.DataFrame.from_records(rows)
    for column in CORPUS_COLUMNS:
        frame[column] = frame[column].astype(object)
    return frame


def _corpus_row(record: Mapping[str, object], where: str, *, unlabelled: bool) -> dict[str, object]:
    """One validated corpus row (extra fields kept, ``line`` left to the caller)."""
    uid = _field(record, "id", where, required=True).strip()
    text = " ".join(_field(record, "text", where, required=True).split())
    domain = _field(record, "domain", where, required=not unlabelled).strip()
    intent = _field(record, "intent", where, required=not unlabelled).strip()
    annotation = _field(record, "annotation", where, required=False)
    device = _field(record, "device", where, required=False).strip()
    if unlabelled:
        if annotation.strip():
            raise DataError(
                f"{where}, column 'annotation': an annotation without domain and intent"
            )
        annotation = ""
    elif not annotation.strip():
        annotation = text
    _check_brackets(annotation or text, text, where)
    row: dict[str, object] = {
        "id": uid,
        "text": text,
        "domain": domain,
        "intent": intent,
        "annotation": " ".join(annotation.split()),
        "device": device,
    }
    for key, value in record.items():
        if key not in row and key != "line":
            row[key] = value
    return row


def _check_brackets(annotation: str, text: str, where: str) -> None:
    """The annotation parses and, brackets removed, reads as the text."""
    try:
        plain, _ = parse_annotation(annotation)
    except DataError as e:
        raise DataError(f"{where}, column 'annotation': {e}") from e
    if plain != text:
        k = _first_difference(plain, text)
        raise DataError(
            f"{where}, column 'annotation': brackets do not match the text: removing them "
            f"gives {plain!r} but text is {text!r} (first difference at character {k})"
        )


def is_labelled(corpus: pd.DataFrame) -> bool:
    """Whether a corpus frame carries labels (domain, intent, annotation), i.e. references."""
    return bool(len(corpus)) and bool((corpus["domain"] != "").all())


def read_corpora(
    paths: Sequence[str | os.PathLike[str]], *, domain_map: DomainMap | None = None
) -> pd.DataFrame:
    """Read several corpus files into one frame (ids must be unique across files)."""
    if not paths:
        raise DataError("no corpus file given")
    frames = [read_corpus(p, domain_map=domain_map).assign(source=str(p)) for p in paths]
    frame = pd.concat(frames, ignore_index=True)
    dup = frame["id"].duplicated()
    if dup.any():
        row = frame[dup].iloc[0]
        raise DataError(
            f"{row['source']}: line {row['line']}, column 'id': id {row['id']!r} also appears in an earlier corpus file"
        )
    return frame


def write_corpus(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a corpus frame as JSONL (keys in :data:`CORPUS_COLUMNS` order, ``device`` if set).

    The output is deterministic (sorted extra keys, UTF-8, ``\\n`` line ends) and written
    atomically.
    """
    p = Path(path)
    extra = sorted(
        c for c in frame.columns if c not in CORPUS_COLUMNS and c not in ("line", "source")
    )
    out: list[str] = []
    for record in frame.to_dict(orient="records"):
        doc: dict[str, object] = {c: record[c] for c in CORPUS_COLUMNS if c != "device"}
        if record.get("device"):
            doc["device"] = record["device"]
        for c in extra:
            value = record[c]
            if value is not None and not (isinstance(value, float) and value != value):
                doc[c] = value
        out.append(json.dumps(doc, ensure_ascii=False, sort_keys=False))
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text("\n".join(out) + "\n", encoding="utf-8")
    os.replace(tmp, p)
    return p


def corpus_sha256(frame: pd.DataFrame) -> str:
    """A content hash of a corpus frame's required columns (ids, text, labels, annotation)."""
    h = hashlib.sha256()
    for row in frame[["id", "text", "domain", "intent", "annotation"]].itertuples(index=False):
        h.update("\x1f".join(map(str, row)).encode("utf-8"))
        h.update(b"\x1e")
    return h.hexdigest()


@dataclass(frozen=True)
class DomainMap:
    """Corpus domain (or intent) -> product domain.

    Attributes
    ----------
    domains : dict
        Corpus domain -> product domain.
    intents : dict
        Corpus intent -> product domain; wins over ``domains``.
    description : str
    """

    domains: Mapping[str, str] = field(default_factory=dict)
    intents: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    def product_domain(self, domain: str, intent: str) -> str:
        """The product domain of one utterance."""
        return self.intents.get(intent, self.domains.get(domain, domain))


def read_domain_map(path: str | os.PathLike[str]) -> DomainMap:
    """Read a domain map JSON file: ``{"domains": {...}, "intents": {...}, "description": ...}``."""
    p = Path(path)
    doc = read_json_file(p, what="domain map")
    if not isinstance(doc, dict):
        raise DataError(f"{p}: a domain map is a JSON object with 'domains' and/or 'intents'")
    unknown = set(doc) - {"domains", "intents", "description"}
    if unknown:
        raise DataError(
            f"{p}: unknown key {sorted(unknown)[0]!r} (expected domains, intents, description)"
        )
    parts: dict[str, dict[str, str]] = {}
    for key in ("domains", "intents"):
        table = doc.get(key, {})
        if not isinstance(table, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in table.items()
        ):
            raise DataError(f"{p}: {key!r} must map names to non-empty product domain names")
        parts[key] = {k: v.strip() for k, v in table.items()}
    if not parts["domains"] and not parts["intents"]:
        raise DataError(f"{p}: the domain map maps nothing")
    return DomainMap(parts["domains"], parts["intents"], str(doc.get("description", "")))


def apply_domain_map(corpus: pd.DataFrame, domain_map: DomainMap) -> pd.DataFrame:
    """Rename each utterance's domain to its product domain; the corpus domain is kept in
    ``corpus_domain``."""
    out = corpus.copy()
    out["corpus_domain"] = corpus["domain"]
    out["domain"] = [
        domain_map.product_domain(d, i)
        for d, i in zip(corpus["domain"], corpus["intent"], strict=True)
    ]
    return out
