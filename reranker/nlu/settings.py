"""Per-domain NLU training settings: each domain's team chooses its own.

In a large NLU system every domain is built by its own team, with its own regularisation,
features and training data. Their confidences are therefore not comparable across domains, which
is the problem the re-ranker solves. :class:`DomainSettings` holds one domain's choices; they are
recorded next to the domain's models.

Without explicit settings a domain gets one of a few *team profiles* (:data:`PROFILES`), chosen
deterministically from the domain's name, plus a seed derived from the name; a settings file (JSON
``{"<Domain>": {"profile": "cautious", "domain_c": 0.5, ...}, "*": {...}}``) overrides any field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reranker._files import read_json_file
from reranker.errors import DataError

__all__ = [
    "PROFILES",
    "DomainSettings",
    "check_settings",
    "default_settings",
    "read_settings_file",
    "settings_for",
]


@dataclass(frozen=True)
class DomainSettings:
    """One domain's NLU training settings.

    Attributes
    ----------
    profile : str
        Name of the team profile the defaults came from.
    domain_c : float
        Inverse L2 regularisation of the domain classifier (one-vs-all logistic regression).
    domain_class_weight : str
        ``"balanced"`` (re-weight the domain's positives against the rest) or ``"none"``.
    negative_fraction : float
        Fraction of the other domains' utterances the domain classifier is trained on as
        negatives (a team rarely has all of the other teams' data).
    word_ngrams : int
        Word n-grams from 1 to this order.
    char_ngrams : tuple of int
        ``(low, high)`` orders of character n-grams within word boundaries; ``(0, 0)`` for none.
    min_df : int
        Minimum number of training utterances an n-gram must occur in.
    intent_c : float
        Inverse L2 regularisation of the intent classifier (multinomial logistic regression).
    crf_c1, crf_c2 : float
        L1 and L2 regularisation of the CRF slot tagger.
    crf_window : int
        Context window (tokens either side) of the CRF features.
    crf_max_iterations : int
        L-BFGS iterations of the CRF.
    crf_gazetteer : bool
        Give the CRF gazetteer features: the slot values seen in the domain's training data
        (:mod:`reranker.nlu.gazetteer`).
    seed : int
        Seed of the negative subsampling.
    """

    profile: str = "standard"
    domain_c: float = 2.0
    domain_class_weight: str = "none"
    negative_fraction: float = 1.0
    word_ngrams: int = 2
    char_ngrams: tuple[int, int] = (2, 4)
    min_df: int = 1
    intent_c: float = 4.0
    crf_c1: float = 0.05
    crf_c2: float = 0.05
    crf_window: int = 2
    crf_max_iterations: int = 150
    crf_gazetteer: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (self.domain_c > 0, "domain_c must be > 0"),
            (
                self.domain_class_weight in ("balanced", "none"),
                "domain_class_weight must be 'balanced' or 'none'",
            ),
            (0 < self.negative_fraction <= 1, "negative_fraction must be in (0, 1]"),
            (1 <= self.word_ngrams <= 4, "word_ngrams must be in 1..4"),
            (
                len(self.char_ngrams) == 2
                and (
                    tuple(self.char_ngrams) == (0, 0)
                    or 1 <= self.char_ngrams[0] <= self.char_ngrams[1] <= 6
                ),
                "char_ngrams must be (0, 0) or (low, high) with 1 <= low <= high <= 6",
            ),
            (self.min_df >= 1, "min_df must be >= 1"),
            (self.intent_c > 0, "intent_c must be > 0"),
            (self.crf_c1 >= 0 and self.crf_c2 >= 0, "crf_c1 and crf_c2 must be >= 0"),
            (0 <= self.crf_window <= 3, "crf_window must be in 0..3"),
            (self.crf_max_iterations >= 1, "crf_max_iterations must be >= 1"),
            (isinstance(self.crf_gazetteer, bool), "crf_gazetteer must be true or false"),
        ]
        for ok, message in checks:
            if not ok:
                raise DataError(f"domain settings: {message}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples as lists)."""
        out = dataclasses.asdict(self)
        out["char_ngrams"] = list(self.char_ngrams)
        return out

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, source: str = "settings") -> DomainSettings:
        """Build from a dict (as read from JSON); unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(doc) - names
        if unknown:
            raise DataError(f"{source}: unknown setting {sorted(unknown)[0]!r}")
        values = dict(doc)
        if "char_ngrams" in values:
            try:
                values["char_ngrams"] = tuple(int(v) for v in values["char_ngrams"])
            except (TypeError, ValueError) as e:
                raise DataError(f"{source}: char_ngrams must be two integers") from e
        try:
            return cls(**values)
        except TypeError as e:
            raise DataError(f"{source}: {e}") from e


PROFILES: dict[str, dict[str, Any]] = {
    # Strong features, little regularisation: confident scores.
    "confident": {
        "domain_c": 20.0,
        "word_ngrams": 2,
        "char_ngrams": (2, 5),
        "intent_c": 30.0,
        "crf_c1": 0.0,
        "crf_c2": 0.01,
        "crf_window": 2,
    },
    # A middle-of-the-road team.
    "standard": {},
    # Heavy regularisation, no character n-grams: hesitant scores.
    "cautious": {
        "domain_c": 0.5,
        "word_ngrams": 2,
        "char_ngrams": (0, 0),
        "intent_c": 1.0,
        "crf_c1": 0.1,
        "crf_c2": 0.3,
        "crf_window": 2,
    },
    # Character n-grams and single words, medium regularisation.
    "subword": {
        "domain_c": 5.0,
        "word_ngrams": 1,
        "char_ngrams": (1, 4),
        "intent_c": 8.0,
        "crf_c1": 0.1,
        "crf_c2": 0.2,
        "crf_window": 2,
    },
}
"""Team profiles: the default settings a domain gets (by a hash of its name)."""


def _name_hash(domain: str) -> int:
    return int.from_bytes(hashlib.sha256(domain.encode("utf-8")).digest()[:8], "big")


def default_settings(domain: str, *, profile: str | None = None) -> DomainSettings:
    """The default settings of ``domain``: a team profile chosen from its name, and a seed."""
    h = _name_hash(domain)
    names = sorted(PROFILES)
    chosen = profile if profile is not None else names[h % len(names)]
    if chosen not in PROFILES:
        raise DataError(f"unknown settings profile {chosen!r}; choose from {', '.join(names)}")
    return DomainSettings(profile=chosen, seed=h % (2**31), **PROFILES[chosen])


def settings_for(
    domain: str, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> DomainSettings:
    """Settings of ``domain``: defaults, then the ``"*"`` overrides, then the domain's own."""
    overrides = overrides or {}
    merged: dict[str, Any] = {}
    for key in ("*", domain):
        merged.update(overrides.get(key, {}))
    base = default_settings(domain, profile=merged.pop("profile", None))
    doc = base.to_dict()
    doc.update(merged)
    return DomainSettings.from_dict(doc, source=f"settings of domain {domain!r}")


def check_settings(
    overrides: Mapping[str, Mapping[str, Any]] | None, domains: Iterable[str]
) -> None:
    """Raise :class:`DataError` unless ``overrides`` name only ``domains`` (or ``"*"``) and give
    every one of ``domains`` valid settings (known profile, valid values)."""
    names = sorted(set(domains))
    stray = [k for k in (overrides or {}) if k != "*" and k not in names]
    if stray:
        raise DataError(f"settings name domain {stray[0]!r}, which has no utterance in the corpus")
    for name in names:
        settings_for(name, overrides)


def read_settings_file(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Read a per-domain settings file: ``{"<Domain>" or "*": {setting: value}}``."""
    p = Path(path)
    doc = read_json_file(p, what="settings")
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise DataError(f"{p}: expected an object mapping each domain (or '*') to its settings")
    for domain, values in doc.items():
        unknown = set(values) - {f.name for f in dataclasses.fields(DomainSettings)}
        if unknown:
            raise DataError(f"{p}: domain {domain!r}: unknown setting {sorted(unknown)[0]!r}")
    return doc
