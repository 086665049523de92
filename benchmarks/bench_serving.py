"""Serving benchmark: in-process scoring, HTTP throughput and latency, live weight updates.

Usage::

    .venv/bin/python benchmarks/bench_serving.py [--seconds 12] [--clients 16] [--workers 1]

Three measurements on n-bests of exactly 10 hypotheses drawn from
:func:`reranker.synthetic.realistic_hypotheses` (several domains per utterance, one distinct slot
string per few rows) and a registry with weights for each of its 8 domains:

1. **In-process**: :meth:`Snapshot.score` on one n-best, median over many n-bests and repeats;
   beside it the table path of ``reranker rerank`` (``score_hypotheses`` + ``score_table`` on
   the same 10 rows as a DataFrame), the peer it must equal, run in the same process; and the
   whole request handling without HTTP (JSON decode, validation, scoring, JSON answer).
2. **HTTP on loopback**: ``reranker serve`` in its own process; a load generator in another
   process (asyncio, raw HTTP/1.1 keep-alive connections to 127.0.0.1, ``--clients`` of them,
   each sending its next request when the previous answer arrives), bounded by ``--seconds``
   and ``--max-requests``. Throughput, p50 and p99 latency.
3. **Live updates under that load**: 20 publishes and rollbacks across domains during the run.
   Failed requests are counted; every answer's ``weights`` is checked against the registry's
   history (each label must have been current for its domain at some moment between one second
   before the request was sent and its answer), a sample of answers is re-scored in-process
   with the versions the answer names (to 1e-12), and for every publish or rollback the time
   from the registry change to the first answer sent after it carrying the new version is
   reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from reranker.evaluation import score_table
from reranker.features import default_feature_names
from reranker.hypotheses import validate_hypotheses
from reranker.registry import WeightsRegistry
from reranker.scoring import score_hypotheses
from reranker.serving import DomainModel, Snapshot, decode_json, parse_nbest
from reranker.serving._app import _answer
from reranker.synthetic import DEVICES, realistic_hypotheses

KEYS = ("domain", "intent", "slots", "domain_score", "intent_score", "slot_score")


def document(domain: str, seed: int) -> dict[str, Any]:
    """A weights document over the default features, with trained-looking magnitudes."""
    rng = np.random.default_rng(seed)
    names = default_feature_names(DEVICES)
    return {
        "domain": domain,
        "loss": "r3",
        "version": None,
        "features": names,
        "weights": (rng.normal(size=len(names)) * 0.8).tolist(),
        "bias": float(rng.normal()),
        "trained_at": "2026-11-25T00:00:00+00:00",
        "training_data": {"sha256": "0" * 64, "n_utterances": 1000, "n_hypotheses": 6000},
        "metrics": {"n_iter": 20, "converged": True},
        "options": {"l2": 0.001},
    }


def nbests(n: int, seed: int = 0) -> tuple[list[dict[str, Any]], Any]:
    """Request bodies of 10-hypothesis utterances and their validated table."""
    table = validate_hypotheses(realistic_hypotheses(n * 12, seed=seed))
    sizes = table.groupby("utterance_id", sort=False)["domain"].transform("size")
    table = table[sizes == 10].reset_index(drop=True)
    bodies = []
    for uid, rows in list(table.groupby("utterance_id", sort=False).indices.items())[:n]:
        part = table.iloc[rows]
        bodies.append(
            {
                "utterance_id": uid,
                "device": part["device"].iloc[0],
                "text": part["text"].iloc[0],
                "hypotheses": part[list(KEYS)].to_dict("records"),
            }
        )
    return bodies, table


def in_process(registry: Path, bodies: list[dict[str, Any]], table: Any) -> dict[str, float]:
    reg = WeightsRegistry(registry)
    snap = Snapshot({d: DomainModel.from_document(reg.load(d)) for d in reg.domains()})
    parsed = [parse_nbest(b) for b in bodies]
    raw = [json.dumps(b).encode() for b in bodies]
    by_id = table.groupby("utterance_id", sort=False).indices

    def table_path(nb: Any) -> Any:
        part = table.iloc[by_id[nb.utterance_id]]
        return score_table(part, score_hypotheses(part, registry).score).rank

    def request(body: bytes) -> bytes:
        decoded = decode_json(body)
        nb = parse_nbest(decoded)
        return json.dumps(_answer(nb, decoded["hypotheses"], snap.score(nb))).encode()

    def median_us(fn: Any, items: list[Any], repeat: int) -> float:
        times = []
        for _ in range(repeat):
            for item in items:
                t = time.perf_counter()
                fn(item)
                times.append(time.perf_counter() - t)
        return float(np.median(times) * 1e6)

    diff = max(
        float(
            np.abs(
                snap.score(nb).score
                - score_hypotheses(table.iloc[by_id[nb.utterance_id]], registry).score
            ).max()
        )
        for nb in parsed[:200]
    )
    return {
        "score_us": median_us(snap.score, parsed, 20),
        "request_us": median_us(request, raw, 5),
        "table_path_us": median_us(table_path, parsed[:100], 2),
        "max_abs_diff": diff,
    }


# ---------------------------------------------------------------- load generator (own process)
async def _connection(
    host: str, port: int, requests: list[bytes], state: dict[str, Any], out: list[Any]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = state["next"]
    try:
        while time.monotonic() < state["stop_at"] and state["sent"] < state["max"]:
            state["sent"] += 1
            i = (i + 7919) % len(requests)
            t0 = time.monotonic()
            writer.write(requests[i])
            try:
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                data = await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError, IndexError, ValueError) as e:
                out.append((t0, time.monotonic(), -1, repr(e), i))
                return
            out.append((t0, time.monotonic(), status, data, i))
    finally:
        writer.close()


async def _load(host: str, port: int, bodies: list[bytes], args: dict[str, Any]) -> list[Any]:
    head = b"POST /rerank HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    requests = [head + b"Content-Length: %d\r\n\r\n" % len(b) + b for b in bodies]
    out: list[Any] = []
    state = {"stop_at": time.monotonic() + args["seconds"], "sent": 0, "max": args["max"]}
    tasks = []
    for c in range(args["clients"]):
        state["next"] = c * 131
        tasks.append(asyncio.create_task(_connection(host, port, requests, dict(state), out)))
    await asyncio.gather(*tasks)
    return out


def client_main(spec: str) -> None:
    """Entry point of the load-generator process (``--client JSON``)."""
    args = json.loads(spec)
    bodies = [b.encode() for b in json.loads(Path(args["bodies"]).read_text())]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    per_client = dict(args, max=args["max"] // args["clients"])
    print("ready", flush=True)  # imports done: the load starts now
    out = asyncio.run(_load("127.0.0.1", args["port"], bodies, per_client))
    rows = []
    for t0, t1, status, data, i in out:
        if status == 200:
            answer = json.loads(data)
            rows.append(
                [
                    t0,
                    t1,
                    status,
                    answer["weights"],
                    i,
                    [h["score"] for h in answer["hypotheses"]],
                    [
                        h["intent"] + "|" + h["domain"] + "|" + h["slots"]
                        for h in answer["hypotheses"]
                    ],
                ]
            )
        else:
            rows.append(
                [
                    t0,
                    t1,
                    status,
                    data if isinstance(data, str) else data.decode(errors="replace"),
                    i,
                    None,
                    None,
                ]
            )
    Path(args["out"]).write_text(json.dumps(rows))


# ---------------------------------------------------------------- server, updates, analysis
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(registry: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("reranker")
    cmd = [str(exe), "serve", "--weights", str(registry), "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--workers", str(workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("reranker serve did not start within 120 s")


def updates(registry: Path, domains: list[str], n: int, start: float, gap: float) -> list[Any]:
    """Publish and roll back across domains, ``gap`` seconds apart; return the history.

    Each change is dated when its publish or rollback call began: the new version may be served
    from then on (the call returns after its fsyncs).
    """
    reg = WeightsRegistry(registry)
    history = [(0.0, d, f"r3 v{reg.current_version(d)}") for d in domains]
    rng = np.random.default_rng(1)
    for k in range(n):
        target = start + k * gap
        while time.monotonic() < target:
            time.sleep(0.005)
        domain = domains[k % len(domains)]
        began = time.monotonic()  # the server may see the change before the call returns
        if k % 2 == 1 and (reg.current_version(domain) or 0) > reg.versions(domain)[0]:
            version = reg.rollback(domain)
        else:
            version = reg.publish(domain, document(domain, int(rng.integers(1 << 30))))
        history.append((began, domain, f"r3 v{version}"))
    return history


def _current_between(history: list[Any], domain: str, lo: float, hi: float) -> set[str]:
    labels, before = set(), None
    for t, d, label in history:
        if d != domain:
            continue
        if t <= lo:
            before = label
        elif t <= hi:
            labels.add(label)
    return labels | ({before} if before else set())


def analyse(
    rows: list[Any], history: list[Any], registry: Path, bodies: list[Any]
) -> dict[str, Any]:
    ok = [r for r in rows if r[2] == 200]
    lat = np.array([r[1] - r[0] for r in ok]) * 1e3
    span = max(r[1] for r in rows) - min(r[0] for r in rows)
    inconsistent = sum(
        1
        for t0, t1, _, weights, *_ in ok
        for d, label in weights.items()
        if label != "r0" and label not in _current_between(history, d, t0 - 1.0, t1)
    )
    strict = sum(
        1
        for t0, t1, _, weights, *_ in ok
        if all(
            lab == "r0" or lab in _current_between(history, d, t0, t1) for d, lab in weights.items()
        )
    )
    served = []
    for t_event, domain, label in history:
        if t_event == 0.0:
            continue
        first = next((r for r in ok if r[0] >= t_event and r[3].get(domain) == label), None)
        served.append(np.nan if first is None else first[1] - t_event)
    reg = WeightsRegistry(registry)
    models: dict[tuple[str, str], DomainModel] = {}
    rescored_diff = 0.0
    for _t0, _t1, _, weights, i, scores, keys in ok[:: max(1, len(ok) // 300)]:
        for d, label in weights.items():
            if label != "r0" and (d, label) not in models:
                models[(d, label)] = DomainModel.from_document(
                    reg.load(d, int(label.split("v")[1]))
                )
        snap = Snapshot({d: models[(d, lab)] for d, lab in weights.items() if lab != "r0"})
        nb = parse_nbest(bodies[i])
        scored = snap.score(nb)
        expect = {
            f"{nb.intent[j]}|{nb.domain[j]}|{nb.slots[j]}": s
            for j, s in enumerate(scored.score.tolist())
        }
        rescored_diff = max(
            rescored_diff, *(abs(expect[k] - s) for k, s in zip(keys, scores, strict=True))
        )
    return {
        "requests": len(rows),
        "failed": len(rows) - len(ok),
        "throughput_rps": len(ok) / span,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
        "updates": len(served),
        "inconsistent_labels": inconsistent,
        "answers_with_labels_current_while_in_flight": strict / max(len(ok), 1),
        "publish_to_served_ms_median": float(np.nanmedian(served) * 1e3),
        "publish_to_served_ms_max": float(np.nanmax(served) * 1e3),
        "updates_never_served": int(np.isnan(served).sum()),
        "rescored_max_abs_diff": rescored_diff,
    }


def over_http(
    registry: Path, bodies: list[dict[str, Any]], args: argparse.Namespace
) -> dict[str, Any]:
    port = _free_port()
    server = start_server(registry, port, args.workers)
    with tempfile.TemporaryDirectory() as tmp:
        body_file, out = Path(tmp, "bodies.json"), Path(tmp, "out.json")
        body_file.write_text(json.dumps([json.dumps(b) for b in bodies]))
        spec = {
            "port": port,
            "bodies": str(body_file),
            "out": str(out),
            "seconds": args.seconds,
            "max": args.max_requests,
            "clients": args.clients,
        }
        try:
            client = subprocess.Popen(
                [sys.executable, __file__, "--client", json.dumps(spec)], stdout=subprocess.PIPE
            )
            assert client.stdout is not None and client.stdout.readline().strip() == b"ready"
            domains = WeightsRegistry(registry).domains()
            gap = (args.seconds - 3.0) / args.updates
            history = updates(registry, domains, args.updates, time.monotonic() + 1.0, gap)
            client.wait(timeout=args.seconds + 120)
            client.stdout.close()
        finally:
            server.terminate()
            server.wait(timeout=60)
        rows = json.loads(out.read_text())
    return analyse(rows, history, registry, bodies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--max-requests", type=int, default=60_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args.client)
        return
    print(
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores"
    )
    bodies, table = nbests(2000)
    with tempfile.TemporaryDirectory() as tmp:
        registry = Path(tmp) / "weights"
        reg = WeightsRegistry(registry)
        for k, d in enumerate(sorted(table["domain"].unique())):
            reg.publish(d, document(d, k))
        local = in_process(registry, bodies, table)
        print(
            f"in-process, 10-hypothesis n-best: score {local['score_us']:.1f} µs median; "
            f"whole request without HTTP {local['request_us']:.1f} µs; table path of rerank "
            f"{local['table_path_us']:.0f} µs ({local['table_path_us'] / local['score_us']:.0f}x); "
            f"max |diff| vs rerank {local['max_abs_diff']:.1e}"
        )
        http = over_http(registry, bodies, args)
    print(
        f"HTTP, {args.clients} clients, {args.workers} worker(s), {args.seconds:.0f} s: "
        f"{http['throughput_rps']:.0f} req/s, p50 {http['p50_ms']:.2f} ms, p99 {http['p99_ms']:.2f} ms "
        f"(max {http['max_ms']:.1f} ms), {http['requests']} requests, {http['failed']} failed"
    )
    print(
        f"live updates: {http['updates']} publishes/rollbacks; publish-to-first-served median "
        f"{http['publish_to_served_ms_median']:.0f} ms, max {http['publish_to_served_ms_max']:.0f} ms; "
        f"never served {http['updates_never_served']}; inconsistent labels {http['inconsistent_labels']}; "
        f"answers whose labels were current while in flight {100 * http['answers_with_labels_current_while_in_flight']:.2f}%; "
        f"re-scored sample max |diff| {http['rescored_max_abs_diff']:.1e}"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
