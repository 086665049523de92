"""Scale benchmark: evaluate and train on a partitioned dataset, in memory, streaming and on Dask.

    python benchmarks/bench_scale.py --hypotheses 2000000 --parts 20
    python benchmarks/bench_scale.py --dataset /data/synth20m --no-memory   # an existing dataset

Writes a realistic dataset (``reranker synth``), or takes an existing one (``--dataset``, read
only), then runs each configuration in a fresh subprocess while a sampler sums the resident
memory of that process and all its children (Dask nanny and worker processes included) every
50 ms, and the CPU seconds of each:

- ``evaluate`` in memory (pandas, the whole table) against the streaming local engine with 1 and
  2 worker processes and a Dask local cluster with 1 and 2 workers (``--engines``);
- ``train`` (R2, every domain) in memory against the dataset engines (``--train-engines``),
  where each worker reads its domain's rows from the dataset.

Each line gives the wall time split into the engine's start-up (worker processes or the Dask
cluster started, the pipeline imported on every worker) and the work; the CPU seconds of all
processes, of the calling process during the work (the serial share: scheduling, merging,
publishing) and of the workers; the peak memory of all processes together; hypotheses per CPU
second and CPU against the in-memory run (the cost of streaming); and the largest difference of
any reported number from the first run (intervals included with ``--bootstrap``). The 2-workers
against 1 ratio is printed on the wall time and on the work alone.

Runs of one worker, and the in-memory ones, keep one BLAS and one Arrow thread as every worker
process does: 2 workers against 1 compares two cores with one. The machine may be shared:
wall-clock ratios move with the load, CPU seconds much less.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve()


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def _tree_cpu(proc: psutil.Process, seen: dict[int, float]) -> None:
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            seen[p.pid] = t.user + t.system  # children counted once, by their own pid
        except psutil.Error:
            pass


def measure(args: list[str]) -> dict[str, Any]:
    """Run this script with ``args`` in a subprocess; wall time, CPU time, peak tree memory."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, str(HERE), *args], stdout=subprocess.PIPE, text=True)
    proc = psutil.Process(child.pid)
    peak, cpu, done = 0, {}, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                peak = max(peak, _tree_rss(proc))
                _tree_cpu(proc, cpu)
            except psutil.Error:
                pass
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = child.communicate()
    done.set()
    sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed with {child.returncode}")
    lines = out.strip().splitlines()
    timing = json.loads(lines[-2].removeprefix(TIMING)) if len(lines) > 1 else {}
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": sum(cpu.values()),
        "driver_cpu": cpu.get(child.pid, 0.0),
        "worker_cpu": sum(v for pid, v in cpu.items() if pid != child.pid),
        "peak_gb": peak / 1e9,
        **timing,
        "result": json.loads(lines[-1]) if lines else None,
    }


TIMING = "timing: "


def _run_engine(engine: str, workers: str, work: Any, module: str) -> tuple[Any, dict[str, float]]:
    """``work(executor)`` on a started engine; its result and timing: the engine's start-up
    (workers started, the command's ``module`` imported there), the work's wall seconds, and
    the CPU seconds the calling process spent during the work (its serial share: scheduling,
    merging, reports)."""
    from reranker.executors import make_executor

    started = time.perf_counter()
    with make_executor(engine, jobs=int(workers)) as executor:
        executor.start([module])
        ready, cpu = time.perf_counter(), time.process_time()
        result = work(executor)
        timing = {
            "startup_s": ready - started,
            "work_s": time.perf_counter() - ready,
            "driver_work_cpu": time.process_time() - cpu,
        }
    return result, timing


def _phase(opts: argparse.Namespace) -> None:
    """One configuration, run inside the measured subprocess; prints its timing, then its
    JSON result, last."""
    from reranker.evaluation import evaluate
    from reranker.hypotheses import read_hypotheses
    from reranker.ranking import r0_score

    kind, engine, workers = opts.phase.split(":")
    if workers == "1":  # one worker is one core, as each worker process of an engine is
        import pyarrow as pa
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        pa.set_cpu_count(1)
        pa.set_io_thread_count(1)
    timing: dict[str, float] = {}
    started = time.perf_counter()
    if kind == "evaluate" and engine == "memory":
        table = read_hypotheses(opts.data)
        result = evaluate(table, r0_score(table), n_boot=opts.bootstrap)
    elif kind == "evaluate":
        from reranker.streaming import evaluate_dataset

        result, timing = _run_engine(
            engine,
            workers,
            lambda ex: evaluate_dataset(
                opts.data, "r0", executor=ex, n_boot=opts.bootstrap, scratch=opts.scratch
            )[0],
            "reranker.streaming",
        )
    elif engine == "memory":
        from reranker.training import train_domains

        table = read_hypotheses(opts.data)
        results = train_domains(table, loss="r2", out=opts.weights, jobs=int(workers))
        result = {d: r.document["weights"] for d, r in results.items() if r.document}
    else:
        from reranker.dataset_training import train_dataset_domains

        results, timing = _run_engine(
            engine,
            workers,
            lambda ex: train_dataset_domains(opts.data, loss="r2", out=opts.weights, executor=ex),
            "reranker.dataset_training",
        )
        result = {d: r.document["weights"] for d, r in results.items() if r.document}
    if not timing:
        timing = {"startup_s": 0.0, "work_s": time.perf_counter() - started}
    print(TIMING + json.dumps(timing))
    print(json.dumps(result, default=float))


def _max_diff(a: Any, b: Any) -> float:
    if isinstance(a, dict):
        return max((_max_diff(v, b[k]) for k, v in a.items()), default=0.0)
    if isinstance(a, list):
        return max((_max_diff(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    if a is None or b is None:
        return 0.0 if a is b else float("inf")
    return abs(float(a) - float(b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hypotheses", type=int, default=2_000_000)
    parser.add_argument("--parts", type=int, default=20)
    parser.add_argument("--layout", default="flat")
    parser.add_argument("--dataset", help="an existing dataset to measure (nothing is written)")
    parser.add_argument("--bootstrap", type=int, default=0)
    parser.add_argument("--no-memory", action="store_true", help="skip the in-memory runs")
    parser.add_argument("--no-train", action="store_true", help="skip training")
    parser.add_argument("--no-evaluate", action="store_true", help="skip evaluate")
    parser.add_argument("--engines", default="local:1,local:2,dask:1,dask:2", help="evaluate")
    parser.add_argument("--train-engines", default="local:1,local:2,dask:1,dask:2")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.phase:
        _phase(opts)
        return
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        data, n = _dataset(opts, tmp)
        common = ["--data", data, "--bootstrap", str(opts.bootstrap), "--scratch", tmp]
        configs = [] if opts.no_evaluate else opts.engines.split(",")
        if configs and not opts.no_memory:
            configs.insert(0, "memory:1")
        runs: dict[str, dict[str, Any]] = {}
        for c in configs:  # each line as soon as it is measured
            runs[c] = measure(["--phase", f"evaluate:{c}", *common])
            _line("evaluate", c, runs[c])
        if runs:
            _report("evaluate", runs, n)
        if not opts.no_train:
            _train(opts, tmp, common, n)


def _dataset(opts: argparse.Namespace, tmp: str) -> tuple[str, int]:
    """The dataset to measure and its number of hypotheses: ``--dataset``, or one written."""
    if opts.dataset:
        import pyarrow.parquet as pq

        from reranker.partitioned import open_dataset

        parts = open_dataset(opts.dataset).parts
        n = sum(pq.ParquetFile(p.path).metadata.num_rows for p in parts)
        print(f"{n:,} hypotheses in {len(parts)} parts of {opts.dataset}; {_load()}", flush=True)
        return opts.dataset, n
    from reranker.synthetic_dataset import write_synthetic_dataset

    data = os.path.join(tmp, "data")
    started = time.perf_counter()
    write_synthetic_dataset(data, opts.hypotheses, parts=opts.parts, layout=opts.layout)
    print(
        f"{opts.hypotheses:,} hypotheses in {opts.parts} {opts.layout} parts, written in "
        f"{time.perf_counter() - started:.1f}s; {_load()}",
        flush=True,
    )
    return data, opts.hypotheses


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} {five:.1f} {fifteen:.1f} on {os.cpu_count()} cores"


def _line(kind: str, config: str, r: dict[str, Any]) -> None:
    print(
        f"{kind} {config:<9} {r['seconds']:7.1f} s wall ({r['startup_s']:.1f} start-up, "
        f"{r['work_s']:.1f} work) {r['cpu_seconds']:7.1f} s cpu (calling process "
        f"{r['driver_cpu']:.1f}, of which {r.get('driver_work_cpu', r['driver_cpu']):.1f} during "
        f"the work; workers {r['worker_cpu']:.1f}) {r['peak_gb']:6.2f} GB peak; {_load()}",
        flush=True,
    )


def _report(kind: str, runs: dict[str, dict[str, Any]], n: int) -> None:
    """The table of one command's runs, and each engine's 2-against-1 ratios."""
    reference = next(iter(runs.values()))["result"]
    memory = runs.get("memory:1") or runs.get("memory:2")
    print(
        f"{kind:<10} wall s  start-up  work s  cpu s  driver cpu  worker cpu  peak GB  "
        "hyps/cpu-s  cpu vs in memory  max |diff| vs first"
    )
    for c, r in runs.items():
        per_core = "" if memory is None else f"{r['cpu_seconds'] / memory['cpu_seconds']:.2f}x"
        print(
            f"{c:<10} {r['seconds']:6.1f} {r['startup_s']:9.1f} {r['work_s']:7.1f} "
            f"{r['cpu_seconds']:6.1f} {r.get('driver_work_cpu', r['driver_cpu']):11.1f} "
            f"{r['worker_cpu']:11.1f} {r['peak_gb']:8.2f} {n / max(r['cpu_seconds'], 1e-9):11,.0f}"
            f"  {per_core:>16}  {_max_diff(reference, r['result']):.2e}"
        )
    for engine in ("local", "dask"):
        one, two = runs.get(f"{engine}:1"), runs.get(f"{engine}:2")
        if one and two:
            print(
                f"{kind}, {engine}: 2 workers {one['seconds'] / two['seconds']:.2f}x faster than "
                f"1 in wall time, {one['work_s'] / two['work_s']:.2f}x once the workers are up"
            )


def _train(opts: argparse.Namespace, tmp: str, common: list[str], n: int) -> None:
    train = {}
    configs = opts.train_engines.split(",")
    for c in ([] if opts.no_memory else ["memory:2"]) + configs:
        weights = os.path.join(tmp, f"w-{c.replace(':', '-')}")
        train[c] = measure(["--phase", f"train:{c}", *common, "--weights", weights])
        _line("train", c, train[c])
    _report("train (r2)", train, n)


if __name__ == "__main__":
    main()
