"""NLU training and prediction time on the real corpora, and the demo build time.

Measures, on this machine:
- training the per-domain NLU (domain classifier, intent classifier, CRF slot tagger for each of
  the 21 product domains) on all 8,851 HWU64 utterances, total and per domain;
- predicting the n-best of SLURP's 2,033 devel utterances (utterances per second);
- the top-1 interpretation error of those hypotheses with R0 and the oracle (best hypothesis of
  the n-best), with a bootstrap interval over utterances;
- optionally (``--demo``) the wall time of ``reranker demo`` (both datasets, with weights).

Usage: ``python benchmarks/bench_nlu.py [--demo] [--sources reranker/data/corpora]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from reranker.demo import default_domain_map, default_sources
from reranker.evaluation import evaluate
from reranker.hypotheses import validate_hypotheses
from reranker.nlu import predict_corpus, read_corpus, read_domain_map, train_models
from reranker.ranking import r0_score
from reranker.semer import table_errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=Path, default=default_sources())
    parser.add_argument("--demo", action="store_true", help="also time `reranker demo`")
    args = parser.parse_args()
    domain_map = read_domain_map(default_domain_map())
    train = read_corpus(args.sources / "hwu64.jsonl", domain_map=domain_map)
    held = read_corpus(args.sources / "slurp_devel.jsonl", domain_map=domain_map)
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        models = train_models(train, Path(tmp) / "models")
        results["nlu_train_seconds"] = round(time.perf_counter() - started, 2)
        results["nlu_train_seconds_by_domain"] = {
            d: round(s, 2) for d, s in models.training_seconds.items()
        }
        started = time.perf_counter()
        hyps = validate_hypotheses(predict_corpus(models, held, device="unknown"))
        seconds = time.perf_counter() - started
        results["predict_utterances_per_second"] = round(len(held) / seconds, 1)
    report = evaluate(hyps, r0_score(hyps), n_boot=200, seed=0)
    _, correct = table_errors(hyps)
    codes = hyps["utterance_id"].to_numpy()
    oracle_correct = pd.Series(np.asarray(correct)).groupby(codes, sort=False).max().to_numpy()
    results["slurp_devel_r0"] = {
        k: report[k]
        for k in ("n_utterances", "n_hypotheses", "top1_semer", "top1_ie", "ece", "brier")
    }
    results["slurp_devel_r0_intervals"] = {
        k: report["intervals"][k] for k in ("top1_semer", "top1_ie", "ece")
    }
    results["slurp_devel_oracle_ie"] = float(1.0 - oracle_correct.mean())
    if args.demo:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "from reranker.cli import main; main()",
                    "demo",
                    "--out",
                    tmp,
                ],
                check=True,
                capture_output=True,
            )
            results["demo_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
