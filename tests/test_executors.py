"""Executors: local worker processes and a local Dask cluster, started with a command's modules."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from reranker.executors import DaskExecutor, LocalExecutor, run_all


def _square(x: int) -> int:
    return x * x


def _loaded(names: tuple[str, ...]) -> dict[str, bool]:
    return {name: name in sys.modules for name in names}


def _settings() -> dict[str, Any]:
    import multiprocessing

    import dask
    import pyarrow as pa

    return {
        "profile": dask.config.get("distributed.worker.profile.enabled"),
        "monitor": dask.config.get("distributed.worker.memory.monitor-interval"),
        "arrow threads": pa.cpu_count(),
        "forked": multiprocessing.parent_process() is not None,
    }


def _scheduler_settings(dask_scheduler: Any) -> dict[str, Any]:
    return {
        "stealing": "stealing" in dask_scheduler.extensions,
        "saturation": dask_scheduler.WORKER_SATURATION,
    }


def test_local_dask_cluster_workers_import_the_command_modules() -> None:
    pytest.importorskip("dask.distributed")
    with DaskExecutor(jobs=2) as executor:
        assert executor.workers == 2
        assert executor.start(["reranker.streaming"]) > 0
        # (what else a worker holds depends on who started this process's forkserver first)
        loaded = executor.client.run(_loaded, ("reranker.streaming",))
        assert list(loaded.values()) == [{"reranker.streaming": True}] * 2
        # the worker profiler and frequent monitors are off on a local cluster
        assert all(
            s == {"profile": False, "monitor": "1s", "arrow threads": 1, "forked": True}
            for s in executor.client.run(_settings).values()
        )
        # forked from the forkserver (which imported Dask and the pipeline), not from here
        assert os.getpid() not in executor.client.run(os.getppid).values()
        scheduler = executor.client.run_on_scheduler(_scheduler_settings)
        assert scheduler == {"stealing": True, "saturation": 1.0}
        # each task goes to the worker that is free: every call runs, results in order
        assert run_all(executor, _square, [(i,) for i in range(7)], phase="x") == [
            i * i for i in range(7)
        ]


def test_local_executor_start_imports_the_modules_in_the_calling_process() -> None:
    with LocalExecutor(1) as executor:
        assert executor.start(["reranker.streaming"]) >= 0
        assert "reranker.streaming" in sys.modules
        assert run_all(executor, _square, [(3,), (4,)], phase="x") == [9, 16]
