"""Semantic error (SemER) and interpretation error (IE), SPEC §3.

An interpretation becomes the label sequence ``[intent] + [(type, value) for each slot]``, slot
values compared after lower-casing and collapsing white space. With reference sequence R and
hypothesis sequence H,

.. math:: \\mathrm{SemER} = \\frac{S + D + I}{|R|}, \\qquad |R| = 1 + \\#\\text{reference slots},

where S + D + I is the Levenshtein distance (unit costs) of H to R. SemER is never clipped: it
exceeds 1 when the hypothesis inserts more labels than the reference has. IE is 0 when domain,
intent and (normalised) slots all equal the reference, else 1.

The implementation is vectorised for millions of pairs: annotation strings are parsed once per
distinct value, labels are mapped to integers, and the edit-distance recursion runs as numpy
operations over all pairs sharing the same ``(|R|, |H|)`` lengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from reranker.annotation import normalize_value, parse_slots
from reranker.errors import DataError

__all__ = [
    "AlignmentStep",
    "align_interpretations",
    "edit_distance",
    "interpretation_error",
    "label_sequence",
    "semer_error",
    "table_errors",
]


def label_sequence(intent: str, slots: str) -> list[str]:
    """The SemER label sequence of one interpretation, as readable strings.

    >>> label_sequence("Music.PlayMusic", "play [album : X] by [artist :  Y  Z]")
    ['Music.PlayMusic', 'album=x', 'artist=y z']
    """
    return [intent] + [f"{t}={normalize_value(v)}" for t, v in parse_slots(slots)]


class _Encoder:
    """Maps annotation strings to padded integer label matrices, parsing each distinct one once."""

    def __init__(self) -> None:
        self._labels: dict[tuple[str, str], int] = {}
        self._canon: dict[tuple[int, ...], int] = {}

    def encode(
        self, annotations: pd.Series
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """Return (slot matrix padded with -1, slot counts, canonical id of the slot tuple)."""
        codes, uniques = pd.factorize(annotations, use_na_sentinel=False)
        encoded: list[tuple[int, ...]] = []
        for value in uniques:
            slots = parse_slots("" if value is None else str(value))
            ids = tuple(
                self._labels.setdefault((t, normalize_value(v)), len(self._labels))
                for t, v in slots
            )
            encoded.append(ids)
        width = max((len(e) for e in encoded), default=0)
        mat = np.full((len(encoded), max(width, 1)), -1, dtype=np.int64)
        lens = np.zeros(len(encoded), dtype=np.int64)
        canon = np.zeros(len(encoded), dtype=np.int64)
        for k, ids in enumerate(encoded):
            mat[k, : len(ids)] = ids
            lens[k] = len(ids)
            canon[k] = self._canon.setdefault(ids, len(self._canon))
        return mat[codes], lens[codes], canon[codes]

    @property
    def n_labels(self) -> int:
        return len(self._labels)


def edit_distance(
    ref: NDArray[np.int64],
    ref_len: NDArray[np.int64],
    hyp: NDArray[np.int64],
    hyp_len: NDArray[np.int64],
) -> NDArray[np.int64]:
    """Row-wise Levenshtein distance between padded integer sequences.

    Parameters
    ----------
    ref, hyp : ndarray of shape (n, width)
        Label ids; positions at or beyond ``*_len`` are ignored.
    ref_len, hyp_len : ndarray of shape (n,)
        Sequence lengths.

    Returns
    -------
    ndarray of shape (n,)
        Minimum number of substitutions, deletions and insertions turning ``hyp`` into ``ref``.
    """
    n = len(ref_len)
    out = np.empty(n, dtype=np.int64)
    if n == 0:
        return out
    key = ref_len * (int(hyp_len.max()) + 1) + hyp_len
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    for idx in np.split(order, bounds):
        lr, lh = int(ref_len[idx[0]]), int(hyp_len[idx[0]])
        r, h = ref[idx, :lr], hyp[idx, :lh]
        m = len(idx)
        prev = np.broadcast_to(np.arange(lh + 1, dtype=np.int64), (m, lh + 1)).copy()
        for i in range(1, lr + 1):
            cur = np.empty_like(prev)
            cur[:, 0] = i
            ri = r[:, i - 1]
            for j in range(1, lh + 1):
                sub = prev[:, j - 1] + (ri != h[:, j - 1])
                cur[:, j] = np.minimum(np.minimum(prev[:, j] + 1, cur[:, j - 1] + 1), sub)
            prev = cur
        out[idx] = prev[:, lh]
    return out


def _as_series(values: ArrayLike, name: str) -> pd.Series:
    series = pd.Series(np.asarray(values, dtype=object), dtype=object)
    if series.isna().any():
        row = int(np.flatnonzero(series.isna().to_numpy())[0])
        if name.endswith("slots"):
            series = series.where(~series.isna(), "")
        else:
            raise DataError(f"{name}[{row}] is missing")
    return series.astype(str)


def _errors(
    ref_intents: ArrayLike,
    ref_slots: ArrayLike,
    hyp_intents: ArrayLike,
    hyp_slots: ArrayLike,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """SemER and "intent and slots equal" for aligned sequences."""
    ri = _as_series(ref_intents, "ref_intents")
    rs = _as_series(ref_slots, "ref_slots")
    hi = _as_series(hyp_intents, "hyp_intents")
    hs = _as_series(hyp_slots, "hyp_slots")
    n = len(ri)
    if not (len(rs) == len(hi) == len(hs) == n):
        raise DataError(
            "ref_intents, ref_slots, hyp_intents and hyp_slots must have equal lengths, got "
            f"{n}, {len(rs)}, {len(hi)}, {len(hs)}"
        )
    if n == 0:
        return np.zeros(0), np.zeros(0, dtype=bool)
    encoder = _Encoder()
    both = pd.concat([rs, hs], ignore_index=True)
    mat, lens, canon = encoder.encode(both)
    intent_codes, _ = pd.factorize(pd.concat([ri, hi], ignore_index=True))
    intent_ids = intent_codes.astype(np.int64) + encoder.n_labels
    seq = np.concatenate([intent_ids[:, None], mat], axis=1)
    seq_len = lens + 1
    dist = edit_distance(seq[:n], seq_len[:n], seq[n:], seq_len[n:])
    semer = dist / seq_len[:n]
    same = (intent_ids[:n] == intent_ids[n:]) & (canon[:n] == canon[n:])
    return semer.astype(np.float64), same


def semer_error(
    ref_intents: ArrayLike,
    ref_slots: ArrayLike,
    hyp_intents: ArrayLike,
    hyp_slots: ArrayLike,
) -> NDArray[np.float64]:
    """Element-wise semantic error rate of hypotheses against references (SPEC §3).

    .. math:: \\mathrm{SemER} = (S + D + I) / (1 + \\#\\text{reference slots})

    over the label sequences ``[intent] + [(type, normalised value), ...]``.

    Parameters
    ----------
    ref_intents, hyp_intents : array-like of str, shape (n,)
        Intents, compared exactly. Pass domain-qualified intents (``Books.ReadBook``) when
        intents of different domains share names.
    ref_slots, hyp_slots : array-like of str, shape (n,)
        Bracket annotations (``"play [album : x]"``) or ``""`` for no slots.

    Returns
    -------
    ndarray of float, shape (n,)
        SemER per pair, ``>= 0``, not clipped (may exceed 1).

    Examples
    --------
    >>> semer_error(["PlayMusic"], ["[album : x] [artist : y]"], ["PlayMusic"], ["[album : X]"])
    array([0.33333333])
    """
    return _errors(ref_intents, ref_slots, hyp_intents, hyp_slots)[0]


def interpretation_error(
    ref_domains: ArrayLike,
    ref_intents: ArrayLike,
    ref_slots: ArrayLike,
    hyp_domains: ArrayLike,
    hyp_intents: ArrayLike,
    hyp_slots: ArrayLike,
) -> NDArray[np.int64]:
    """Element-wise interpretation error: 0 iff domain, intent and slots equal the reference.

    Slots are compared as ordered ``(type, normalised value)`` sequences, as in SemER.
    """
    rd = np.asarray(ref_domains, dtype=object).astype(str)
    hd = np.asarray(hyp_domains, dtype=object).astype(str)
    _, same = _errors(ref_intents, ref_slots, hyp_intents, hyp_slots)
    return (~(same & (rd == hd))).astype(np.int64)


def _qualified(domains: pd.Series, intents: pd.Series) -> pd.Series:
    return domains.astype(str) + "\x1f" + intents.astype(str)


def table_errors(hypotheses: pd.DataFrame) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """SemER and the ``correct`` bit (1 - IE) of every row of a validated hypothesis table.

    Intents are compared qualified by their domain (SPEC §1: a Books intent never equals a Music
    intent, even when the names coincide).
    """
    if not all(c in hypotheses.columns for c in ("ref_domain", "ref_intent", "ref_slots")):
        raise DataError(
            "the hypothesis table has no reference columns (ref_domain, ref_intent, ref_slots)"
        )
    semer, same = _errors(
        _qualified(hypotheses["ref_domain"], hypotheses["ref_intent"]),
        hypotheses["ref_slots"],
        _qualified(hypotheses["domain"], hypotheses["intent"]),
        hypotheses["slots"],
    )
    return semer, same.astype(np.int64)


@dataclass(frozen=True)
class AlignmentStep:
    """One step of a minimum edit alignment of a hypothesis to its reference."""

    op: Literal["match", "substitution", "deletion", "insertion"]
    ref: str | None
    hyp: str | None


def align_interpretations(
    ref_intent: str, ref_slots: str, hyp_intent: str, hyp_slots: str
) -> list[AlignmentStep]:
    """A minimum edit alignment of one hypothesis to its reference, for display.

    Deletions are reference labels the hypothesis misses, insertions are hypothesis labels the
    reference lacks. The number of non-match steps always equals the SemER numerator. Among
    alignments of equal cost, substitutions that keep the slot type or the value are preferred
    (a tiny tie-breaking cost, far below one edit), so ``album=x -> song=x`` is shown as the
    substitution rather than an unrelated pair.
    """
    r = [("", ref_intent)] + [(t, normalize_value(v)) for t, v in parse_slots(ref_slots)]
    h = [("", hyp_intent)] + [(t, normalize_value(v)) for t, v in parse_slots(hyp_slots)]
    eps = 1.0 / (4 * (len(r) + len(h) + 1))

    def sub_cost(a: tuple[str, str], b: tuple[str, str]) -> float:
        if a == b:
            return 0.0
        related = (a[0] == b[0]) or (a[1] == b[1])
        return 1.0 if related else 1.0 + eps

    d = np.zeros((len(r) + 1, len(h) + 1), dtype=np.float64)
    d[:, 0] = np.arange(len(r) + 1)
    d[0, :] = np.arange(len(h) + 1)
    for i in range(1, len(r) + 1):
        for j in range(1, len(h) + 1):
            d[i, j] = min(
                d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + sub_cost(r[i - 1], h[j - 1])
            )

    def show(label: tuple[str, str]) -> str:
        return label[1] if label[0] == "" else f"{label[0]}={label[1]}"

    steps: list[AlignmentStep] = []
    i, j = len(r), len(h)
    while i > 0 or j > 0:
        if i > 0 and j > 0 and np.isclose(d[i, j], d[i - 1, j - 1] + sub_cost(r[i - 1], h[j - 1])):
            same = r[i - 1] == h[j - 1]
            op: Literal["match", "substitution"] = "match" if same else "substitution"
            steps.append(AlignmentStep(op, show(r[i - 1]), show(h[j - 1])))
            i, j = i - 1, j - 1
        elif i > 0 and np.isclose(d[i, j], d[i - 1, j] + 1):
            steps.append(AlignmentStep("deletion", show(r[i - 1]), None))
            i -= 1
        else:
            steps.append(AlignmentStep("insertion", None, show(h[j - 1])))
            j -= 1
    return steps[::-1]
