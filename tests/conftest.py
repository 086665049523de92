"""Shared fixtures: the conformance files and builders of realistic hypothesis tables."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from reranker.features import default_feature_names

DATA = Path(__file__).parent / "data"
CONFORMANCE = DATA / "conformance"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def conformance_dir() -> Path:
    return CONFORMANCE


@pytest.fixture(scope="session")
def dask_scheduler() -> Iterator[str]:
    """Address of a small in-process Dask cluster (two single-threaded workers)."""
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster:
        yield cluster.scheduler_address


def reranker_cli() -> list[str]:
    """The installed console script (falls back to ``python -m`` when run outside the venv)."""
    exe = Path(sys.executable).with_name("reranker")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("reranker")
    if found:
        return [found]
    return [sys.executable, "-c", "from reranker.cli import main; main()"]


def make_table(n_utt: int = 50, seed: int = 0, *, refs: bool = True) -> pd.DataFrame:
    """A random but valid hypothesis table: 1-4 hypotheses per utterance, 3 domains, 3 devices."""
    rng = np.random.default_rng(seed)
    domains = ["Music", "Video", "Books"]
    rows = []
    for u in range(n_utt):
        ref_d = domains[rng.integers(3)]
        ref_i = f"{ref_d}.Play{rng.integers(2)}"
        ref_s = "play [title : x]" if rng.random() < 0.7 else "play x"
        device = ["echo_dot", "echo_show", "fire_tv"][rng.integers(3)]
        seen = set()
        for _ in range(rng.integers(1, 5)):
            d = domains[rng.integers(3)]
            i = f"{d}.Play{rng.integers(2)}"
            s = ["play [title : x]", "play x", "[a : play] [title : X]", ""][rng.integers(4)]
            if (d, i, s) in seen:
                continue
            seen.add((d, i, s))
            row = {
                "utterance_id": f"u{u}",
                "text": "play x",
                "device": device,
                "domain": d,
                "intent": i,
                "slots": s,
                "domain_score": round(float(rng.random()), 3),
                "intent_score": round(float(rng.random()), 3),
                "slot_score": round(float(rng.random()), 3),
            }
            if refs:
                row.update(ref_domain=ref_d, ref_intent=ref_i, ref_slots=ref_s)
            rows.append(row)
    return pd.DataFrame(rows)


def make_document(
    domain: str, devices: list[str], seed: int, *, loss: str = "r2"
) -> dict[str, Any]:
    """A valid weights document over the default features of ``devices``, random weights."""
    rng = np.random.default_rng(seed)
    names = default_feature_names(devices)
    return {
        "domain": domain,
        "loss": loss,
        "version": None,
        "features": names,
        "weights": [float(x) for x in rng.normal(0, 1, len(names))],
        "bias": float(rng.normal()),
        "trained_at": "2026-01-01T00:00:00+00:00",
        "training_data": {"sha256": "0" * 64, "n_utterances": 1, "n_hypotheses": 1},
        "metrics": {"converged": True, "n_iter": 3, "objective": 0.5},
        "options": {"l2": 0.001},
    }
