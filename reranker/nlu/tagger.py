"""CRF slot tagger (python-crfsuite): BIO tags over white-space tokens, with a real probability.

The tagger is a linear-chain CRF trained with L-BFGS and elastic-net regularisation (``c1``,
``c2``) on token features (the token, its lower-case form, prefixes and suffixes, shape, and its
neighbours within a window) and, optionally, gazetteer features: the slot values of the domain's
training annotations (:mod:`reranker.nlu.gazetteer`, leave-one-out on the training sentences). It is saved in crfsuite's own model file. The slot score of a
tagging is the CRF's probability of the whole Viterbi tag sequence,
:math:`p(y^* \\mid x) = \\exp(\\mathrm{score}(x, y^*)) / Z(x)` (crfsuite's ``probability``), a true
probability in [0, 1].

A domain whose training data has no slots gets no CRF: it tags every token ``O`` with probability 1.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pycrfsuite

from reranker.annotation import format_annotation, tokens_and_tags
from reranker.errors import ModelError, TrainingError
from reranker.nlu.gazetteer import Gazetteer, slot_values

__all__ = [
    "GAZETTEER_FILE",
    "SlotTagger",
    "Tagging",
    "bio_spans",
    "token_features",
    "train_slot_tagger",
]

_DIGIT = re.compile(r"\d")
GAZETTEER_FILE = "slot_gazetteer.json"
"""File of a tagger's gazetteer, beside its CRF model file."""


def _shape(token: str) -> str:
    shape = re.sub(r"[A-Z]", "X", token)
    shape = re.sub(r"[a-z]", "x", shape)
    shape = _DIGIT.sub("d", shape)
    return re.sub(r"(.)\1+", r"\1\1", shape)


def token_features(tokens: Sequence[str], *, window: int) -> list[list[str]]:
    """CRF features of each token: itself, affixes, shape and neighbours within ``window``."""
    lower = [t.lower() for t in tokens]
    n = len(tokens)
    out: list[list[str]] = []
    for i, tok in enumerate(tokens):
        w = lower[i]
        feats = [
            "bias",
            f"w={w}",
            f"p2={w[:2]}",
            f"p3={w[:3]}",
            f"s2={w[-2:]}",
            f"s3={w[-3:]}",
            f"shape={_shape(tok)}",
        ]
        if tok[:1].isupper():
            feats.append("title")
        if _DIGIT.search(tok):
            feats.append("digit")
        if i == 0:
            feats.append("BOS")
        if i == n - 1:
            feats.append("EOS")
        for k in range(1, window + 1):
            feats.append(f"w-{k}={lower[i - k]}" if i - k >= 0 else f"w-{k}=<s>")
            feats.append(f"w+{k}={lower[i + k]}" if i + k < n else f"w+{k}=</s>")
        if window >= 1:
            prev = lower[i - 1] if i > 0 else "<s>"
            nxt = lower[i + 1] if i + 1 < n else "</s>"
            feats.append(f"w-1|w={prev}|{w}")
            feats.append(f"w|w+1={w}|{nxt}")
        out.append(feats)
    return out


def bio_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """Token spans ``(start, end, type)`` of a BIO tag sequence (an ``I-`` without ``B-`` opens a span)."""
    spans: list[tuple[int, int, str]] = []
    start, current = -1, ""
    for i, tag in enumerate([*tags, "O"]):
        kind = tag[2:] if tag[:2] in ("B-", "I-") else ""
        continues = tag.startswith("I-") and kind == current
        if current and not continues:
            spans.append((start, i, current))
            current = ""
        if kind and not continues:
            start, current = i, kind
    return spans


def _with_gazetteer(
    tokens: Sequence[str],
    window: int,
    gazetteer: Gazetteer | None,
    exclude: Mapping[tuple[str, str], int] | None,
) -> list[list[str]]:
    features = token_features(tokens, window=window)
    if gazetteer is not None:
        for own, extra in zip(features, gazetteer.features(tokens, exclude=exclude), strict=True):
            own.extend(extra)
    return features


@dataclass(frozen=True)
class Tagging:
    """One tagging: the bracket annotation, its slots' BIO tags and the sequence probability."""

    annotation: str
    tags: tuple[str, ...]
    probability: float


class SlotTagger:
    """A trained CRF (or the trivial all-``O`` tagger of a domain without slots).

    Parameters
    ----------
    model_path : path-like or None
        crfsuite model file; ``None`` for the all-``O`` tagger.
    window : int
        Feature window the model was trained with.
    gazetteer : Gazetteer, optional
        The slot values the model was trained with as features (none: no gazetteer features).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None,
        *,
        window: int,
        gazetteer: Gazetteer | None = None,
    ) -> None:
        self.window = window
        self.gazetteer = gazetteer
        self.model_path = None if model_path is None else Path(model_path)
        self._tagger: pycrfsuite.Tagger | None = None
        self._lock = threading.Lock()  # a crfsuite tagger holds the current sequence: one at a time
        self.labels: tuple[str, ...] = ("O",)
        if self.model_path is not None:
            try:
                regular = stat.S_ISREG(os.stat(self.model_path).st_mode)
            except OSError as e:
                raise ModelError(f"{self.model_path}: missing slot tagger file") from e
            if not regular:
                raise ModelError(f"{self.model_path}: not a regular file (not a slot tagger)")
            tagger = pycrfsuite.Tagger()
            try:
                tagger.open(str(self.model_path))
            except (OSError, ValueError, RuntimeError) as e:
                raise ModelError(f"{self.model_path}: not a readable CRF model file ({e})") from e
            self.labels = tuple(tagger.labels())
            bad = [lab for lab in self.labels if lab != "O" and lab[:2] not in ("B-", "I-")]
            if bad:
                raise ModelError(f"{self.model_path}: CRF label {bad[0]!r} is not a BIO tag")
            self._tagger = tagger

    @property
    def slot_types(self) -> list[str]:
        """Slot types the tagger can produce."""
        return sorted({lab[2:] for lab in self.labels if lab != "O"})

    def features(self, tokens: Sequence[str]) -> list[list[str]]:
        """The CRF features of each token (token features, then gazetteer features)."""
        return _with_gazetteer(tokens, self.window, self.gazetteer, None)

    def tag(self, text: str) -> Tagging:
        """Tag the white-space tokens of ``text``; probability of the Viterbi sequence."""
        tokens = text.split()
        if not tokens:
            return Tagging("", (), 1.0)
        if self._tagger is None:
            return Tagging(" ".join(tokens), ("O",) * len(tokens), 1.0)
        features = self.features(tokens)
        with self._lock:
            tags = tuple(self._tagger.tag(features))
            probability = float(self._tagger.probability(list(tags)))
        probability = min(1.0, max(0.0, probability))
        return Tagging(format_annotation(" ".join(tokens), bio_spans(tags)), tags, probability)


def train_slot_tagger(
    annotations: Sequence[str],
    path: str | os.PathLike[str],
    *,
    c1: float,
    c2: float,
    window: int,
    max_iterations: int,
    gazetteer: bool = False,
) -> tuple[SlotTagger, dict[str, object]]:
    """Train a CRF on bracket annotations and save it to ``path`` (crfsuite's format).

    With ``gazetteer``, the slot values of ``annotations`` become features (leave-one-out on the
    training sentences) and are saved beside the model, in :data:`GAZETTEER_FILE`.
    Returns the loaded tagger and a summary (``slot_types``, ``n_sequences``, ``has_slots``,
    ``gazetteer_values``). When no annotation has a slot, no file is written and the all-``O``
    tagger is returned.
    """
    sequences = [tokens_and_tags(a) for a in annotations]
    sequences = [(t, g) for t, g in sequences if t]
    if not sequences:
        raise TrainingError("cannot train a slot tagger on no tokens")
    slot_types = sorted({g[2:] for _, tags in sequences for g in tags if g != "O"})
    summary: dict[str, object] = {
        "slot_types": slot_types,
        "n_sequences": len(sequences),
        "has_slots": bool(slot_types),
    }
    if not slot_types:
        return SlotTagger(None, window=window), summary
    gaz = Gazetteer.from_annotations(annotations) if gazetteer else None
    trainer = pycrfsuite.Trainer(verbose=False)
    for tokens, tags in sequences:
        own = slot_values(tokens, tags) if gaz is not None else None
        trainer.append(_with_gazetteer(tokens, window, gaz, own), tags)
    trainer.set_params(
        {
            "c1": float(c1),
            "c2": float(c2),
            "max_iterations": int(max_iterations),
            "feature.possible_transitions": True,
        }
    )
    target = Path(path)
    trainer.train(str(target))
    if gaz is not None:
        gaz.save(target.with_name(GAZETTEER_FILE))
        summary["gazetteer_values"] = len(gaz)
    log = trainer.logparser
    last = log.last_iteration if log is not None else None
    if isinstance(last, dict):
        summary["n_iter"] = int(last.get("num", 0))
        summary["final_loss"] = float(last.get("loss", float("nan")))
    return SlotTagger(target, window=window, gazetteer=gaz), summary
