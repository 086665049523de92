"""Bracket annotations of SLURP and MASSIVE: ``play [title : mary poppins] now``.

An annotation is the utterance text with each slot wrapped as ``[type : value]``. Removing the
brackets (keeping each value) gives the text back. Slot values are compared after lower-casing and
collapsing white space (docs/metrics.md#semer); slot types after stripping surrounding white space.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from reranker.errors import DataError

__all__ = [
    "Slot",
    "format_annotation",
    "normalize_value",
    "parse_annotation",
    "parse_slots",
    "strip_annotation",
]

Slot = tuple[str, str]
"""A slot as ``(type, value)``, both as written in the annotation (stripped)."""

_BRACKET = re.compile(r"\[([^\[\]]*)\]")


def normalize_value(value: str) -> str:
    """Lower-case ``value`` and collapse runs of white space to one space (strip the ends)."""
    return " ".join(value.lower().split())


def _parse(annotation: str) -> tuple[str, tuple[Slot, ...]]:
    slots: list[Slot] = []
    pieces: list[str] = []
    pos = 0
    for match in _BRACKET.finditer(annotation):
        outside = annotation[pos : match.start()]
        if "[" in outside or "]" in outside:
            raise DataError(f"unbalanced bracket in annotation {annotation!r}")
        body = match.group(1)
        if ":" not in body:
            raise DataError(f"slot [{body}] has no ' : ' between type and value in {annotation!r}")
        slot_type, value = body.split(":", 1)
        slot_type, value = slot_type.strip(), value.strip()
        if not slot_type:
            raise DataError(f"slot [{body}] has an empty type in {annotation!r}")
        if not value:
            raise DataError(f"slot [{body}] has an empty value in {annotation!r}")
        slots.append((slot_type, value))
        pieces.append(outside)
        pieces.append(value)
        pos = match.end()
    rest = annotation[pos:]
    if "[" in rest or "]" in rest:
        raise DataError(f"unbalanced bracket in annotation {annotation!r}")
    pieces.append(rest)
    return " ".join("".join(pieces).split()), tuple(slots)


def parse_annotation(annotation: str) -> tuple[str, tuple[Slot, ...]]:
    """Parse a bracket annotation into its plain text and its ordered slots.

    Parameters
    ----------
    annotation : str
        E.g. ``"play [album : x] by [artist : y]"``; ``""`` or text without brackets has no slots.

    Returns
    -------
    text : str
        The annotation with the brackets removed and white space collapsed (``"play x by y"``).
    slots : tuple of (type, value)
        In order of appearance (``(("album", "x"), ("artist", "y"))``).

    Raises
    ------
    DataError
        Unbalanced or nested brackets, a slot without ``:``, or an empty type or value.
    """
    if not isinstance(annotation, str):
        raise DataError(f"annotation must be a string, got {type(annotation).__name__}")
    return _parse(annotation)


def parse_slots(annotation: str) -> tuple[Slot, ...]:
    """The ordered slots of a bracket annotation (see :func:`parse_annotation`)."""
    return parse_annotation(annotation)[1]


def strip_annotation(annotation: str) -> str:
    """The plain text of a bracket annotation (see :func:`parse_annotation`)."""
    return parse_annotation(annotation)[0]


def format_annotation(text: str, spans: Sequence[tuple[int, int, str]]) -> str:
    """Wrap token spans of ``text`` as bracket slots.

    Parameters
    ----------
    text : str
        White-space tokenised text.
    spans : sequence of (start, end, type)
        Token index ranges ``[start, end)``, non-overlapping, each becoming ``[type : tokens]``.
    """
    tokens = text.split()
    out: list[str] = []
    i = 0
    for start, end, slot_type in sorted(spans):
        if start < i or end > len(tokens) or start >= end:
            raise DataError(f"bad slot span ({start}, {end}) for {len(tokens)} tokens")
        out.extend(tokens[i:start])
        out.append(f"[{slot_type} : {' '.join(tokens[start:end])}]")
        i = end
    out.extend(tokens[i:])
    return " ".join(out)


def tokens_and_tags(annotation: str) -> tuple[list[str], list[str]]:
    """White-space tokens of an annotation's text with BIO tags (``B-type``, ``I-type``, ``O``)."""
    tokens: list[str] = []
    tags: list[str] = []
    pos = 0
    for match in _BRACKET.finditer(annotation):
        for tok in annotation[pos : match.start()].split():
            tokens.append(tok)
            tags.append("O")
        body = match.group(1)
        if ":" not in body:
            raise DataError(f"slot [{body}] has no ' : ' between type and value in {annotation!r}")
        slot_type, value = (part.strip() for part in body.split(":", 1))
        for k, tok in enumerate(value.split()):
            tokens.append(tok)
            tags.append(("B-" if k == 0 else "I-") + slot_type)
        pos = match.end()
    for tok in annotation[pos:].split():
        tokens.append(tok)
        tags.append("O")
    return tokens, tags


def unique_slot_strings(values: Iterable[str]) -> dict[str, tuple[Slot, ...]]:
    """Parse each distinct annotation once; map annotation to its slots."""
    return {v: parse_slots(v) for v in set(values)}
