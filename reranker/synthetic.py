"""Realistic synthetic n-best tables at any size, for benchmarks and scale tests.

Real n-best logs have a shape that decides how fast SemER, ranking and calibration run: every
reference annotation is distinct (it is the utterance's own text with its slots bracketed), the
hypotheses of one utterance come from several domains, and they re-use a few taggings of the same
text, so that about one row in three carries a slot string not seen before (the shipped real
test split has 1,833 distinct slot strings in 5,647 rows). :func:`realistic_hypotheses` draws
tables of that shape:

- each utterance has a text of 1 to 5 carrier words around 0 to 4 slots whose values have 1 to 4
  words (drawn from a vocabulary of pseudo-words), and the reference brackets those slots;
- its n-best holds 1 to 3 hypotheses from each of 2 to 4 domains (the reference domain among
  them 90% of the time), each tagging the text in one of three ways: as the reference does, with
  one slot of another type or with a slot dropped or added, or with a value cut short (and, now
  and then, a value in other letter case, which SemER ignores);
- confidences are noisy, per-domain miscalibrated functions of correctness.

The result passes :func:`reranker.hypotheses.validate_hypotheses` unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import NDArray

__all__ = ["DEVICES", "DOMAINS", "realistic_hypotheses", "synthetic_hypotheses"]

DOMAINS: tuple[str, ...] = (
    "Music",
    "Video",
    "Books",
    "Weather",
    "Shopping",
    "Podcasts",
    "Calendar",
    "General",
)
DEVICES: tuple[str, ...] = ("echo_dot", "echo_show", "fire_tv")
_SLOT_TYPES = (
    "song",
    "artist",
    "album",
    "title",
    "playlist",
    "genre",
    "date",
    "time",
    "place",
    "person",
    "item",
    "device",
    "station",
    "author",
    "episode",
    "event",
)
_INTENTS_PER_DOMAIN = 6
_VARIANT_P = (0.75, 0.2, 0.05)  # reference tagging, first and second alternative


def _vocabulary(size: int, rng: np.random.Generator) -> NDArray[np.object_]:
    """Distinct pronounceable pseudo-words of two or three syllables."""
    onsets = [*"bcdfghjklmnprstvwz", "ch", "sh", "th", "br", "st", "pl", "gr"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ou", "ee"]
    syllables = np.array([o + v for o in onsets for v in vowels], dtype=object)
    words: set[str] = set()
    while len(words) < size:
        k = rng.integers(2, 4)
        words.add("".join(syllables[rng.integers(0, syllables.size, k)]))
    return np.array(sorted(words), dtype=object)


Segment = tuple[str, list[str]]  # (slot type, words); type "" for carrier text


def _tagging(segments: list[Segment], variant: int, kind: int, pick: float) -> str:
    """One annotation of an utterance: the reference (variant 0) or an alternative tagging.

    ``kind`` chooses the alteration and ``pick`` (in [0, 1)) the slot it applies to.
    """
    segs = list(segments)
    slot_at = [i for i, (t, _) in enumerate(segs) if t]
    if variant:
        kind = kind if slot_at else 1
        k = slot_at[int(pick * len(slot_at))] if slot_at else 0
        slot_type, words = segs[k]
        if kind == 0:  # another slot type
            old = _SLOT_TYPES.index(slot_type)
            segs[k] = (_SLOT_TYPES[(old + variant) % len(_SLOT_TYPES)], words)
        elif kind == 1 and slot_at and variant == 1:  # a slot dropped: its words stay as text
            segs[k] = ("", words)
        elif kind == 1:  # the first carrier word tagged as a slot
            segs[0] = (_SLOT_TYPES[variant], segs[0][1])
        elif kind == 2 and len(words) > 1:  # a value cut short
            segs[k : k + 1] = [(slot_type, words[:-1]), ("", words[-1:])]
        else:  # letter case only: the same interpretation written differently
            segs[k] = (slot_type, [w.capitalize() for w in words])
    return " ".join([f"[{t} : {' '.join(w)}]" if t else " ".join(w) for t, w in segs])


def _utterance_annotations(
    n_utterances: int, rng: np.random.Generator
) -> tuple[NDArray[np.object_], NDArray[np.object_]]:
    """Per utterance: its three taggings (reference first) and its plain text."""
    vocab = _vocabulary(4000, rng)
    n_slots = rng.choice(5, n_utterances, p=[0.15, 0.35, 0.3, 0.15, 0.05]).tolist()
    taggings = np.empty((n_utterances, 3), dtype=object)
    texts = np.empty(n_utterances, dtype=object)
    words_of = vocab[rng.integers(0, vocab.size, (n_utterances, 21))].tolist()
    value_len = rng.integers(1, 5, (n_utterances, 4)).tolist()
    carrier_len = rng.integers(1, 6, n_utterances).tolist()
    types_of = np.array(_SLOT_TYPES, dtype=object)[
        rng.integers(0, len(_SLOT_TYPES), (n_utterances, 4))
    ].tolist()
    kinds = rng.integers(0, 4, (n_utterances, 3)).tolist()
    picks = rng.random((n_utterances, 3)).tolist()
    for u in range(n_utterances):
        words, types, lengths = words_of[u], types_of[u], value_len[u]
        carrier, pos = words[: carrier_len[u]], 5
        segments: list[Segment] = [("", carrier[:1])]
        for k in range(n_slots[u]):
            segments.append((types[k], words[pos : pos + lengths[k]]))
            pos += lengths[k]
            if k + 1 < len(carrier):
                segments.append(("", carrier[k + 1 : k + 2]))
        segments.extend(("", [w]) for w in carrier[n_slots[u] + 1 :])
        for v in range(3):
            taggings[u, v] = _tagging(segments, v, kinds[u][v], picks[u][v])
        texts[u] = " ".join([w for _, ws in segments for w in ws])
    return taggings, texts


def _make_references_distinct(taggings: NDArray[np.object_], texts: NDArray[np.object_]) -> None:
    """Append a distinguishing word to any repeated reference (rare with 4,000 words)."""
    for u in np.flatnonzero(pd.Series(taggings[:, 0]).duplicated().to_numpy()):
        taggings[u] = [f"{t} again{u}" for t in taggings[u]]
        texts[u] = f"{texts[u]} again{u}"


def _nbest_rows(
    n_utterances: int, n_domains: int, rng: np.random.Generator
) -> dict[str, NDArray[np.int64]]:
    """Row layout: utterance, domain, index within the domain, and the reference domain."""
    u = n_utterances
    ref_dom = rng.integers(0, n_domains, u)
    keys = rng.random((u, n_domains))
    keys[np.arange(u), ref_dom] = np.where(rng.random(u) < 0.9, -1.0, 2.0)
    cand = np.argsort(keys, axis=1)
    k_dom = rng.integers(2, min(4, n_domains) + 1, u)
    pair_u = np.repeat(np.arange(u), k_dom)
    pair_j = np.arange(pair_u.size) - np.repeat(np.cumsum(k_dom) - k_dom, k_dom)
    n_h = rng.integers(1, 4, pair_u.size)
    row_pair = np.repeat(np.arange(pair_u.size), n_h)
    row_u = pair_u[row_pair]
    return {
        "utt": row_u,
        "dom": cand[pair_u, pair_j][row_pair],
        "pos": np.arange(row_pair.size) - np.repeat(np.cumsum(n_h) - n_h, n_h),
        "ref_dom": ref_dom,
        "pair": row_pair,
    }


def _confidences(
    correct: NDArray[np.bool_],
    is_ref_dom: NDArray[np.bool_],
    rows: dict[str, NDArray[np.int64]],
    n_domains: int,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Domain, intent and slot confidences: noisy, per-domain miscalibrated, correlated."""
    n = correct.size
    quality = np.where(correct, 1.3, -0.5) + np.where(is_ref_dom, 0.5, -0.5)
    quality = quality - 0.4 * rows["pos"] + rng.normal(0.0, 1.0, n)
    slope = np.linspace(0.6, 2.0, n_domains)[rows["dom"]]
    shift = np.linspace(1.0, -0.5, n_domains)[rows["dom"]]
    pair_q = rng.normal(0.0, 0.7, int(rows["pair"].max()) + 1 if n else 0)[rows["pair"]]
    dom_q = pair_q + np.where(is_ref_dom, 1.0, -0.5)

    return (
        _sigmoid6(slope * dom_q + shift),
        _sigmoid6(slope * (quality + rng.normal(0.0, 0.5, n)) + shift),
        _sigmoid6(0.8 * quality + rng.normal(0.0, 0.8, n) + 0.5),
    )


def realistic_hypotheses(
    n_utterances: int,
    seed: int = 0,
    *,
    domains: Sequence[str] = DOMAINS,
    devices: Sequence[str] = DEVICES,
) -> pd.DataFrame:
    """A hypothesis table shaped like a real n-best log (see the module docstring).

    Parameters
    ----------
    n_utterances : int
        Utterances; the table has about six times as many rows.
    seed : int, default 0
    domains, devices : sequences of str
        At least two domains.

    Returns
    -------
    pandas.DataFrame
        Columns ``utterance_id, text, device, domain, intent, slots, domain_score,
        intent_score, slot_score, ref_domain, ref_intent, ref_slots``; rows grouped by utterance.
    """
    rng = np.random.default_rng(seed)
    doms = np.asarray(domains, dtype=object)
    if doms.size < 2:
        raise ValueError("realistic_hypotheses needs at least two domains")
    devs = np.asarray(devices, dtype=object)
    taggings, texts = _utterance_annotations(int(n_utterances), rng)
    _make_references_distinct(taggings, texts)
    rows = _nbest_rows(int(n_utterances), doms.size, rng)
    is_ref_dom = rows["dom"] == rows["ref_dom"][rows["utt"]]
    ref_intent, intent, variant = _realistic_intents(rows, is_ref_dom, n_utterances, rng)
    correct = is_ref_dom & (intent == ref_intent[rows["utt"]]) & (variant == 0)
    scores = _confidences(correct, is_ref_dom, rows, doms.size, rng)
    device = devs[rng.integers(0, devs.size, n_utterances)]
    utt, dom, ref_dom = rows["utt"], rows["dom"], rows["ref_dom"]
    intent_names = np.array(
        [f"{d}.Intent{k}" for d in doms for k in range(_INTENTS_PER_DOMAIN)], dtype=object
    )
    ref_intent_code = ref_dom * _INTENTS_PER_DOMAIN + ref_intent
    uid = np.array([f"utt{u:08d}" for u in range(n_utterances)], dtype=object)
    return pd.DataFrame(
        {
            "utterance_id": _spread(uid, utt),
            "text": _spread(texts, utt),
            "device": _spread(device, utt),
            "domain": _spread(doms, dom),
            "intent": _spread(intent_names, dom * _INTENTS_PER_DOMAIN + intent),
            "slots": _spread(taggings.ravel(), utt * 3 + variant),
            "domain_score": scores[0],
            "intent_score": scores[1],
            "slot_score": scores[2],
            "ref_domain": _spread(doms, ref_dom[utt]),
            "ref_intent": _spread(intent_names, ref_intent_code[utt]),
            "ref_slots": _spread(taggings[:, 0], utt),
        }
    )


def _realistic_intents(
    rows: dict[str, NDArray[np.int64]],
    is_ref_dom: NDArray[np.bool_],
    n_utterances: int,
    rng: np.random.Generator,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Reference intents per utterance; each row's intent and slot variant (0: the reference's).

    A domain's n-best holds distinct intents; in the reference domain it starts, 80% of the
    time, at the reference intent.
    """
    utt = rows["utt"]
    ref_intent = rng.integers(0, _INTENTS_PER_DOMAIN, n_utterances)
    n_pairs = int(rows["pair"][-1]) + 1 if utt.size else 0
    pair_base = np.where(
        rng.random(n_pairs) < 0.8, -1, rng.integers(0, _INTENTS_PER_DOMAIN, n_pairs)
    )[rows["pair"]]
    base = np.where(is_ref_dom & (pair_base < 0), ref_intent[utt], np.maximum(pair_base, 0))
    intent = (base + rows["pos"]) % _INTENTS_PER_DOMAIN  # distinct within a domain's n-best
    variant = rng.choice(3, utt.size, p=_VARIANT_P)
    return ref_intent, intent, variant


def _spread(values: NDArray[np.object_], index: NDArray[np.int64]) -> pd.Series:
    """``values[index]`` as a pandas string column, without a Python object per row."""
    return pa.array(values, type=pa.string()).take(pa.array(index)).to_pandas()


_SIMPLE_DOMAINS = ("Music", "Video", "Books", "Weather", "Shopping")


def synthetic_hypotheses(
    n_utterances: int,
    *,
    seed: int = 0,
    domains: Sequence[str] = _SIMPLE_DOMAINS,
    devices: Sequence[str] = DEVICES,
) -> pd.DataFrame:
    """A realistic synthetic hypothesis table with references, for tests and benchmarks.

    Each utterance has a device and a reference interpretation; its n-best holds 1 to 3
    hypotheses from each of 2 to 4 domains (always including the reference domain). The
    reference domain's best hypothesis is correct 70% of the time (its second 15%); the other
    hypotheses get a wrong intent, a wrong slot value, a missing or an extra slot, so SemER
    varies. NLU confidences are noisy functions of correctness with a different
    miscalibration per domain (over- or under-confident), and the reference domain depends on
    the device (Video is more likely on ``fire_tv``), so that the device one-hot, the log
    scores and the rank all carry signal.

    Parameters
    ----------
    n_utterances : int
    seed : int, default 0
    domains, devices : sequences of str

    Returns
    -------
    pandas.DataFrame
        A table that :func:`reranker.hypotheses.validate_hypotheses` accepts unchanged.
    """
    rng = np.random.default_rng(seed)
    doms = np.asarray(domains, dtype=object)
    devs = np.asarray(devices, dtype=object)
    refs = _simple_references(int(n_utterances), doms, devs, rng)
    rows = _simple_rows(refs, doms.size, rng)
    intent, slots, ref_slots = _simple_interpretations(refs, rows, doms, rng)
    domain_score, intent_score, slot_score = _simple_confidences(refs, rows, doms, devs, rng)
    row_u, n = rows.utt, rows.utt.size
    uid = pd.Series(np.arange(refs.n)).map("u{:07d}".format).to_numpy(dtype=object)
    ref_intent = (
        pd.Series(doms[refs.domain]).astype(str) + ".Intent" + pd.Series(refs.intent).astype(str)
    )
    return pd.DataFrame(
        {
            "utterance_id": uid[row_u],
            "text": np.full(n, "play something", dtype=object),
            "device": devs[refs.device[row_u]],
            "domain": doms[rows.domain],
            "intent": intent.to_numpy(dtype=object),
            "slots": slots.to_numpy(dtype=object),
            "domain_score": domain_score,
            "intent_score": intent_score,
            "slot_score": slot_score,
            "ref_domain": doms[refs.domain][row_u],
            "ref_intent": ref_intent.to_numpy(dtype=object)[row_u],
            "ref_slots": ref_slots.to_numpy(dtype=object)[row_u],
        }
    )


def _sigmoid6(v: NDArray[np.float64]) -> NDArray[np.float64]:
    """The logistic function rounded to 6 decimals, as NLU logs print confidences."""
    return np.round(1.0 / (1.0 + np.exp(-v)), 6)


def _video_on_tv(doms: NDArray[np.object_], devs: NDArray[np.object_]) -> int | None:
    """Index of the Video domain when there is one and a ``fire_tv`` device, else ``None``."""
    video = [i for i, d in enumerate(doms) if d == "Video"]
    return video[0] if video and "fire_tv" in set(devs) else None


@dataclass(frozen=True)
class _SimpleReferences:
    """Per utterance: device, reference domain and intent, reference slot value and presence."""

    device: NDArray[np.int64]
    domain: NDArray[np.int64]
    intent: NDArray[np.int64]
    value: NDArray[np.int64]
    has_slot: NDArray[np.bool_]

    @property
    def n(self) -> int:
        return int(self.device.size)


def _simple_references(
    u: int, doms: NDArray[np.object_], devs: NDArray[np.object_], rng: np.random.Generator
) -> _SimpleReferences:
    """Draw each utterance's device and reference (Video four times as likely on fire_tv)."""
    device = rng.integers(0, devs.size, u)
    pref = np.ones((devs.size, doms.size))
    video = _video_on_tv(doms, devs)
    if video is not None:
        pref[list(devs).index("fire_tv"), video] = 4.0
    cum = np.cumsum(pref / pref.sum(axis=1, keepdims=True), axis=1)[device]
    ref_dom = np.minimum((rng.random(u)[:, None] > cum).sum(axis=1), doms.size - 1)
    intent = rng.integers(0, 3, u)
    value = rng.integers(0, 50, u)
    has_slot = rng.random(u) < 0.8
    return _SimpleReferences(device, ref_dom, intent, value, has_slot)


@dataclass(frozen=True)
class _SimpleRows:
    """Per row: utterance, domain, rank within its domain, and the (utterance, domain) pair."""

    utt: NDArray[np.int64]
    domain: NDArray[np.int64]
    rank: NDArray[np.int64]
    pair: NDArray[np.int64]
    n_pairs: int
    is_ref_domain: NDArray[np.bool_]
    correct: NDArray[np.bool_]


def _simple_rows(refs: _SimpleReferences, n_dom: int, rng: np.random.Generator) -> _SimpleRows:
    """2 to 4 candidate domains per utterance (the reference first), 1 to 3 rows each."""
    u = refs.n
    keys = rng.random((u, n_dom))
    keys[np.arange(u), refs.domain] = -1.0
    cand = np.argsort(keys, axis=1)
    k_dom = rng.integers(2, min(4, n_dom) + 1, u)
    pair_u = np.repeat(np.arange(u), k_dom)
    pair_j = np.arange(pair_u.size) - np.repeat(np.cumsum(k_dom) - k_dom, k_dom)
    pair_dom = cand[pair_u, pair_j]
    n_h = rng.integers(1, 4, pair_u.size)
    row_pair = np.repeat(np.arange(pair_u.size), n_h)
    row_i = np.arange(row_pair.size) - np.repeat(np.cumsum(n_h) - n_h, n_h)
    row_u = pair_u[row_pair]
    row_dom = pair_dom[row_pair]
    is_ref_dom = row_dom == refs.domain[row_u]
    which = rng.choice(3, u, p=[0.7, 0.15, 0.15])  # index of the correct hyp (2: none)
    correct = is_ref_dom & (row_i == which[row_u])
    return _SimpleRows(row_u, row_dom, row_i, row_pair, pair_u.size, is_ref_dom, correct)


def _simple_interpretations(
    refs: _SimpleReferences, rows: _SimpleRows, doms: NDArray[np.object_], rng: np.random.Generator
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Each row's intent and slots, and each utterance's reference slots.

    An incorrect reference-domain row has a wrong intent, a wrong slot value, a missing or an
    extra slot, and differs from the reference and from the domain's other rows.
    """
    row_u, row_i, n = rows.utt, rows.rank, rows.utt.size
    wrong = rows.is_ref_domain & ~rows.correct
    intent_k = np.where(rows.is_ref_domain, refs.intent[row_u], row_i)
    error_kind = rng.integers(0, 4, n)  # 0 wrong intent, 1 wrong value, 2 drop slot, 3 extra slot
    intent_k = np.where(wrong & (error_kind == 0), (intent_k + 1 + row_i) % 3 + 3, intent_k)
    intent = pd.Series(doms[rows.domain]).astype(str) + ".Intent" + pd.Series(intent_k).astype(str)
    slot_val = np.where(wrong & (error_kind == 1), 100 + row_i, refs.value[row_u])
    has_slot = np.where(wrong & (error_kind == 2), False, refs.has_slot[row_u].copy())
    extra = wrong & (error_kind == 3)
    unique_fix = wrong & (error_kind == 2) & (row_i > 0)
    slot_val = np.where(unique_fix, 200 + row_i, slot_val)
    has_slot = has_slot | unique_fix
    extra = extra | (wrong & ~refs.has_slot[row_u] & (error_kind >= 1))
    slot_text = np.where(
        has_slot, np.char.add(np.char.add("[item : v", slot_val.astype(str)), "]"), ""
    )
    extra_text = np.where(
        extra, np.char.add(np.char.add(" [place : p", row_i.astype(str)), "]"), ""
    )
    slots = pd.Series(np.char.add(np.char.add("play ", slot_text), extra_text), dtype=object)
    ref_slots = pd.Series(
        np.where(refs.has_slot, "play [item : v" + pd.Series(refs.value).astype(str) + "]", "play ")
    )
    return intent, slots, ref_slots


def _simple_confidences(
    refs: _SimpleReferences,
    rows: _SimpleRows,
    doms: NDArray[np.object_],
    devs: NDArray[np.object_],
    rng: np.random.Generator,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Domain, intent and slot confidences: correctness plus noise, miscalibrated per domain.

    Video is less confident off ``fire_tv`` (the device effect the device features can learn).
    """
    n, is_ref_dom = rows.utt.size, rows.is_ref_domain
    quality = np.where(rows.correct, 1.2, -0.6) + np.where(is_ref_dom, 0.6, -0.4)
    quality = quality - 0.5 * rows.rank + rng.normal(0, 1.0, n)
    slope = np.linspace(0.6, 2.0, doms.size)[rows.domain]
    shift = np.linspace(1.0, -0.5, doms.size)[rows.domain]
    pair_q = rng.normal(0, 0.7, rows.n_pairs)[rows.pair]
    dom_q = pair_q + np.where(is_ref_dom, 1.0, -0.5)
    video = _video_on_tv(doms, devs)
    if video is not None:
        on_tv = devs[refs.device[rows.utt]] == "fire_tv"
        dom_q = dom_q - np.where((rows.domain == video) & ~on_tv, 0.8, 0.0)
    return (
        _sigmoid6(slope * dom_q + shift),
        _sigmoid6(slope * (quality + rng.normal(0, 0.5, n)) + shift),
        _sigmoid6(0.8 * quality + rng.normal(0, 0.8, n) + 0.5),
    )
