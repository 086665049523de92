"""Semantic error (SemER) and interpretation error (IE), docs/metrics.md#semer.

An interpretation becomes the label sequence ``[intent] + [(type, value) for each slot]``, slot
values compared after lower-casing and collapsing white space. With reference sequence R and
hypothesis sequence H,

.. math:: \\mathrm{SemER} = \\frac{S + D + I}{|R|}, \\qquad |R| = 1 + \\#\\text{reference slots},

where S + D + I is the Levenshtein distance (unit costs) of H to R. SemER is never clipped: it
exceeds 1 when the hypothesis inserts more labels than the reference has. IE is 0 when domain,
intent and (normalised) slots all equal the reference, else 1.

The implementation is vectorised for millions of pairs: annotation strings are parsed once per
distinct value (:mod:`reranker.label_sequences`), labels are mapped to integers, the distance is
computed once per distinct ``(reference annotation, hypothesis annotation, intents equal)``, and
the edit-distance recursion runs as numpy operations over all pairs sharing the same
``(|R|, |H|)`` lengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from reranker.annotation import normalize_value, parse_slots
from reranker.errors import DataError
from reranker.label_sequences import LabelSequences, encode_annotations
from reranker.text_codes import drop_dictionary, joint_text_codes

__all__ = [
    "AlignmentStep",
    "align_interpretations",
    "edit_distance",
    "interpretation_error",
    "label_sequence",
    "semer_error",
    "table_errors",
]

IntArray = NDArray[np.int64]


def label_sequence(intent: str, slots: str) -> list[str]:
    """The SemER label sequence of one interpretation, as readable strings.

    >>> label_sequence("Music.PlayMusic", "play [album : X] by [artist :  Y  Z]")
    ['Music.PlayMusic', 'album=x', 'artist=y z']
    """
    return [intent] + [f"{t}={normalize_value(v)}" for t, v in parse_slots(slots)]


def _levenshtein_rows(ref: IntArray, hyp: IntArray) -> IntArray:
    """Levenshtein distance of each row of ``ref`` (m, a) to the same row of ``hyp`` (m, b)."""
    m, a = ref.shape
    b = hyp.shape[1]
    differ = (ref[:, :, None] != hyp[:, None, :]).astype(np.int32)
    prev = np.broadcast_to(np.arange(b + 1, dtype=np.int32), (m, b + 1)).copy()
    cur = np.empty_like(prev)
    for i in range(a):
        cur[:, 0] = i + 1
        for j in range(b):
            best = np.minimum(prev[:, j + 1], cur[:, j]) + 1
            np.minimum(best, prev[:, j] + differ[:, i, j], out=cur[:, j + 1])
        prev, cur = cur, prev
    return prev[:, b].astype(np.int64)


def _length_groups(ref_len: IntArray, hyp_len: IntArray) -> list[IntArray]:
    """Indices of the rows sharing each ``(ref_len, hyp_len)``."""
    if ref_len.size == 0:
        return []
    key = ref_len * (int(hyp_len.max()) + 1) + hyp_len
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    return np.split(order, bounds)


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
    ref_len, hyp_len = np.asarray(ref_len, np.int64), np.asarray(hyp_len, np.int64)
    out = np.empty(ref_len.size, dtype=np.int64)
    for idx in _length_groups(ref_len, hyp_len):
        lr, lh = int(ref_len[idx[0]]), int(hyp_len[idx[0]])
        out[idx] = _levenshtein_rows(ref[idx, :lr], hyp[idx, :lh])
    return out


def _gather(seqs: LabelSequences, which: IntArray, width: int, first: IntArray) -> IntArray:
    """Rows ``[first, labels of annotation which...]``, all of ``width`` labels."""
    out = np.empty((which.size, width), dtype=np.int64)
    out[:, 0] = first
    start = seqs.offsets[which]
    for j in range(1, width):
        out[:, j] = seqs.labels[start + j - 1]
    return out


def _sequence_distance(
    seqs: LabelSequences, ref: IntArray, hyp: IntArray, intent_equal: NDArray[np.bool_]
) -> IntArray:
    """Levenshtein distance of ``[intent] + slots`` of annotation pairs ``(ref, hyp)``."""
    ref_len, hyp_len = seqs.lengths[ref] + 1, seqs.lengths[hyp] + 1
    out = np.empty(ref.size, dtype=np.int64)
    for idx in _length_groups(ref_len, hyp_len):
        r = _gather(seqs, ref[idx], int(ref_len[idx[0]]), np.full(idx.size, -1))
        h = _gather(seqs, hyp[idx], int(hyp_len[idx[0]]), np.where(intent_equal[idx], -1, -2))
        out[idx] = _levenshtein_rows(r, h)
    return out


def _pair_distance(
    seqs: LabelSequences, ref: IntArray, hyp: IntArray, intent_equal: NDArray[np.bool_]
) -> IntArray:
    """:func:`_sequence_distance` of every row, computed once per distinct pair of rows."""
    n_distinct = max(seqs.lengths.size, 1)
    key = (ref * n_distinct + hyp) * 2 + intent_equal
    pair, distinct = pd.factorize(key)
    rest = distinct // 2
    dist = _sequence_distance(seqs, rest // n_distinct, rest % n_distinct, distinct % 2 == 1)
    return dist[pair]


def _codes(columns: list[tuple[ArrayLike, str]]) -> list[IntArray]:
    """Joint integer codes of text columns that must not hold missing values."""
    codes, _ = joint_text_codes(
        [v for v, _ in columns], [name for _, name in columns], missing_as_empty=False
    )
    return codes


def _errors(
    ref_intents: IntArray, ref_slots: ArrayLike, hyp_intents: IntArray, hyp_slots: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """SemER and "intent and slots equal" for aligned sequences; intents given as codes."""
    seqs = encode_annotations([ref_slots, hyp_slots], ["ref_slots", "hyp_slots"])
    ref, hyp = seqs.codes
    n = ref_intents.size
    if not (ref.size == hyp_intents.size == hyp.size == n):
        raise DataError(
            "ref_intents, ref_slots, hyp_intents and hyp_slots must have equal lengths, got "
            f"{n}, {ref.size}, {hyp_intents.size}, {hyp.size}"
        )
    dist = _pair_distance(seqs, ref, hyp, ref_intents == hyp_intents)
    return dist / (seqs.lengths[ref] + 1.0), dist == 0


def semer_error(
    ref_intents: ArrayLike,
    ref_slots: ArrayLike,
    hyp_intents: ArrayLike,
    hyp_slots: ArrayLike,
) -> NDArray[np.float64]:
    """Element-wise semantic error rate of hypotheses against references (docs/metrics.md#semer).

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
    ri, hi = _codes([(ref_intents, "ref_intents"), (hyp_intents, "hyp_intents")])
    return _errors(ri, ref_slots, hi, hyp_slots)[0]


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
    rd, hd = _codes([(ref_domains, "ref_domains"), (hyp_domains, "hyp_domains")])
    ri, hi = _codes([(ref_intents, "ref_intents"), (hyp_intents, "hyp_intents")])
    if rd.size != ri.size or hd.size != hi.size:
        raise DataError(f"domains and intents must have equal lengths, got {rd.size}, {ri.size}")
    _, same = _errors(ri, ref_slots, hi, hyp_slots)
    return (~(same & (rd == hd))).astype(np.int64)


def _qualified_intents(hypotheses: pd.DataFrame) -> tuple[IntArray, IntArray]:
    """Codes of ``(ref_domain, ref_intent)`` and ``(domain, intent)``, equal iff both are."""
    rd, hd = _codes([(hypotheses["ref_domain"], "ref_domain"), (hypotheses["domain"], "domain")])
    ri, hi = _codes([(hypotheses["ref_intent"], "ref_intent"), (hypotheses["intent"], "intent")])
    n_intents = int(max(ri.max(initial=-1), hi.max(initial=-1))) + 1
    return rd * n_intents + ri, hd * n_intents + hi


def table_errors(hypotheses: pd.DataFrame) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """SemER and the ``correct`` bit (1 - IE) of every row of a validated hypothesis table.

    Intents are compared qualified by their domain (docs/README.md#concepts: a Books intent never
    equals a Music intent, even when the names coincide).
    """
    if not all(c in hypotheses.columns for c in ("ref_domain", "ref_intent", "ref_slots")):
        raise DataError(
            "the hypothesis table has no reference columns (ref_domain, ref_intent, ref_slots)"
        )
    ref_intents, hyp_intents = _qualified_intents(hypotheses)
    slots = hypotheses["ref_slots"], hypotheses["slots"]
    semer, same = _errors(ref_intents, slots[0], hyp_intents, slots[1])
    for column in slots:  # parsed: validation's distinct annotations are not needed again
        drop_dictionary(column)
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
