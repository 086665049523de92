"""Analyses behind the calibration dashboard, as pure functions of scored hypothesis tables.

The dashboard (``dashboard/``) is a thin layer over this module: every table, slice, curve and
what-if it shows is computed here, where it is tested and usable from a notebook too.

The expensive work is split so that it can be cached and never repeated needlessly:

1. :func:`prepare` computes SemER and the correct bit once per table (they do not depend on
   scores);
2. :func:`scored_view` attaches one loss's scores (ranks, top-1 rows), cheap and per loss;
3. everything else (:func:`utterance_table`, :func:`filter_utterances`,
   :func:`calibration_metrics`, :func:`slice_curve` ...) reads those arrays.

Bootstrap intervals resample **utterances** (SPEC §5) through per-utterance sufficient statistics,
so a resample costs a sparse product over utterances rather than a pass over the hypotheses.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse
from scipy.special import expit

from reranker.bootstrap import bootstrap_interval, bootstrap_intervals, weight_chunks
from reranker.calibration import (
    ReliabilityCurve,
    Strategy,
    bin_indices,
    brier_loss,
    expected_calibration_error,
    maximum_calibration_error,
    reliability_curve,
    smooth_ece,
)
from reranker.errors import DataError, WeightsError
from reranker.evaluation import ScoredTable, score_table
from reranker.hypotheses import SUFFIXES, has_references
from reranker.ranking import r0_score
from reranker.semer import align_interpretations, table_errors

__all__ = [
    "LOSSES",
    "DatasetInfo",
    "PreparedTable",
    "alignment_frame",
    "calibration_metrics",
    "calibration_sample",
    "compare_documents",
    "dataset_summary",
    "device_weights",
    "discover_datasets",
    "filter_utterances",
    "hypothesis_contributions",
    "metrics_frame",
    "prepare",
    "recalibrate",
    "registry_fingerprint",
    "registry_table",
    "rescore_utterance",
    "safe_file_name",
    "scored_view",
    "slice_curve",
    "slice_masks",
    "smooth_calibration",
    "top_domain_distribution",
    "utterance_detail",
    "utterance_table",
]

LOSSES: tuple[str, ...] = ("r0", "r1", "r2", "r3")
Population = Literal["all", "top1"]
FloatArray = NDArray[np.float64]
_SPLIT_ORDER = ("test", "dev", "train")


# --------------------------------------------------------------------------------------------
# Datasets on disk


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset the dashboard can open: hypothesis tables per split, weights, NLU models.

    Attributes
    ----------
    key : str
        Directory name (``media``, ``real``, ``sample``), used in URLs.
    name, description : str
        From ``dataset.json`` when present.
    splits : dict
        Split name (``test``, ``dev``, ``train``, or ``all`` for a single file) -> table path.
    weights : dict
        Loss (``r1``, ``r2``, ``r3``) -> weights registry directory.
    models : Path or None
        NLU model directory (the probe needs it).
    devices_simulated : bool
        Whether the devices of this dataset are a simulation (``"devices": "simulated"``).
    """

    key: str
    name: str
    description: str
    root: Path
    splits: dict[str, Path] = field(default_factory=dict)
    weights: dict[str, Path] = field(default_factory=dict)
    models: Path | None = None
    devices_simulated: bool = False

    @property
    def default_split(self) -> str:
        """The split analyses use by default: ``test`` when there is one."""
        for split in _SPLIT_ORDER:
            if split in self.splits:
                return split
        return next(iter(self.splits))


def _table_files(directory: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if not directory.is_dir():
        return found
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix.lower() in SUFFIXES and path.stem not in found:
            found[path.stem] = path
    return found


def _dataset_at(directory: Path) -> DatasetInfo | None:
    splits = _table_files(directory / "hypotheses")
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.stem == "hypotheses" and path.suffix.lower() in SUFFIXES:
            splits.setdefault("all", path)
    if not splits:
        return None
    meta: dict[str, Any] = {}
    meta_path = directory / "dataset.json"
    if meta_path.is_file():
        try:
            loaded = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            loaded = {}
        meta = loaded if isinstance(loaded, dict) else {}
    weights = {
        loss: directory / "weights" / loss
        for loss in LOSSES[1:]
        if (directory / "weights" / loss).is_dir()
    }
    models = directory / "models"
    return DatasetInfo(
        key=directory.name,
        name=str(meta.get("name") or directory.name.replace("_", " ").capitalize()),
        description=str(meta.get("description") or ""),
        root=directory,
        splits=dict(sorted(splits.items(), key=lambda kv: _split_rank(kv[0]))),
        weights=weights,
        models=models if models.is_dir() else None,
        devices_simulated=str(meta.get("devices", "")).lower() == "simulated",
    )


def _split_rank(split: str) -> tuple[int, str]:
    return (_SPLIT_ORDER.index(split) if split in _SPLIT_ORDER else len(_SPLIT_ORDER), split)


def discover_datasets(root: str | os.PathLike[str]) -> list[DatasetInfo]:
    """Datasets under a data directory laid out like ``demo_data/``.

    A dataset is a directory holding ``hypotheses/<split>.{parquet,csv,jsonl}`` or a single
    ``hypotheses.{parquet,csv,jsonl}``, optionally ``dataset.json``, ``weights/{r1,r2,r3}/`` and
    ``models/``. ``root`` itself may be such a directory. Datasets described by a
    ``dataset.json`` come first, then the others, each group by name.
    """
    base = Path(root)
    if not base.is_dir():
        return []
    found: list[DatasetInfo] = []
    own = _dataset_at(base)
    if own is not None:
        found.append(own)
    for child in sorted(base.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            info = _dataset_at(child)
            if info is not None:
                found.append(info)
    return sorted(found, key=lambda d: (not (d.root / "dataset.json").is_file(), d.key))


def registry_fingerprint(path: str | os.PathLike[str] | None) -> str:
    """A cheap token that changes whenever a weights registry publishes or rolls back.

    Reads only the per-domain ``CURRENT`` pointers (and their modification times), so a cache
    keyed on it is invalidated by training and rollback but not by unrelated reruns.
    """
    if path is None:
        return "r0"
    p = Path(path)
    if not p.is_dir():
        return f"missing:{p}"
    digest = hashlib.sha1(str(p.resolve()).encode())
    for pointer in sorted(p.glob("*/CURRENT")):
        try:
            digest.update(pointer.parent.name.encode() + b"=" + pointer.read_bytes())
            digest.update(str(pointer.stat().st_mtime_ns).encode())
        except OSError:
            continue
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Prepared and scored tables


@dataclass(frozen=True)
class PreparedTable:
    """A validated table with the score-independent per-row arrays, computed once.

    Attributes
    ----------
    frame : pandas.DataFrame
    codes : utterance code of each row (order of first appearance).
    first_row : each utterance's first row (for its text, device and reference).
    row_order, row_offsets : rows grouped by utterance: the rows of utterance ``c`` are
        ``row_order[row_offsets[c]:row_offsets[c + 1]]`` (table order within the group).
    utterance_ids : pandas.Index of the utterance ids in code order (O(1) lookup).
    semer, correct : per row, ``None`` without references.
    """

    frame: pd.DataFrame
    codes: NDArray[np.int64]
    first_row: NDArray[np.int64]
    row_order: NDArray[np.int64]
    row_offsets: NDArray[np.int64]
    utterance_ids: pd.Index
    semer: FloatArray | None
    correct: NDArray[np.int64] | None

    @property
    def n_utterances(self) -> int:
        return int(self.first_row.size)

    @property
    def has_references(self) -> bool:
        return self.correct is not None

    def rows_of(self, utterance_id: str) -> NDArray[np.int64]:
        """Row indices of one utterance's hypotheses, in table order."""
        try:
            code = self.utterance_ids.get_loc(utterance_id)
        except KeyError as e:
            raise DataError(f"no utterance with id {utterance_id!r}") from e
        if not isinstance(code, int | np.integer):
            raise DataError(f"utterance id {utterance_id!r} is ambiguous")
        return self.row_order[self.row_offsets[code] : self.row_offsets[code + 1]]


def _take(frame: pd.DataFrame, column: str, rows: NDArray[np.int64]) -> NDArray[np.object_]:
    """``frame[column]`` at ``rows`` as an object array (converting only the rows taken)."""
    return frame[column].iloc[rows].to_numpy(dtype=object)


def _equals(frame: pd.DataFrame, column: str, value: str) -> NDArray[np.bool_]:
    """Boolean mask ``frame[column] == value`` (vectorised on Arrow-backed strings)."""
    return (frame[column] == value).to_numpy(dtype=bool)


def prepare(frame: pd.DataFrame) -> PreparedTable:
    """Compute utterance codes, the row index per utterance and (with references) SemER."""
    codes, _ = pd.factorize(frame["utterance_id"].astype(str))
    codes = codes.astype(np.int64)
    n_utt = int(codes.max()) + 1 if codes.size else 0
    order = np.argsort(codes, kind="stable").astype(np.int64)
    offsets = np.r_[0, np.cumsum(np.bincount(codes, minlength=n_utt))].astype(np.int64)
    first = order[offsets[:-1]]  # stable sort: the first row of each group is its earliest
    ids = pd.Index(_take(frame, "utterance_id", first))
    semer: FloatArray | None = None
    correct: NDArray[np.int64] | None = None
    if has_references(frame):
        semer, correct = table_errors(frame)
    return PreparedTable(frame, codes, first, order, offsets, ids, semer, correct)


def scored_view(prepared: PreparedTable, score: FloatArray | None = None) -> ScoredTable:
    """Attach scores (R0 when ``score`` is None) and compute ranks and top-1 rows.

    SemER and correct are reused from ``prepared``, never recomputed.
    """
    frame = prepared.frame
    s = r0_score(frame) if score is None else np.asarray(score, dtype=np.float64).ravel()
    if s.size != len(frame):
        raise DataError(f"got {s.size} scores for {len(frame)} hypotheses")
    if np.isnan(s).any() or (s < 0).any() or (s > 1).any():
        raise DataError("scores must lie in [0, 1]")
    dscore = frame["domain_score"].to_numpy(dtype=np.float64)
    rank, top = _rank_and_top(prepared, s, dscore)
    return ScoredTable(frame, prepared.codes, s, rank, top, prepared.semer, prepared.correct)


def _rank_and_top(
    prepared: PreparedTable, score: FloatArray, domain_score: FloatArray
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Ranks and top-1 rows with SPEC's tie-break, from one sort.

    Same result as :func:`reranker.ranking.rank_within_utterance` and
    :func:`reranker.ranking.top1_indices` (score, then domain score, descending, then row).
    """
    codes = prepared.codes
    order = np.lexsort((np.arange(codes.size), -domain_score, -score, codes))
    starts = prepared.row_offsets[:-1]
    ranks = np.empty(codes.size, dtype=np.int64)
    ranks[order] = np.arange(codes.size) - np.repeat(starts, np.diff(prepared.row_offsets)) + 1
    return ranks, order[starts].astype(np.int64)


def recalibrate(
    scored: ScoredTable, method: Literal["temperature", "isotonic"], *, seed: int = 0
) -> ScoredTable:
    """The table re-scored by a post-hoc calibrator, cross-fitted over two folds of utterances.

    Each utterance's scores are mapped by a calibrator fitted on the other fold's hypotheses
    (:func:`reranker.calibrators.cross_fit`), so the calibrated curve is judged out of sample.
    """
    from reranker.calibrators import cross_fit

    if scored.correct is None:
        raise DataError(
            "a calibrator needs the reference columns ref_domain, ref_intent, ref_slots"
        )
    score = cross_fit(scored.correct, scored.score, scored.codes, method=method, seed=seed)
    errors = (scored.semer, scored.correct) if scored.semer is not None else None
    return score_table(scored.hypotheses, np.clip(score, 0.0, 1.0), errors=errors)


def dataset_summary(prepared: PreparedTable) -> dict[str, Any]:
    """Counts of a table and its oracle accuracy (share of utterances with a correct hypothesis)."""
    frame = prepared.frame
    out: dict[str, Any] = {
        "n_utterances": prepared.n_utterances,
        "n_hypotheses": len(frame),
        "n_domains": int(frame["domain"].nunique()),
        "n_devices": int(frame["device"].nunique()),
        "domains": sorted(frame["domain"].unique().tolist()),
        "devices": sorted(frame["device"].unique().tolist()),
        "mean_nbest": len(frame) / prepared.n_utterances if prepared.n_utterances else 0.0,
        "oracle_accuracy": None,
    }
    if prepared.correct is not None and prepared.n_utterances:
        any_correct = np.bincount(
            prepared.codes, weights=prepared.correct, minlength=prepared.n_utterances
        )
        out["oracle_accuracy"] = float((any_correct > 0).mean())
    return out


# --------------------------------------------------------------------------------------------
# Utterances


def utterance_table(scored: ScoredTable, *, r0: ScoredTable | None = None) -> pd.DataFrame:
    """One row per utterance: its text, device, reference, top hypothesis and error.

    Columns: ``utterance_id, text, device, reference_domain, reference, top_domain, top_intent,
    top_slots, top_score, top_semer, top_correct, has_correct, misranked, correct_rank,
    n_hypotheses`` and, with ``r0``, ``r0_top_domain, r0_top_correct``. ``misranked`` means a
    correct hypothesis exists but is not top-1; ``correct_rank`` is the best rank of a correct
    hypothesis (0 when none). Rows are in utterance order.
    """
    frame = scored.hypotheses
    top = scored.top
    n_utt = top.size
    counts = np.bincount(scored.codes, minlength=n_utt)
    out = pd.DataFrame(
        {
            "utterance_id": _take(frame, "utterance_id", top),
            "text": _take(frame, "text", top),
            "device": _take(frame, "device", top),
            "top_domain": _take(frame, "domain", top),
            "top_intent": _take(frame, "intent", top),
            "top_slots": _take(frame, "slots", top),
            "top_score": scored.score[top],
            "n_hypotheses": counts,
        }
    )
    if scored.correct is not None and scored.semer is not None:
        out.insert(3, "reference_domain", _take(frame, "ref_domain", top))
        out.insert(
            4,
            "reference",
            _take(frame, "ref_intent", top) + "  " + _take(frame, "ref_slots", top),
        )
        correct_rank = np.where(scored.correct == 1, scored.rank, np.iinfo(np.int64).max)
        best = pd.Series(correct_rank).groupby(scored.codes, sort=True).min().to_numpy()
        has_correct = best < np.iinfo(np.int64).max
        out["top_semer"] = scored.semer[top]
        out["top_correct"] = scored.correct[top].astype(bool)
        out["has_correct"] = has_correct
        out["misranked"] = has_correct & (best > 1)
        out["correct_rank"] = np.where(has_correct, best, 0)
        if r0 is not None and r0.correct is not None:
            out["r0_top_domain"] = _take(frame, "domain", r0.top)
            out["r0_top_correct"] = r0.correct[r0.top].astype(bool)
    return out


def filter_utterances(
    table: pd.DataFrame,
    *,
    search: str = "",
    misranked_only: bool = False,
    domains: Sequence[str] = (),
    devices: Sequence[str] = (),
    semer_range: tuple[float, float] | None = None,
    sort_by: str | None = None,
    descending: bool = False,
    limit: int | None = None,
) -> tuple[pd.DataFrame, int]:
    """Filter and sort an :func:`utterance_table`; returns the (limited) rows and the match count.

    Parameters
    ----------
    search : str
        Case-insensitive literal substring of the text or utterance id.
    misranked_only : bool
        Keep utterances with a correct hypothesis that is not top-1.
    domains : sequence of str
        Keep utterances whose reference domain (or, without references, top domain) is one of
        these; empty keeps all.
    devices : sequence of str
        Keep these devices; empty keeps all.
    semer_range : (low, high), optional
        Keep utterances whose top-1 SemER lies in ``[low, high]`` (``high`` may be ``inf``).
    sort_by : str, optional
        A column name; the sort is stable.
    limit : int, optional
        Return at most this many rows (the count still covers all matches).
    """
    keep = np.ones(len(table), dtype=bool)
    if search.strip():
        needle = search.strip().lower()
        keep &= (
            table["text"].str.lower().str.contains(needle, regex=False).to_numpy()
            | table["utterance_id"].str.lower().str.contains(needle, regex=False).to_numpy()
        )
    if misranked_only:
        if "misranked" not in table.columns:
            raise DataError("the misranked filter needs references")
        keep &= table["misranked"].to_numpy()
    if domains:
        column = "reference_domain" if "reference_domain" in table.columns else "top_domain"
        keep &= table[column].isin(list(domains)).to_numpy()
    if devices:
        keep &= table["device"].isin(list(devices)).to_numpy()
    if semer_range is not None and "top_semer" in table.columns:
        lo, hi = semer_range
        semer = table["top_semer"].to_numpy()
        keep &= (semer >= lo) & (semer <= hi)
    out = table.loc[keep]
    if sort_by:
        if sort_by not in out.columns:
            raise DataError(f"cannot sort by unknown column {sort_by!r}")
        out = out.sort_values(sort_by, ascending=not descending, kind="stable")
    count = len(out)
    if limit is not None:
        out = out.head(limit)
    return out, count


def utterance_detail(
    prepared: PreparedTable,
    scored: ScoredTable,
    utterance_id: str,
    *,
    r0: ScoredTable | None = None,
) -> pd.DataFrame:
    """Every hypothesis of one utterance with its scores, ranks, SemER and correct bit.

    Columns: ``row`` (index in the table), ``domain, intent, slots, domain_score,
    intent_score, slot_score``, ``semer, correct`` (with references), ``r0_score, r0_rank``
    (with ``r0``), ``score, rank``; sorted by ``rank``.
    """
    frame = scored.hypotheses
    rows = prepared.rows_of(utterance_id)
    cols = ["domain", "intent", "slots", "domain_score", "intent_score", "slot_score"]
    out = frame.iloc[rows][cols].reset_index(drop=True)
    out.insert(0, "row", rows)
    if scored.semer is not None and scored.correct is not None:
        out["semer"] = scored.semer[rows]
        out["correct"] = scored.correct[rows].astype(bool)
    if r0 is not None:
        out["r0_score"] = r0.score[rows]
        out["r0_rank"] = r0.rank[rows]
    out["score"] = scored.score[rows]
    out["rank"] = scored.rank[rows]
    return out.sort_values("rank", kind="stable").reset_index(drop=True)


def _qualified_intent(domain: str, intent: str) -> str:
    return intent if intent.startswith(f"{domain}.") else f"{domain}.{intent}"


def alignment_frame(
    ref_domain: str,
    ref_intent: str,
    ref_slots: str,
    hyp_domain: str,
    hyp_intent: str,
    hyp_slots: str,
) -> pd.DataFrame:
    """The minimum edit alignment of a hypothesis to its reference as a table.

    Intents are shown qualified by their domain (``Books.ReadBook``), as SemER compares them
    (a Books intent never equals a Music intent). One row per step: ``operation`` (match,
    substitution, deletion, insertion), ``reference`` and ``hypothesis`` labels (the intent or
    ``type=value``; empty where absent).
    """
    ref_intent = _qualified_intent(ref_domain, ref_intent)
    hyp_intent = _qualified_intent(hyp_domain, hyp_intent)
    steps = align_interpretations(ref_intent, ref_slots, hyp_intent, hyp_slots)
    return pd.DataFrame(
        {
            "operation": [s.op for s in steps],
            "reference": [s.ref or "" for s in steps],
            "hypothesis": [s.hyp or "" for s in steps],
        }
    )


# --------------------------------------------------------------------------------------------
# Features, contributions and what-if


def _check_document(
    document: Mapping[str, Any], domain: str
) -> tuple[list[str], FloatArray, float]:
    try:
        names = [str(n) for n in document["features"]]
        w = np.asarray(document["weights"], dtype=np.float64)
        bias = float(document["bias"])
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"weights of domain {domain!r} are malformed: {e}") from e
    if w.shape != (len(names),):
        raise WeightsError(
            f"weights of domain {domain!r} list {len(names)} features but {w.size} weights"
        )
    return names, w, bias


def hypothesis_contributions(
    rows: pd.DataFrame, documents: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """Each feature's contribution ``value * weight`` to each hypothesis's logit.

    Parameters
    ----------
    rows : pandas.DataFrame
        All hypotheses of one utterance (validated columns), so that within-utterance features
        such as ``rank_in_domain`` see the whole n-best.
    documents : mapping
        Domain -> weights document (SPEC §2). Hypotheses of other domains are scored with R0 and
        get no rows here.

    Returns
    -------
    pandas.DataFrame
        Long format: ``hypothesis`` (position in ``rows``), ``domain``, ``feature``, ``value``,
        ``weight``, ``contribution``; the bias appears as feature ``bias`` with value 1.
    """
    from reranker.features import feature_matrix

    parts = []
    rows = rows.reset_index(drop=True)
    domain = rows["domain"].to_numpy(dtype=object)
    for d, document in documents.items():
        idx = np.flatnonzero(domain == d)
        if idx.size == 0:
            continue
        names, w, bias = _check_document(document, d)
        x = feature_matrix(rows, names)[idx]
        k = len(names) + 1
        values = np.column_stack([x, np.ones(idx.size)])
        weights = np.r_[w, bias]
        parts.append(
            pd.DataFrame(
                {
                    "hypothesis": np.repeat(idx, k),
                    "domain": d,
                    "feature": np.tile([*names, "bias"], idx.size),
                    "value": values.ravel(),
                    "weight": np.tile(weights, idx.size),
                    "contribution": (values * weights).ravel(),
                }
            )
        )
    if not parts:
        return pd.DataFrame(
            columns=["hypothesis", "domain", "feature", "value", "weight", "contribution"]
        )
    return pd.concat(parts, ignore_index=True)


def rescore_utterance(
    rows: pd.DataFrame, documents: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """Score and rank one utterance's hypotheses with the given per-domain weights.

    Domains without a document fall back to R0 (SPEC §4). Returns ``rows`` (reset index) plus
    ``score``, ``rank`` and ``scored_by`` (``"weights"`` or ``"r0"``), sorted by rank with SPEC's
    tie-break (higher domain score, then earlier row).
    """
    from reranker.features import feature_matrix

    rows = rows.reset_index(drop=True)
    score = r0_score(rows)
    source = np.full(len(rows), "r0", dtype=object)
    domain = rows["domain"].to_numpy(dtype=object)
    for d, document in documents.items():
        idx = np.flatnonzero(domain == d)
        if idx.size == 0:
            continue
        names, w, bias = _check_document(document, d)
        score[idx] = expit(feature_matrix(rows, names)[idx] @ w + bias)
        source[idx] = "weights"
    order = np.lexsort((np.arange(len(rows)), -rows["domain_score"].to_numpy(), -score))
    rank = np.empty(len(rows), dtype=np.int64)
    rank[order] = np.arange(1, len(rows) + 1)
    out = rows.assign(score=score, rank=rank, scored_by=source)
    return out.sort_values("rank", kind="stable").reset_index(drop=True)


def device_weights(documents: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """The learned device one-hot weights of each domain: ``domain, device, weight``.

    A positive weight means the domain's hypotheses are pushed up on that device.
    """
    from reranker.features import DEVICE_PREFIX

    records = []
    for d, document in sorted(documents.items()):
        names, w, _ = _check_document(document, d)
        for name, value in zip(names, w, strict=True):
            if name.startswith(DEVICE_PREFIX):
                records.append(
                    {"domain": d, "device": name[len(DEVICE_PREFIX) :], "weight": float(value)}
                )
    return pd.DataFrame(records, columns=["domain", "device", "weight"])


def top_domain_distribution(scored: ScoredTable) -> pd.DataFrame:
    """Per device, how often each domain wins top-1: ``device, domain, count, share``."""
    frame = scored.hypotheses
    top = pd.DataFrame(
        {
            "device": _take(frame, "device", scored.top),
            "domain": _take(frame, "domain", scored.top),
        }
    )
    counts = top.groupby(["device", "domain"], sort=True).size().rename("count").reset_index()
    totals = counts.groupby("device")["count"].transform("sum")
    counts["share"] = counts["count"] / totals
    return counts


# --------------------------------------------------------------------------------------------
# Calibration: slices, curves, metrics with utterance-bootstrap intervals


def slice_masks(
    scored: ScoredTable, *, domain: str | None = None, device: str | None = None
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Hypothesis and utterance masks of a slice, as SPEC §5 defines them.

    A device slice keeps whole utterances. A domain slice D keeps, for the all-hypothesis
    metrics, the hypotheses D produced, and for the top-1 metrics the utterances whose reference
    domain is D (their whole n-best still competes). Both filters may be combined.
    """
    frame = scored.hypotheses
    hyp = np.ones(len(frame), dtype=bool)
    utt = np.ones(scored.top.size, dtype=bool)
    if device is not None:
        hyp &= _equals(frame, "device", device)
        utt &= _take(frame, "device", scored.top) == device
    if domain is not None:
        hyp &= _equals(frame, "domain", domain)
        if "ref_domain" in frame.columns:
            utt &= _take(frame, "ref_domain", scored.top) == domain
        else:
            utt &= _take(frame, "domain", scored.top) == domain
    return hyp, utt


def calibration_sample(
    scored: ScoredTable,
    *,
    population: Population = "all",
    domain: str | None = None,
    device: str | None = None,
) -> tuple[FloatArray, FloatArray, NDArray[np.uint64]]:
    """The ``(correct, score, utterance key)`` arrays entering calibration for a slice.

    The key (:func:`reranker.bootstrap.utterance_keys`) groups rows by utterance and fixes each
    utterance's bootstrap weights.
    """
    if scored.correct is None:
        raise DataError("calibration needs the reference columns ref_domain, ref_intent, ref_slots")
    if population not in ("all", "top1"):
        raise DataError(f"population must be 'all' or 'top1', got {population!r}")
    hyp, utt = slice_masks(scored, domain=domain, device=device)
    if population == "all":
        rows = np.flatnonzero(hyp)
    else:
        rows = scored.top[utt]
    return (
        scored.correct[rows].astype(np.float64),
        scored.score[rows],
        scored.utterance_keys[scored.codes[rows]],
    )


def slice_curve(
    correct: FloatArray,
    score: FloatArray,
    groups: NDArray[np.uint64],
    *,
    n_bins: int = 10,
    strategy: Strategy = "uniform",
    n_boot: int = 0,
    confidence: float = 0.9,
    seed: int = 0,
) -> ReliabilityCurve:
    """Reliability curve of a calibration sample with utterance-bootstrap bands.

    Same statistics as :func:`reranker.reliability_curve`; the bands resample utterances
    through per-utterance bin sums (a sparse product per resample).
    """
    curve = reliability_curve(correct, score, n_bins=n_bins, strategy=strategy)
    if n_boot <= 0 or correct.size == 0:
        return curve
    idx, _ = bin_indices(score, n_bins=n_bins, strategy=strategy)
    g, utt_keys = _compact(groups)
    n_groups = utt_keys.size
    count_m = _group_bin_matrix(g, idx, np.ones_like(score), n_groups, n_bins)
    correct_m = _group_bin_matrix(g, idx, correct, n_groups, n_bins)
    fracs = np.empty((n_boot, n_bins))
    for start, w in weight_chunks(utt_keys, n_boot, seed=seed):
        c = (count_m.T @ w.T).T
        y = (correct_m.T @ w.T).T
        with np.errstate(invalid="ignore", divide="ignore"):
            fracs[start : start + len(w)] = np.where(c > 0, y / np.where(c > 0, c, 1), np.nan)
    low, high = bootstrap_intervals(curve.frac_correct, fracs, confidence=confidence)
    return ReliabilityCurve(
        curve.edges, curve.count, curve.mean_score, curve.frac_correct, low, high
    )


def _compact(groups: NDArray[np.uint64]) -> tuple[NDArray[np.int64], NDArray[np.uint64]]:
    """Dense index of each row's utterance, and the utterance keys in that order."""
    uniques, inverse = np.unique(groups, return_inverse=True)
    return inverse.astype(np.int64), uniques


def _group_bin_matrix(
    groups: NDArray[np.int64],
    bins: NDArray[np.int64],
    values: FloatArray,
    n_groups: int,
    n_bins: int,
) -> sparse.csr_matrix:
    return sparse.csr_matrix(sparse.coo_matrix((values, (groups, bins)), shape=(n_groups, n_bins)))


@lru_cache(maxsize=2)
def _kernel_stack(grid_size: int, n_sigma: int) -> tuple[FloatArray, NDArray[np.float32]]:
    """Reflected Gaussian kernels on a log-spaced bandwidth grid, for bootstrapped smooth ECE."""
    sigmas = np.geomspace(1e-3, 1.0, n_sigma)
    centers = (np.arange(grid_size) + 0.5) / grid_size
    diff = centers[:, None] - centers[None, :]
    stack = np.empty((n_sigma, grid_size, grid_size), dtype=np.float32)
    for i, sigma in enumerate(sigmas):
        total = np.zeros_like(diff)
        for k in range(-2, 3):
            total += np.exp(-0.5 * ((diff - 2 * k) / sigma) ** 2)
            total += np.exp(-0.5 * ((centers[:, None] + centers[None, :] - 2 * k) / sigma) ** 2)
        stack[i] = total / (sigma * np.sqrt(2 * np.pi))
    return sigmas, stack


def _smooth_ece_on_grid(residuals: FloatArray, grid_size: int, n_sigma: int) -> FloatArray:
    """Approximate smooth ECE (fixed point of smECE_σ = σ) for each row of fine-bin residuals."""
    sigmas, stack = _kernel_stack(grid_size, n_sigma)
    # values[b, i] = mean_t |(K_σi @ r_b)(t)|
    dens = np.einsum("sij,bj->bsi", stack, residuals.astype(np.float32), optimize=True)
    values = np.abs(dens).mean(axis=2).astype(np.float64)
    out = np.empty(values.shape[0])
    for b, v in enumerate(values):
        # v decreases in σ; find where v(σ) - σ changes sign and interpolate in log σ.
        diff = v - sigmas
        cross = np.flatnonzero(diff <= 0)
        if cross.size == 0:
            out[b] = v[-1]
        elif cross[0] == 0:
            out[b] = v[0]
        else:
            i = cross[0]
            t = diff[i - 1] / (diff[i - 1] - diff[i])
            out[b] = v[i - 1] + t * (v[i] - v[i - 1])
    return out


def calibration_metrics(
    scored: ScoredTable,
    *,
    n_bins: int = 10,
    strategy: Strategy = "uniform",
    population: Population = "all",
    domain: str | None = None,
    device: str | None = None,
    n_boot: int = 0,
    confidence: float = 0.9,
    seed: int = 0,
    smooth: bool = True,
) -> dict[str, dict[str, float | None]]:
    """ECE, MCE, Brier, smooth ECE, top-1 ECE, SemER and IE of a slice, with bootstrap intervals.

    Returns ``{metric: {"value", "low", "high"}}`` plus ``n_utterances`` and ``n_hypotheses``
    (``value`` only). Point values are exact (the definitions of SPEC §5 on the raw scores);
    intervals come from ``n_boot`` resamples of utterances. In a resample the bin edges stay
    those of the full sample (equal-mass bins are not re-cut), and smooth ECE is evaluated on a
    log-spaced bandwidth grid.
    """
    if scored.correct is None or scored.semer is None:
        raise DataError("calibration needs the reference columns ref_domain, ref_intent, ref_slots")
    y, s, g = calibration_sample(scored, population=population, domain=domain, device=device)
    _, utt = slice_masks(scored, domain=domain, device=device)
    top_rows = scored.top[utt]
    y_top = scored.correct[top_rows].astype(np.float64)
    s_top = scored.score[top_rows]
    semer_top = scored.semer[top_rows]

    def nan_none(x: float) -> float | None:
        return None if np.isnan(x) else float(x)

    values: dict[str, float | None] = {
        "ece": nan_none(expected_calibration_error(y, s, n_bins=n_bins, strategy=strategy)),
        "mce": nan_none(maximum_calibration_error(y, s, n_bins=n_bins, strategy=strategy)),
        "brier": nan_none(brier_loss(y, s)),
        "smooth_ece": nan_none(smooth_ece(y, s)) if smooth and y.size else None,
        "ece_top1": nan_none(
            expected_calibration_error(y_top, s_top, n_bins=n_bins, strategy=strategy)
        ),
        "top1_semer": float(semer_top.mean()) if semer_top.size else None,
        "top1_ie": float(1.0 - y_top.mean()) if y_top.size else None,
    }
    out: dict[str, dict[str, float | None]] = {
        k: {"value": v, "low": None, "high": None} for k, v in values.items()
    }
    out["n_utterances"] = {"value": float(top_rows.size), "low": None, "high": None}
    out["n_hypotheses"] = {"value": float(y.size), "low": None, "high": None}
    if n_boot <= 0 or y.size == 0 or top_rows.size == 0:
        return out
    samples = _bootstrap_metrics(
        y, s, g, y_top, s_top, semer_top, scored.utterance_keys[scored.codes[top_rows]],
        n_bins=n_bins, strategy=strategy, n_boot=n_boot, seed=seed, smooth=smooth,
    )  # fmt: skip
    for key, col in samples.items():
        estimate = values[key]
        if estimate is not None:
            lo, hi = bootstrap_interval(estimate, col, confidence=confidence)
            if np.isfinite(lo):
                out[key]["low"], out[key]["high"] = lo, hi
    return out


def _bootstrap_metrics(
    y: FloatArray,
    s: FloatArray,
    g: NDArray[np.uint64],
    y_top: FloatArray,
    s_top: FloatArray,
    semer_top: FloatArray,
    g_top: NDArray[np.uint64],
    *,
    n_bins: int,
    strategy: Strategy,
    n_boot: int,
    seed: int,
    smooth: bool,
) -> dict[str, FloatArray]:
    # One utterance index space covering both samples, so a resample weighs them consistently.
    inverse, utt_keys = _compact(np.r_[g, g_top])
    n_groups = int(utt_keys.size)
    gu, gt = inverse[: g.size], inverse[g.size :]
    idx, _ = bin_indices(s, n_bins=n_bins, strategy=strategy)
    idx_top, _ = bin_indices(s_top, n_bins=n_bins, strategy=strategy)
    grid = 200
    fine = np.minimum((s * grid).astype(np.int64), grid - 1)
    per_bin = [_group_bin_matrix(gu, idx, v, n_groups, n_bins) for v in (np.ones_like(s), s, y)]
    per_bin_top = [
        _group_bin_matrix(gt, idx_top, v, n_groups, n_bins)
        for v in (np.ones_like(s_top), s_top, y_top)
    ]
    sq = np.bincount(gu, weights=(s - y) ** 2, minlength=n_groups)
    n_u = np.bincount(gu, minlength=n_groups).astype(np.float64)
    top_semer = np.bincount(gt, weights=semer_top, minlength=n_groups)
    top_wrong = np.bincount(gt, weights=1.0 - y_top, minlength=n_groups)
    top_n = np.bincount(gt, minlength=n_groups).astype(np.float64)
    resid_m = _group_bin_matrix(gu, fine, y - s, n_groups, grid) if smooth else None
    keys = ("ece", "mce", "brier", "ece_top1", "top1_semer", "top1_ie", "smooth_ece")
    out = {k: np.full(n_boot, np.nan) for k in keys}
    for start, w in weight_chunks(utt_keys, n_boot, seed=seed):
        sl = slice(start, start + len(w))
        c, ss, sy = (np.asarray((m.T @ w.T).T) for m in per_bin)
        ct, sst, syt = (np.asarray((m.T @ w.T).T) for m in per_bin_top)
        total = c.sum(axis=1)
        total_top = ct.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.abs(sy - ss)
            out["ece"][sl] = gap.sum(axis=1) / total
            out["mce"][sl] = np.nanmax(np.where(c > 0, gap / np.where(c > 0, c, 1), np.nan), 1)
            out["brier"][sl] = (w @ sq) / (w @ n_u)
            out["ece_top1"][sl] = np.abs(syt - sst).sum(axis=1) / total_top
            out["top1_semer"][sl] = (w @ top_semer) / (w @ top_n)
            out["top1_ie"][sl] = (w @ top_wrong) / (w @ top_n)
            if resid_m is not None:
                resid = np.asarray((resid_m.T @ w.T).T) / total[:, None]
                out["smooth_ece"][sl] = _smooth_ece_on_grid(resid, grid, 48)
    return out


def smooth_calibration(
    scored: ScoredTable,
    *,
    population: Population = "all",
    domain: str | None = None,
    device: str | None = None,
    n_boot: int = 0,
    confidence: float = 0.9,
    seed: int = 0,
) -> dict[str, float | None]:
    """Smooth ECE of a slice with its utterance-bootstrap interval: ``{"value", "low", "high"}``.

    It does not depend on any binning, so callers cache it apart from the binned metrics. The
    value is exact (:func:`reranker.smooth_ece`); resamples are evaluated on a log-spaced
    bandwidth grid over 200 fine bins.
    """
    y, s, g = calibration_sample(scored, population=population, domain=domain, device=device)
    out: dict[str, float | None] = {"value": None, "low": None, "high": None}
    if y.size == 0:
        return out
    value = float(smooth_ece(y, s))
    out["value"] = value
    if n_boot <= 0:
        return out
    grid = 200
    gu, utt_keys = _compact(g)
    n_groups = utt_keys.size
    fine = np.minimum((s * grid).astype(np.int64), grid - 1)
    resid_m = _group_bin_matrix(gu, fine, y - s, n_groups, grid)
    n_u = np.bincount(gu, minlength=n_groups).astype(np.float64)
    values = np.empty(n_boot)
    for start, w in weight_chunks(utt_keys, n_boot, seed=seed):
        resid = np.asarray((resid_m.T @ w.T).T) / (w @ n_u)[:, None]
        values[start : start + len(w)] = _smooth_ece_on_grid(resid, grid, 48)
    out["low"], out["high"] = bootstrap_interval(value, values, confidence=confidence)
    return out


def metrics_frame(metrics: Mapping[str, Mapping[str, Mapping[str, float | None]]]) -> pd.DataFrame:
    """Flatten ``{loss: calibration_metrics(...)}`` into one row per loss for display and CSV."""
    records = []
    for loss, by_metric in metrics.items():
        row: dict[str, Any] = {"loss": loss.upper()}
        for key, v in by_metric.items():
            row[key] = v["value"]
            if v["low"] is not None:
                row[f"{key}_low"] = v["low"]
                row[f"{key}_high"] = v["high"]
        records.append(row)
    frame = pd.DataFrame(records)
    for col in ("n_utterances", "n_hypotheses"):
        if col in frame.columns:
            frame[col] = frame[col].astype("Int64")
    return frame


def safe_file_name(text: str) -> str:
    """A file-name-safe slug of ``text`` for downloads."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")
    return slug or "data"


# --------------------------------------------------------------------------------------------
# Weights registries


def registry_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per domain of a weights registry: current version, versions and training facts.

    Columns: ``domain, current, versions, loss, trained_at, n_hypotheses, converged,
    n_iter, objective``.
    """
    from reranker.registry import WeightsRegistry

    registry = WeightsRegistry(path)
    records = []
    for d in registry.domains():
        current = registry.current_version(d)
        doc = registry.load(d) if current is not None else {}
        m = doc.get("metrics", {})
        records.append(
            {
                "domain": d,
                "current": current,
                "versions": ", ".join(f"v{v}" for v in registry.versions(d)),
                "loss": str(doc.get("loss", "")).upper(),
                "trained_at": doc.get("trained_at"),
                "n_hypotheses": doc.get("training_data", {}).get("n_hypotheses"),
                "converged": m.get("converged"),
                "n_iter": m.get("n_iter"),
                "objective": m.get("objective"),
            }
        )
    columns = [
        "domain", "current", "versions", "loss", "trained_at",
        "n_hypotheses", "converged", "n_iter", "objective",
    ]  # fmt: skip
    return pd.DataFrame(records, columns=columns)


def compare_documents(
    a: Mapping[str, Any], b: Mapping[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two weights documents side by side: their weights and their recorded metrics/options.

    Returns ``(weights, facts)``: ``weights`` has ``feature, a, b, change`` over the union of
    both feature lists (bias last; a feature one version lacks is ``nan``); ``facts`` has
    ``item, a, b`` for the version, loss, training time and data, every metric and option.
    """

    def as_map(doc: Mapping[str, Any]) -> dict[str, float]:
        out = {str(n): float(w) for n, w in zip(doc["features"], doc["weights"], strict=True)}
        out["bias"] = float(doc["bias"])
        return out

    wa, wb = as_map(a), as_map(b)
    names = [*dict.fromkeys([*a["features"], *b["features"]]), "bias"]
    weights = pd.DataFrame(
        {
            "feature": names,
            "a": [wa.get(n, np.nan) for n in names],
            "b": [wb.get(n, np.nan) for n in names],
        }
    )
    weights["change"] = weights["b"] - weights["a"]

    def facts_of(doc: Mapping[str, Any]) -> dict[str, Any]:
        f: dict[str, Any] = {
            "version": doc.get("version"),
            "loss": doc.get("loss"),
            "trained_at": doc.get("trained_at"),
        }
        for group in ("training_data", "metrics", "options"):
            for k, v in (doc.get(group) or {}).items():
                f[f"{group}.{k}"] = v
        return f

    fa, fb = facts_of(a), facts_of(b)
    items = list(dict.fromkeys([*fa, *fb]))
    facts = pd.DataFrame(
        {
            "item": items,
            "a": [str(fa.get(k, "")) for k in items],
            "b": [str(fb.get(k, "")) for k in items],
        }
    )
    return weights, facts
