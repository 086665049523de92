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
The table is :func:`reranker.synthetic.realistic_hypotheses`, shaped like a real n-best log
(every reference distinct, about one distinct slot string per three rows, 2 to 4 domains per
utterance, devices); R2 weights are trained on a 10% sample of it.

With ``--dataset DIR`` (a partitioned Parquet dataset, e.g. written by ``reranker synth``; read
only), the large-dataset mode instead (:func:`run_large`): the statistics are
computed once by the partitioned engine in a child process (with the utterance index; with
``--keep`` on a folder written by an older version, only what changed is written there, and
said), then the pages are timed in this process (the server) with their peak memory, and a query
of the utterance index is compared with pandas filtering the same utterance rows in memory.
Usage: ``python benchmarks/bench_dashboard.py --dataset DIR [--keep WORK_DIR]``.
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
    from reranker.synthetic import realistic_hypotheses
    from reranker.training import train_domains

    dataset = root / "bench"
    (dataset / "hypotheses").mkdir(parents=True, exist_ok=True)
    path = dataset / "hypotheses" / "test.parquet"
    if not path.exists():
        per_utt = len(realistic_hypotheses(2000, seed=1)) / 2000
        table = realistic_hypotheses(int(rows / per_utt), seed=0)
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
    first = cache.UtteranceQuery(semer_range=(0.0, math.inf), sort_by="top_semer", descending=True)
    cache.filtered_utterances(*r0, first)
    view = cache.Slice(n_boot=N_BOOT)
    cache.curve(*r0, view)
    cache.metrics(*r0, view)

    rows = []
    flt = cache.UtteranceQuery(
        misranked_only=True, devices=("fire_tv",), semer_range=(0.5, math.inf),
        sort_by="top_score", descending=True,
    )  # fmt: skip
    cold, (_, count) = timed(lambda: cache.filtered_utterances(*r0, flt))
    warm, _ = timed(lambda: cache.filtered_utterances(*r0, flt))

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
            cache.curve(*r2, view),
            cache.metrics(*r2, view),
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
            cache.curve(*r0, view),
            cache.metrics(*r0, view),
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


def large_folder(dataset: Path, root: Path) -> tuple[Path, Path]:
    """``root/large/hypotheses/test`` -> ``dataset`` (a link: the data stay read-only) and R2
    weights trained on the first 60,000 rows of its first part; returns (split, weights)."""
    import pyarrow.parquet as pq

    from reranker.hypotheses import validate_hypotheses
    from reranker.partitioned import open_dataset
    from reranker.training import train_domains

    split = root / "large" / "hypotheses" / "test"
    weights = root / "large" / "weights" / "r2"
    split.parent.mkdir(parents=True, exist_ok=True)
    if not split.exists():
        split.symlink_to(dataset, target_is_directory=True)
    if not weights.exists():
        first = open_dataset(dataset).parts[0].path
        batch = next(pq.ParquetFile(first).iter_batches(batch_size=60_000))
        sample = validate_hypotheses(batch.to_pandas(), source=first)
        last = sample["utterance_id"].iloc[-1]
        sample = sample[sample["utterance_id"] != last]  # whole utterances only
        train_domains(sample, loss="r2", out=weights, engine="serial")
    return split, weights


def compute_once(split: Path, weights: Path, jobs: int) -> tuple[float, float, int]:
    """Compute the statistics of R0 and R2 in a child process: (seconds, its peak RSS in GB,
    the cached entries whose utterance index lacked files of this version and got them)."""
    import subprocess
    import sys

    code = (
        "import resource, sys; from pathlib import Path; "
        "from reranker.slice_statistics import compute_statistics, entry_directory; "
        "from reranker.utterance_index import index_complete; s, w = sys.argv[1], sys.argv[2]; "
        "e = {'r0': entry_directory(s, None), w: entry_directory(s, w)}; "
        "print(sum((d / 'meta.json').is_file() and not index_complete(d / 'utterances') "
        "for d in e.values())); "
        f"compute_statistics(s, e, jobs={jobs}); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, str(split), str(weights)],
        check=True,
        capture_output=True,
        text=True,
    )
    completed, peak = done.stdout.split()[-2:]
    return time.perf_counter() - start, int(peak) / 1e6, int(completed)


def page_level_large(root: Path) -> list[tuple[str, float]]:
    """Each interaction's script rerun (the first time those widget values are seen)."""
    from streamlit.testing.v1 import AppTest

    os.environ["RERANKER_DATA"] = str(root)
    at = AppTest.from_file(str(REPO / "dashboard" / "streamlit_app.py"), default_timeout=900)
    out = [("open the app (Data page)", timed(at.run)[0])]
    out.append(("open Calibration (R0, R2)", timed(lambda: at.switch_page(CAL).run())[0]))
    at.radio(key="loss").set_value("r2")
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("Calibration: loss R0 -> R2", lambda: None),
        ("Calibration: 10 -> 20 bins", lambda: at.select_slider(key="cal_bins").set_value(20)),
        ("Calibration: 100 -> 50 resamples", lambda: at.select_slider(key="cal_boot").set_value(50)),
        ("Calibration: top-1 population", lambda: at.radio(key="cal_population").set_value("top1")),
        ("Calibration: a domain slice", lambda: at.selectbox(key="cal_domain").set_value(DOMAIN)),
        ("Calibration: and a device slice", lambda: at.selectbox(key="cal_device").set_value(DEVICE)),
        ("Calibration: side by side", lambda: at.radio(key="cal_layout").set_value("side")),
    ]  # fmt: skip
    for name, change in steps:
        change()
        out.append((name, timed(at.run)[0]))
    out.append(("open Utterances (R2)", timed(lambda: at.switch_page(UTT).run())[0]))
    steps = [
        ("Utterances: misranked only", lambda: at.toggle(key="utt_misranked").set_value(True)),
        ("Utterances: a device", lambda: at.multiselect(key="utt_devices").set_value([DEVICE])),
        ("Utterances: sort by top-1 score", lambda: at.selectbox(key="utt_sort").set_value("top_score")),
        ("Utterances: search text", lambda: at.text_input(key="utt_search").set_value("play")),
        ("Utterances: loss R2 -> R0", lambda: at.radio(key="loss").set_value("r0")),
        # a search with matches, then a loss switch that draws the first of them
        ("Utterances: search text 'zou'", lambda: at.text_input(key="utt_search").set_value("zou")),
        ("Utterances: loss R0 -> R2, rows shown", lambda: at.radio(key="loss").set_value("r2")),
        ("open Devices (R2)", lambda: at.switch_page("app_pages/devices.py")),
        ("open Data (R2)", lambda: at.switch_page("app_pages/data.py")),
    ]  # fmt: skip
    for name, change in steps:
        change()
        out.append((name, timed(at.run)[0]))
    assert not at.exception, [e.value for e in at.exception]
    return out


CAL, UTT = "app_pages/calibration.py", "app_pages/utterances.py"
DOMAIN, DEVICE = "Music", "echo_show"


def search_against_pandas(split: Path, weights: Path) -> list[tuple[str, float, float]]:
    """The utterance index against pandas filtering the same utterance rows in memory."""
    import math

    from reranker.slice_statistics import entry_directory
    from reranker.utterance_index import forget_text_searches, open_index
    from reranker.utterances import filter_utterances

    rows = entry_directory(split, weights) / "utterances"
    cases = {
        "misranked, a device, SemER >= 0.5": dict(
            misranked_only=True, devices=(DEVICE,), semer_range=(0.5, math.inf), sort_by="top_score"
        ),
        "text search 'play'": dict(search="play", sort_by="top_semer", descending=True),
        "text search 'zou'": dict(search="zou", sort_by="top_semer", descending=True),
    }
    out = []
    forget_text_searches()  # the pages' searches are kept: scan again here
    opened, index = timed(lambda: open_index(rows))
    print(f"open the utterance index: {opened:.3f} s")
    # pandas gets the same rows already in memory-mapped Arrow (no Parquet decoding)
    load, table = timed(lambda: index.table.to_pandas().sort_values("utterance_id"))
    for name, case in cases.items():
        ours, _ = timed(lambda case=case: index.search(limit=500, **case))
        theirs, _ = timed(lambda case=case: filter_utterances(table, limit=500, **case))
        out.append((name, ours, load + theirs))
    return out


def run_large(dataset: Path, root: Path, *, jobs: int) -> None:
    import resource

    from reranker.utterance_search import count_rows

    os.environ["RERANKER_DASHBOARD_MAX_ROWS"] = "1000"  # served from statistics at any size
    split, weights = large_folder(dataset, root)
    print(f"dataset: {dataset} ({count_rows(split):,} hypotheses); data folder {root}")
    seconds, peak, completed = compute_once(split, weights, jobs)
    print(f"statistics of R0 and R2, computed once ({jobs} workers): {seconds:.1f} s, "
          f"driver peak {peak:.2f} GB (0 s when already cached)")  # fmt: skip
    if completed:
        print(f"  of which: the query files of {completed} cached utterance index(es) written "
              "by an older version, written from their Arrow parts")  # fmt: skip
    print("\nPage level (AppTest script rerun, no browser drawing), seconds:")
    for name, t in page_level_large(root):
        print(f"{name:40s} {t:8.3f}")
    print(f"server peak memory (this process): "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")  # fmt: skip
    print("\nUtterance search, the index vs pandas on the loaded rows (load + filter), s:")
    for name, ours, theirs in search_against_pandas(split, weights):
        print(f"{name:40s} {ours:8.3f} {theirs:8.3f}  ({theirs / ours:.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="Directory to keep (and reuse) the data in.")
    parser.add_argument("--dataset", type=Path, help="A partitioned dataset (large mode).")
    parser.add_argument("--jobs", type=int, default=2, help="Workers computing statistics.")
    args = parser.parse_args()
    logging.getLogger("streamlit").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    if args.dataset is not None:
        with tempfile.TemporaryDirectory() as tmp:
            run_large(args.dataset.resolve(), args.keep or Path(tmp), jobs=args.jobs)
        return
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
