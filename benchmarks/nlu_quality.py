"""NLU quality on the real-corpus demo's test split: where do the n-best hypotheses go wrong?

Builds the real-corpus demo's corpora exactly as ``reranker demo`` does (NLU trained on every
HWU64 utterance, ``test`` = SLURP devel, devices simulated with the demo's seed) and reports, on
``test``, for the R0 top-1 hypothesis of each utterance (``domain_score * intent_score *
slot_score``):

- domain accuracy (top-1 domain = reference domain), intent accuracy (domain and intent right),
  exact slot match (the slot list equals the reference's, whatever the intent);
- top-1 IE and top-1 SemER with R0;
- oracle IE (1 - the share of utterances with a correct hypothesis somewhere in the n-best) and
  oracle domain recall (the reference domain is in the n-best);
- the mean n-best size; with ``--by-domain`` the same per reference domain.

Usage::

    python benchmarks/nlu_quality.py                       # train afresh and measure
    python benchmarks/nlu_quality.py --before demo_data/real/models   # side by side with these models
    python benchmarks/nlu_quality.py --models DIR          # measure existing models only

Training time is printed (``reranker nlu train`` on the same corpus).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from reranker.annotation import normalize_value, parse_slots
from reranker.demo import default_sources, real_corpus_splits
from reranker.hypotheses import validate_hypotheses
from reranker.nlu import load_models, predict_corpus, read_settings_file, train_models
from reranker.nlu.models import NluModels
from reranker.ranking import r0_score, top1_indices, utterance_codes
from reranker.semer import table_errors

COLUMNS = (
    ("domain_acc", "domain accuracy"),
    ("intent_acc", "intent accuracy"),
    ("slot_match", "exact slot match"),
    ("top1_ie", "top-1 IE (R0)"),
    ("top1_semer", "top-1 SemER (R0)"),
    ("oracle_ie", "oracle IE"),
    ("oracle_domain", "oracle domain recall"),
    ("nbest", "mean n-best size"),
)


def _slot_key(annotation: str) -> tuple[tuple[str, str], ...]:
    return tuple((t, normalize_value(v)) for t, v in parse_slots(annotation))


def quality(hyps: pd.DataFrame) -> pd.DataFrame:
    """One row per utterance: the R0 top-1's correctness in each respect, and the oracle."""
    semer, correct = table_errors(hyps)
    codes = utterance_codes(hyps["utterance_id"])
    top = top1_indices(codes, r0_score(hyps), hyps["domain_score"].to_numpy())
    t = hyps.iloc[top]
    right_domain = (t["domain"].to_numpy() == t["ref_domain"].to_numpy()).astype(float)
    right_intent = right_domain * (t["intent"].to_numpy() == t["ref_intent"].to_numpy())
    slot_keys = {s: _slot_key(s) for s in set(hyps["slots"]) | set(hyps["ref_slots"])}
    slot_match = np.array(
        [slot_keys[a] == slot_keys[b] for a, b in zip(t["slots"], t["ref_slots"], strict=True)],
        dtype=float,
    )
    in_nbest = (hyps["domain"] == hyps["ref_domain"]).groupby(codes).max()
    return pd.DataFrame(
        {
            "ref_domain": t["ref_domain"].to_numpy(),
            "domain_acc": right_domain,
            "intent_acc": right_intent,
            "slot_match": slot_match,
            "top1_ie": 1.0 - correct[top],
            "top1_semer": semer[top],
            "oracle_ie": 1.0 - pd.Series(correct).groupby(codes).max().to_numpy(),
            "oracle_domain": in_nbest.to_numpy(dtype=float),
            "nbest": np.bincount(codes).astype(float),
        }
    )


def _table(results: dict[str, pd.DataFrame], by_domain: bool) -> str:
    names = list(results)
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, label in COLUMNS:
        lines.append(
            f"| {label} | " + " | ".join(f"{results[n][key].mean():.3f}" for n in names) + " |"
        )
    if by_domain:
        lines += ["", "Per reference domain: utterances, then top-1 IE / slot match / oracle IE"]
        lines += ["| domain | n | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
        first = results[names[0]]
        for d, n in first["ref_domain"].value_counts().sort_index().items():
            cells = []
            for name in names:
                part = results[name][results[name]["ref_domain"] == d]
                cells.append(
                    f"{part['top1_ie'].mean():.2f} / {part['slot_match'].mean():.2f} / "
                    f"{part['oracle_ie'].mean():.2f}"
                )
            lines.append(f"| {d} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _measure(models: NluModels, test: pd.DataFrame) -> pd.DataFrame:
    return quality(validate_hypotheses(predict_corpus(models, test), source="test"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=Path, default=default_sources())
    parser.add_argument("--models", type=Path, help="measure these models instead of training")
    parser.add_argument("--before", type=Path, help="also measure these models, side by side")
    parser.add_argument("--by-domain", action="store_true", help="per reference domain too")
    parser.add_argument("--jobs", type=int, default=1, help="NLU training worker processes")
    parser.add_argument("--settings", type=Path, help="per-domain NLU settings file (JSON)")
    parser.add_argument("--keep", type=Path, help="keep the trained models in this directory")
    args = parser.parse_args()
    train, _, test = real_corpus_splits(args.sources)
    results: dict[str, pd.DataFrame] = {}
    if args.before:
        results["before"] = _measure(load_models(args.before), test)
    if args.models:
        results["models"] = _measure(load_models(args.models), test)
    else:
        settings = read_settings_file(args.settings) if args.settings else None
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            out = args.keep or Path(tmp) / "models"
            models = train_models(train, out, settings=settings, jobs=args.jobs)
            seconds = time.perf_counter() - started
            print(f"NLU trained on {len(train):,} utterances in {seconds:.1f} s (jobs={args.jobs})")
            slow = sorted(models.training_seconds.items(), key=lambda kv: -kv[1])[:3]
            print("slowest domains: " + ", ".join(f"{d} {s:.1f} s" for d, s in slow))
            results["after" if args.before else "models"] = _measure(models, test)
    print(f"test split: {len(test):,} utterances\n")
    print(_table(results, args.by_domain))


if __name__ == "__main__":
    main()
