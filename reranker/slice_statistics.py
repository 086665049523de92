"""Calibration statistics of every slice of a partitioned dataset, computed once and cached.

A dataset of tens of millions of hypotheses is not loaded to draw a reliability curve: one pass
of the partitioned engine (:mod:`reranker.regroup` buckets of whole utterances on an executor)
reduces it, for each scoring (R0 and every loss with weights), to the mergeable sums of
:mod:`reranker.evaluation_stats` taken at :data:`BASE_BINS` equal-width bins, for every slice
(all data, each domain, each device, each domain on each device), together with the same sums
for :data:`N_BOOT` Poisson bootstrap resamples of the utterances (:mod:`reranker.bootstrap`:
identical however the data are partitioned). Any bin count dividing :data:`BASE_BINS` is then
exact (bins merge), and every metric, curve and interval of a slice costs microseconds.

The same pass writes one row per utterance (:func:`reranker.utterances.utterance_table`) as
Parquet, and the search index :mod:`reranker.utterance_index` builds over them.

Results live in a cache directory keyed by a fingerprint of the parts (path, size, mtime) and
of the weights documents; each entry is written to a temporary directory and renamed into place,
so a reader never sees half an entry. Nothing is pickled: sums in ``.npz`` (read with
``allow_pickle=False``), names in JSON, utterances in Parquet.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse

from reranker.errors import DataError
from reranker.evaluation_stats import EvaluationStats
from reranker.partitioned import PartitionedDataset, open_dataset

__all__ = [
    "BASE_BINS",
    "BIN_CHOICES",
    "BOOT_CHOICES",
    "N_BOOT",
    "SliceStatistics",
    "compute_statistics",
    "dataset_fingerprint",
    "entry_directory",
    "entry_key",
    "load_statistics",
]

FloatArray = NDArray[np.float64]
BASE_BINS = 120
"""Equal-width bins the sums are taken at; every divisor of it is an exact coarser binning."""
BIN_CHOICES = tuple(n for n in range(2, 51) if BASE_BINS % n == 0)
N_BOOT = 100
"""Bootstrap resamples stored; the first k of them are exactly a k-resample bootstrap."""
BOOT_CHOICES = (0, 50, N_BOOT)
FORMAT = 3
_FIXED = 6
WIDTH = _FIXED + 6 * BASE_BINS
ALL = ""
"""The name standing for "every domain" or "every device" in a slice key."""


def dataset_fingerprint(dataset: PartitionedDataset) -> str:
    """A digest of every part's relative path, size and modification time."""
    digest = hashlib.sha256()
    for part in dataset.parts:
        stat = os.stat(part.path)
        digest.update(f"{part.relative}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def entry_key(data_fingerprint: str, documents: Mapping[str, Any] | None) -> str:
    """The cache key of one scoring of one dataset (``documents=None``: R0)."""
    text = json.dumps(documents, sort_keys=True, default=str) if documents is not None else "r0"
    payload = f"{FORMAT}|{BASE_BINS}|{N_BOOT}|{data_fingerprint}|{text}"
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def cache_base(spec: str | os.PathLike[str]) -> Path:
    """Where a dataset's entries live: ``.reranker-cache/`` beside it when that is writable,
    else ``$RERANKER_CACHE`` (default ``~/.cache/reranker``)."""
    beside = Path(os.path.abspath(os.fspath(spec))).parent / ".reranker-cache"
    parent = beside if beside.is_dir() else beside.parent
    if os.access(parent, os.W_OK):
        return beside
    return Path(os.environ.get("RERANKER_CACHE") or Path.home() / ".cache" / "reranker")


def entry_directory(spec: str | os.PathLike[str], weights: str | os.PathLike[str] | None) -> Path:
    """The cache entry of one scoring (``weights=None``: R0) of a partitioned dataset."""
    from reranker.scoring import load_documents

    dataset = open_dataset(spec)
    documents = None if weights is None else load_documents(weights)
    return cache_base(spec) / entry_key(dataset_fingerprint(dataset), documents)


@dataclass(frozen=True)
class SliceStatistics:
    """The sums of every slice of one scoring of a dataset.

    Attributes
    ----------
    slices : tuple of (domain, device)
        ``("", "")`` is all data; ``(d, "")`` a domain, ``("", v)`` a device, ``(d, v)`` both.
    sums : array (n_slices, WIDTH)
        :mod:`reranker.evaluation_stats` statistics vectors at :data:`BASE_BINS` bins.
    replicates : array (N_BOOT, n_slices, WIDTH)
        The same sums under each bootstrap resample.
    summary : dict
        Counts, domains, devices and oracle accuracy (:func:`reranker.tables.dataset_summary`).
    top_domains : DataFrame
        ``device, domain, count, share``: how often each domain wins top-1 on each device.
    sources : dict
        Scorer of each domain (``"r0"`` or ``"<loss> v<version>"``).
    """

    slices: tuple[tuple[str, str], ...]
    sums: FloatArray
    replicates: FloatArray
    summary: dict[str, Any]
    top_domains: pd.DataFrame
    sources: dict[str, str]

    def index(self, domain: str | None, device: str | None) -> int | None:
        """Row of a slice, or ``None`` when the slice holds nothing."""
        key = (domain or ALL, device or ALL)
        try:
            return self.slices.index(key)
        except ValueError:
            return None

    def evaluation(
        self, domain: str | None, device: str | None, *, n_bins: int, n_boot: int
    ) -> EvaluationStats | None:
        """The slice as :class:`~reranker.evaluation_stats.EvaluationStats` at ``n_bins`` bins."""
        if n_bins not in BIN_CHOICES:
            raise DataError(f"bins must be one of {', '.join(map(str, BIN_CHOICES))} here")
        if not 0 <= n_boot <= N_BOOT:
            raise DataError(f"at most {N_BOOT} bootstrap resamples are stored")
        k = self.index(domain, device)
        if k is None:
            return None
        reps = coarsen(self.replicates[:n_boot, k], n_bins) if n_boot else None
        return EvaluationStats(n_bins, "uniform", coarsen(self.sums[k], n_bins), replicates=reps)


def coarsen(v: FloatArray, n_bins: int) -> FloatArray:
    """Statistics vectors at :data:`BASE_BINS` bins merged into ``n_bins`` (a divisor)."""
    v = np.atleast_2d(v)
    step = BASE_BINS // n_bins
    blocks = v[:, _FIXED:].reshape(len(v), 6, n_bins, step).sum(axis=3)
    out = np.concatenate([v[:, :_FIXED], blocks.reshape(len(v), 6 * n_bins)], axis=1)
    return out if out.shape[0] > 1 else out[0]


def _fine_bins(score: FloatArray) -> NDArray[np.int64]:
    return np.clip((score * BASE_BINS).astype(np.int64), 0, BASE_BINS - 1)


def _slice_cells(t: Any) -> tuple[list[str], list[str], NDArray[np.int64], NDArray[np.int64]]:
    """Domain and device names, and the (domain, device) cell of every hypothesis (its own
    domain) and of every top-1 row (the reference domain)."""
    frame = t.hypotheses
    dom = frame["domain"].astype(str).to_numpy()
    ref = frame["ref_domain"].astype(str).to_numpy()[t.top]
    dev = frame["device"].astype(str).to_numpy()
    dom_codes, dom_names = pd.factorize(np.concatenate([dom, ref]))
    dev_codes, dev_names = pd.factorize(dev)
    n_dev = len(dev_names)
    hyp_cell = dom_codes[: len(dom)] * n_dev + dev_codes
    top_cell = dom_codes[len(dom) :] * n_dev + dev_codes[t.top]
    return [str(d) for d in dom_names], [str(v) for v in dev_names], hyp_cell, top_cell


def _slice_names(domains: list[str], devices: list[str]) -> list[tuple[str, str]]:
    """All data, each domain, each device, each domain on each device (the order of
    :func:`_every_slice`)."""
    names = [(ALL, ALL)] + [(d, ALL) for d in domains] + [(ALL, v) for v in devices]
    return names + [(d, v) for d in domains for v in devices]


def _every_slice(cells: FloatArray, n_dom: int, n_dev: int) -> FloatArray:
    """Sums of every slice ``(k, n_slices, WIDTH)`` from the sums of every (domain, device) cell
    ``(k, n_dom * n_dev * WIDTH)``: a domain is the sum of its cells, a device likewise, all
    data the sum of every cell."""
    c = cells.reshape(len(cells), n_dom, n_dev, WIDTH)
    return np.concatenate(
        [c.sum(axis=(1, 2))[:, None], c.sum(axis=2), c.sum(axis=1), c.reshape(len(c), -1, WIDTH)],
        axis=1,
    )


def _per_utterance(t: Any) -> tuple[list[str], list[str], sparse.csr_matrix]:
    """``(domains, devices, M)``: row u of ``M`` holds utterance u's contribution to the sums
    of every (domain, device) cell (the coarser slices are sums of cells)."""
    domains, devices, hyp_cell, top_cell = _slice_cells(t)
    y = t.correct.astype(np.float64)
    s = t.score
    top = t.top
    n_utt = top.size
    hb, tb = _fine_bins(s), _fine_bins(s[top])
    b0, t0 = _FIXED, _FIXED + 3 * BASE_BINS
    hyp_cols = [np.full(s.size, 1), np.full(s.size, 4), b0 + hb, b0 + BASE_BINS + hb]
    hyp_cols.append(b0 + 2 * BASE_BINS + hb)
    hyp_vals = [np.ones(s.size), (s - y) ** 2, np.ones(s.size), s, y]
    yt, st = y[top], s[top]
    top_cols = [np.full(n_utt, 0), np.full(n_utt, 2), np.full(n_utt, 3), np.full(n_utt, 5)]
    top_cols += [t0 + tb, t0 + BASE_BINS + tb, t0 + 2 * BASE_BINS + tb]
    top_vals = [np.ones(n_utt), t.semer[top], 1.0 - yt, (st - yt) ** 2, np.ones(n_utt), st, yt]
    shape = (n_utt, len(domains) * len(devices) * WIDTH)
    utt = np.arange(n_utt)
    rows = np.concatenate([np.tile(t.codes, len(hyp_cols)), np.tile(utt, len(top_cols))])
    cols = np.concatenate(
        [hyp_cell * WIDTH + c for c in hyp_cols] + [top_cell * WIDTH + c for c in top_cols]
    )
    vals = np.concatenate(hyp_vals + top_vals)
    return domains, devices, sparse.csr_matrix((vals, (rows, cols)), shape=shape)


def bucket_statistics(t: Any, *, seed: int = 0) -> dict[str, Any]:
    """The sums and resampled sums of one scored bucket of whole utterances, by slice name."""
    from reranker.bootstrap import weight_chunks
    from reranker.utterances import top_domain_distribution

    domains, devices, m = _per_utterance(t)
    n_dom, n_dev = len(domains), len(devices)
    sums = _every_slice(np.asarray(m.sum(axis=0)), n_dom, n_dev)[0]
    cells = np.empty((N_BOOT, m.shape[1]))
    transposed = m.T.tocsr()
    for start, w in weight_chunks(t.utterance_keys, N_BOOT, seed=seed):
        cells[start : start + len(w)] = (transposed @ w.T).T
    any_correct = np.bincount(t.codes, weights=t.correct, minlength=t.top.size) > 0
    frame = t.hypotheses
    return {
        "slices": _slice_names(domains, devices),
        "sums": sums,
        "replicates": _every_slice(cells, n_dom, n_dev),
        "oracle": int(any_correct.sum()),
        "domains": {str(d) for d in frame["domain"].unique()},
        "devices": {str(d) for d in frame["device"].unique()},
        "top_domains": top_domain_distribution(t)[["device", "domain", "count"]],
    }


def merge_buckets(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Add up bucket statistics (slices matched by name)."""
    names: dict[tuple[str, str], int] = {}
    for p in parts:
        for name in p["slices"]:
            names.setdefault(tuple(name), len(names))
    sums = np.zeros((len(names), WIDTH))
    reps = np.zeros((N_BOOT, len(names), WIDTH))
    for p in parts:
        rows = [names[tuple(n)] for n in p["slices"]]
        sums[rows] += p["sums"]
        reps[:, rows] += p["replicates"]
    top = pd.concat([p["top_domains"] for p in parts], ignore_index=True)
    return {
        "slices": list(names),
        "sums": sums,
        "replicates": reps,
        "oracle": sum(p["oracle"] for p in parts),
        "domains": sorted(set().union(*(p["domains"] for p in parts))),
        "devices": sorted(set().union(*(p["devices"] for p in parts))),
        "top_domains": top.groupby(["device", "domain"], sort=True)["count"].sum().reset_index(),
    }


def _summary(merged: Mapping[str, Any]) -> dict[str, Any]:
    overall = merged["sums"][merged["slices"].index((ALL, ALL))]
    n_utt, n_hyp = int(np.rint(overall[0])), int(np.rint(overall[1]))
    return {
        "n_utterances": n_utt,
        "n_hypotheses": n_hyp,
        "n_domains": len(merged["domains"]),
        "n_devices": len(merged["devices"]),
        "domains": merged["domains"],
        "devices": merged["devices"],
        "mean_nbest": n_hyp / n_utt if n_utt else 0.0,
        "oracle_accuracy": merged["oracle"] / n_utt if n_utt else None,
    }


def write_entry(
    directory: Path, merged: Mapping[str, Any], sources: Mapping[str, str], utterances: Path
) -> None:
    """Publish one cache entry atomically: build it in a temporary sibling, then rename it."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        np.savez(tmp / "sums.npz", sums=merged["sums"], replicates=merged["replicates"])
        top = merged["top_domains"]
        meta = {
            "format": FORMAT,
            "slices": [list(s) for s in merged["slices"]],
            "summary": _summary(merged),
            "sources": dict(sources),
            "top_domains": {c: top[c].tolist() for c in ("device", "domain", "count")},
        }
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        shutil.move(str(utterances), tmp / "utterances")
        try:
            os.replace(tmp, directory)
        except OSError:  # another process published the same entry first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_statistics(directory: str | os.PathLike[str]) -> SliceStatistics:
    """Read a cache entry written by :func:`compute_statistics` (no pickle is ever loaded)."""
    path = Path(directory)
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        with np.load(path / "sums.npz", allow_pickle=False) as data:
            sums, reps = data["sums"], data["replicates"]
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{path}: unreadable statistics ({e})") from e
    top = pd.DataFrame(meta["top_domains"])
    totals = top.groupby("device")["count"].transform("sum") if len(top) else top["count"]
    top["share"] = top["count"] / totals
    return SliceStatistics(
        tuple((str(a), str(b)) for a, b in meta["slices"]),
        sums,
        reps,
        meta["summary"],
        top,
        dict(meta["sources"]),
    )


Progress = Callable[[str, int, int], None]


def compute_statistics(
    spec: str | os.PathLike[str] | PartitionedDataset,
    scorings: Mapping[str, Path],
    *,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> None:
    """Compute the missing cache entries of a dataset in one pass of the partitioned engine.

    ``scorings`` maps a weights registry directory (or ``"r0"``) to the entry directory its
    statistics go to; entries that already exist are skipped (their utterance index is built
    if they lack one).
    """
    from reranker.slice_statistics_engine import run_pass
    from reranker.utterance_index import ensure_index

    todo = {w: d for w, d in scorings.items() if not (Path(d) / "meta.json").is_file()}
    for directory in set(map(Path, scorings.values())) - set(map(Path, todo.values())):
        ensure_index(directory / "utterances")
    if todo:
        dataset = spec if isinstance(spec, PartitionedDataset) else open_dataset(spec)
        run_pass(dataset, todo, jobs=jobs, progress=progress)
