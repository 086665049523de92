"""Gazetteers for the slot tagger: the slot values a domain saw in training, by slot type.

A gazetteer maps each slot value seen in a domain's training annotations (lower-cased, white space
collapsed) to the slot types it was annotated with. The CRF gets, for every token covered by a
known value of type ``t``, the feature ``gB=t`` (first token of the value) or ``gI=t`` (later
tokens): "this span was a ``date`` before". Overlapping matches all fire.

Features computed on the training sentences themselves would always fire on their own slots, so
the CRF would learn to trust the gazetteer blindly and fail on values it has never seen. Training
features are therefore **leave-one-out**: a value fires on training sentence ``k`` only if some
*other* training sentence annotated it with that type (:meth:`Gazetteer.features` with
``exclude``), as it would on new text.

Saved as JSON (``{"format", "max_tokens", "types": {type: [values]}}``), never pickled.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reranker._files import read_json_file
from reranker.annotation import normalize_value, tokens_and_tags
from reranker.errors import ModelError

__all__ = ["Gazetteer", "slot_values"]

_FORMAT = "reranker-gazetteer"
_MAX_TOKENS = 6
"""Longest value (in tokens) the gazetteer keeps."""


def slot_values(tokens: Sequence[str], tags: Sequence[str]) -> Counter[tuple[str, str]]:
    """``(normalised value, type)`` of each slot of a BIO-tagged sentence, with multiplicity."""
    out: Counter[tuple[str, str]] = Counter()
    start, current = -1, ""
    for i, tag in enumerate([*tags, "O"]):
        kind = tag[2:] if tag[:2] in ("B-", "I-") else ""
        continues = tag.startswith("I-") and kind == current
        if current and not continues:
            out[(normalize_value(" ".join(tokens[start:i])), current)] += 1
            current = ""
        if kind and not continues:
            start, current = i, kind
    return out


@dataclass(frozen=True)
class Gazetteer:
    """Slot values by type, with how many training sentences annotated each.

    Attributes
    ----------
    counts : mapping of (value, type) to int
        Training sentences in which ``value`` was annotated as ``type``.
    max_tokens : int
        Longest value, in tokens.
    """

    counts: Mapping[tuple[str, str], int]
    max_tokens: int = _MAX_TOKENS

    @classmethod
    def from_annotations(cls, annotations: Sequence[str]) -> Gazetteer:
        """Collect the slot values of bracket annotations (values longer than 6 tokens are left out)."""
        counts: Counter[tuple[str, str]] = Counter()
        for annotation in annotations:
            tokens, tags = tokens_and_tags(annotation)
            counts.update(set(slot_values(tokens, tags)))
        kept = {k: n for k, n in counts.items() if len(k[0].split()) <= _MAX_TOKENS}
        return cls(kept)

    def __len__(self) -> int:
        return len(self.counts)

    def _by_value(self) -> dict[str, list[str]]:
        cached: dict[str, list[str]] | None = getattr(self, "_index", None)
        if cached is None:
            cached = {}
            for value, slot_type in sorted(self.counts):
                cached.setdefault(value, []).append(slot_type)
            object.__setattr__(self, "_index", cached)
        return cached

    def features(
        self, tokens: Sequence[str], *, exclude: Mapping[tuple[str, str], int] | None = None
    ) -> list[list[str]]:
        """Gazetteer features of each token (``gB=type`` / ``gI=type``).

        Parameters
        ----------
        tokens : sequence of str
        exclude : mapping of (value, type) to int, optional
            A training sentence's own slot values (:func:`slot_values`): a value fires only if
            other sentences annotated it too.
        """
        index = self._by_value()
        lower = [normalize_value(t) for t in tokens]
        out: list[list[str]] = [[] for _ in tokens]
        n = len(lower)
        for a in range(n):
            for b in range(a + 1, min(n, a + self.max_tokens) + 1):
                value = " ".join(lower[a:b])
                for slot_type in index.get(value, ()):
                    if exclude and self.counts[(value, slot_type)] <= exclude.get(
                        (value, slot_type), 0
                    ):
                        continue
                    out[a].append(f"gB={slot_type}")
                    for i in range(a + 1, b):
                        out[i].append(f"gI={slot_type}")
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the gazetteer as JSON."""
        types: dict[str, dict[str, int]] = {}
        for (value, slot_type), n in sorted(self.counts.items()):
            types.setdefault(slot_type, {})[value] = int(n)
        doc = {"format": _FORMAT, "max_tokens": self.max_tokens, "types": types}
        Path(path).write_text(
            json.dumps(doc, indent=0, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Gazetteer:
        """Read a gazetteer written by :meth:`save`, checking its structure."""
        p = Path(path)
        if not os.path.lexists(p):
            raise ModelError(f"{p}: missing gazetteer file")
        doc = read_json_file(p, what="gazetteer file", error=ModelError)
        ok = (
            isinstance(doc, dict)
            and doc.get("format") == _FORMAT
            and isinstance(doc.get("max_tokens"), int)
            and doc["max_tokens"] >= 1
            and isinstance(doc.get("types"), dict)
            and all(
                isinstance(values, dict)
                and all(isinstance(v, str) and type(n) is int and n >= 1 for v, n in values.items())
                for values in doc["types"].values()
            )
        )
        if not ok:
            raise ModelError(f"{p}: not a gazetteer file (format {_FORMAT!r})")
        counts = {
            (value, str(slot_type)): n
            for slot_type, values in doc["types"].items()
            for value, n in values.items()
        }
        return cls(counts, int(doc["max_tokens"]))
