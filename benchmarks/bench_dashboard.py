"""Dashboard interactions on one million hypotheses: cached views (cold, warm) versus naive recompute.

What a user does, timed two ways:

1. **Function level** (``dashboard/data_cache.py``, the functions the pages call):
   - a *filter change* on the Utterances page (misranked only + a device + a SemER range);
   - a *loss switch* on the Calibration page (R0 -> R2: reliability curve with 100 bootstrap
     resamples, metrics with intervals);
   each cold (first time those widget values are seen: the per-loss work is computed once),
   warm (the same values again: served from the cache), and naive (what a page without caching
   recomputes on every rerun: read the file, SemER, score, then the view).
2. **Page level** (Streamlit's AppTest running the real app in-process): the wall time of the
   script rerun after clicking a filter or the loss radio, cold and warm. The browser's drawing
   time comes on top of this and does not grow with the table (at most 500 rows and a few
   curves are sent).

Usage: ``python benchmarks/bench_dashboard.py [--rows 1000000] [--keep DIR]``.
The table is :func:`reranker.synthetic.synthetic_hypotheses` (devices, several domains, real
SemER variety); R2 weights are trained on a 10% sample of it.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
N_BOOT = 100


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def build(rows: int, root: Path) -> Path:
    """Write ``root/bench/hypotheses/test.parquet`` (about ``rows`` rows) and R2 weights."""
    import numpy as np

    from reranker.hypotheses import write_table
    from reranker.synthetic import synthetic_hypotheses
    from reranker.training import train_domains

    dataset = root / "bench"
    (dataset / "hypotheses").mkdir(parents=True, exist_ok=True)
    path = dataset / "hypotheses" / "test.parquet"
    if not path.exists():
        per_utt = len(synthetic_hypotheses(2000, seed=1)) / 2000
        table = synthetic_hypotheses(int(rows / per_utt), seed=0)
        write_table(table, path)
        ids = table["utterance_id"].unique()
        sample = table[
            table["utterance_id"].isin(np.random.default_rng(0).choice(ids, len(ids) // 10))
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            train_domains(sample, loss="r2", out=dataset / "weights" / "r2")
    return path


def function_level(path: Path) -> list[tuple[str, float, float, float]]:
    import math

    from dashboard import data_cache as cache
    from dashboard.names import registry_fingerprint, table_token
    from reranker import calibration_slices, tables, utterances
    from reranker.hypotheses import read_hypotheses
    from reranker.scoring import score_hypotheses

    token = table_token(path)
    weights = str(path.parent.parent / "weights" / "r2")
    fp = registry_fingerprint(weights)
    r0 = (token, "r0", None, "r0")
    r2 = (token, "r2", weights, fp)
    load_s, prep = timed(lambda: cache.prepared(token))
    print(f"first load (read, validate, SemER of {len(prep.frame):,} hypotheses): {load_s:.2f} s")
    # The page as first opened: R0, unfiltered, default calibration view.
    cache.filtered_utterances(*r0, "", False, (), (), (0.0, math.inf), "top_semer", True, 500)
    cache.curve(*r0, 10, "uniform", "all", None, None, N_BOOT)
    cache.metrics(*r0, 10, "uniform", "all", None, None, N_BOOT)

    rows = []
    flt = ("", True, (), ("fire_tv",), (0.5, math.inf), "top_score", True, 500)
    cold, (_, count) = timed(lambda: cache.filtered_utterances(*r0, *flt))
    warm, _ = timed(lambda: cache.filtered_utterances(*r0, *flt))

    def naive_filter() -> Any:
        table = read_hypotheses(path)
        scored = tables.scored_view(tables.prepare(table))
        return utterances.filter_utterances(
            utterances.utterance_table(scored), misranked_only=True, devices=["fire_tv"],
            semer_range=(0.5, math.inf), sort_by="top_score", descending=True, limit=500,
        )  # fmt: skip

    naive, _ = timed(naive_filter)
    rows.append(("filter change (Utterances)", cold, warm, naive))
    print(f"  filter matched {count:,} utterances")

    def switch() -> Any:
        return (
            cache.curve(*r2, 10, "uniform", "all", None, None, N_BOOT),
            cache.metrics(*r2, 10, "uniform", "all", None, None, N_BOOT),
        )

    cold, _ = timed(switch)
    warm, _ = timed(switch)

    def naive_switch() -> Any:
        table = read_hypotheses(path)
        prep = tables.prepare(table)
        scored = tables.scored_view(prep, score_hypotheses(table, weights).score)
        y, s, g = calibration_slices.calibration_sample(scored)
        return (
            calibration_slices.slice_curve(y, s, g, n_boot=N_BOOT),
            calibration_slices.calibration_metrics(scored, n_boot=N_BOOT),
        )

    naive, _ = timed(naive_switch)
    rows.append(("loss switch R0 -> R2 (Calibration)", cold, warm, naive))
    # Switching back to a loss seen before is a warm switch.
    back, _ = timed(
        lambda: (
            cache.curve(*r0, 10, "uniform", "all", None, None, N_BOOT),
            cache.metrics(*r0, 10, "uniform", "all", None, None, N_BOOT),
        )
    )
    rows.append(("loss switch back R2 -> R0", back, back, float("nan")))
    return rows


def page_level(root: Path) -> list[tuple[str, float, float]]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()  # start from nothing: the function-level runs filled the caches
    st.cache_resource.clear()
    os.environ["RERANKER_DATA"] = str(root)
    at = AppTest.from_file(str(REPO / "dashboard" / "streamlit_app.py"), default_timeout=900)
    first, _ = timed(at.run)
    out = [("open the app (Data page, R0 overview)", first, float("nan"))]
    cold, _ = timed(lambda: at.switch_page("app_pages/utterances.py").run())
    out.append(("open Utterances (R0)", cold, float("nan")))
    at.toggle(key="utt_misranked").set_value(True)
    cold, _ = timed(at.run)
    at.toggle(key="utt_misranked").set_value(False).run()
    at.toggle(key="utt_misranked").set_value(True)
    warm, _ = timed(at.run)
    out.append(("Utterances: toggle 'misranked only'", cold, warm))
    at.radio(key="loss").set_value("r2")
    cold, _ = timed(at.run)
    at.radio(key="loss").set_value("r0").run()
    at.radio(key="loss").set_value("r2")
    warm, _ = timed(at.run)
    out.append(("Utterances: switch loss R0 -> R2", cold, warm))
    cold, _ = timed(lambda: at.switch_page("app_pages/calibration.py").run())
    out.append(("open Calibration (all losses, bootstrap)", cold, float("nan")))
    at.radio(key="loss").set_value("r0")
    cold, _ = timed(at.run)
    at.radio(key="loss").set_value("r2").run()
    at.radio(key="loss").set_value("r0")
    warm, _ = timed(at.run)
    out.append(("Calibration: switch loss R2 -> R0", cold, warm))
    at.slider(key="cal_bins").set_value(15)
    cold, _ = timed(at.run)
    at.slider(key="cal_bins").set_value(10).run()
    at.slider(key="cal_bins").set_value(15)
    warm, _ = timed(at.run)
    out.append(("Calibration: 10 -> 15 bins", cold, warm))
    assert not at.exception, [e.value for e in at.exception]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="Directory to keep (and reuse) the data in.")
    args = parser.parse_args()
    logging.getLogger("streamlit").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        t, path = timed(lambda: build(args.rows, root))
        print(f"data: {path} ({t:.1f} s to build)")
        print(f"\nFunction level (dashboard/data_cache.py), seconds, {N_BOOT} bootstrap resamples:")
        print(f"{'interaction':40s} {'cold':>8s} {'warm':>8s} {'naive':>8s}")
        for name, cold, warm, naive in function_level(path):
            print(f"{name:40s} {cold:8.3f} {warm:8.4f} {naive:8.2f}")
        print("\nPage level (AppTest script rerun, no browser drawing), seconds:")
        print(f"{'interaction':40s} {'cold':>8s} {'warm':>8s}")
        for name, cold, warm in page_level(root):
            print(f"{name:40s} {cold:8.3f} {warm:8.3f}")


if __name__ == "__main__":
    main()
