"""The R0..R3 table on a demo data set: train on dev hypotheses, evaluate on test.

Usage::

    .venv/bin/python benchmarks/loss_table.py demo_data/media [--boot 500] [--domain-scope]
    .venv/bin/python benchmarks/loss_table.py demo_data/real --shipped --domain-scope --l2-auto
    .venv/bin/python benchmarks/loss_table.py --train DEV.parquet --test TEST.parquet

Trains R1, R2 and R3 (docs/losses.md; options λ = 1e-3, α = 1, τ = 1, scope ``utterance``) on
``DIR/hypotheses/dev.parquet`` into temporary registries, scores ``DIR/hypotheses/test.parquet``
with R0 and each registry, and prints a markdown table of top-1 SemER, top-1 IE, ECE (all
hypotheses), top-1 ECE and Brier, each with a 90% bootstrap interval over test utterances
(:func:`reranker.evaluate` with ``n_boot``). The row "DM" is cross-domain score distribution
matching (:mod:`reranker.distribution_matching`) of the R0 scores, fitted on the same dev
hypotheses. Below the table, the paired differences of R2, R3 and DM against R0 in top-1 SemER
and top-1 IE (:func:`reranker.compare.compare_scorings`, same resamples).

``--shipped`` scores R1, R2 and R3 with the data set's published weights (``DIR/weights/r1``,
...; the demo trains them on ``dev`` with the defaults) instead of training them again;
``--l2-auto`` adds R2 and R3 trained with ``l2="auto"``; ``--device-off`` adds R2 and R3 with the
device weights sharing λ (``device_l2=None``, the default before the device penalty). ``--l2`` is
a number or ``auto`` (default 1e-3); the device penalty is otherwise chosen per domain by
cross-validation, as in every training run (docs/losses.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from reranker.compare import compare_scorings
from reranker.distribution_matching import fit_distribution_matching
from reranker.evaluation import evaluate
from reranker.features import DEVICE_PREFIX
from reranker.hypotheses import read_hypotheses
from reranker.ranking import r0_score
from reranker.scoring import load_documents, score_with_registry
from reranker.semer import table_errors
from reranker.tables import score_table
from reranker.training import train_domains

METRICS = (
    ("top1_semer", "top-1 SemER"),
    ("top1_ie", "top-1 IE"),
    ("ece", "ECE"),
    ("ece_top1", "top-1 ECE"),
    ("brier", "Brier"),
)


def _cell(report: dict[str, Any], key: str) -> str:
    lo, hi = report["intervals"][key]
    return f"{report[key]:.4f} [{lo:.4f}, {hi:.4f}]"


def _train(
    train: Any, out: Path, *, loss: str, scope: str, l2: Any, device_l2: Any, jobs: int | None
) -> str:
    """Train every domain into ``out``; a note on the run (domains, seconds, convergence)."""
    start = time.perf_counter()
    results = train_domains(
        train, loss=loss, out=out, scope=scope, jobs=jobs, l2=l2, device_l2=device_l2
    )
    seconds = time.perf_counter() - start
    failed = [d for d, r in results.items() if not r.ok]
    if failed:
        raise SystemExit(f"{loss} ({scope}, l2={l2}): training failed for {failed}")
    note = f"{len(results)} domains, {seconds:.1f} s"
    not_converged = [d for d, r in results.items() if not r.converged]
    if not_converged:
        note += f", not converged: {', '.join(not_converged)}"
    return note


def _largest_device_weight(weights: Path) -> float:
    """Largest absolute device weight over a registry's current documents."""
    documents = load_documents(weights) or {}
    return max(
        (
            abs(w)
            for doc in documents.values()
            for f, w in zip(doc["features"], doc["weights"], strict=True)
            if str(f).startswith(DEVICE_PREFIX)
        ),
        default=0.0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", help="a demo data set directory")
    parser.add_argument("--train", help="training hypotheses (default DIR/hypotheses/dev.parquet)")
    parser.add_argument("--test", help="test hypotheses (default DIR/hypotheses/test.parquet)")
    parser.add_argument("--boot", type=int, default=500, help="bootstrap resamples")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument(
        "--domain-scope", action="store_true", help="also train R1 and R3 with scope=domain"
    )
    parser.add_argument("--l2", default="0.001", help="L2 penalty: a number or 'auto'")
    parser.add_argument("--shipped", action="store_true", help="R1-R3 from DIR/weights/<loss>")
    parser.add_argument("--l2-auto", action="store_true", help="add R2 and R3 with l2=auto")
    parser.add_argument(
        "--device-off", action="store_true", help="add R2 and R3 with the device penalty off"
    )
    args = parser.parse_args()
    args.l2 = args.l2 if args.l2 == "auto" else float(args.l2)
    if args.dataset:
        root = Path(args.dataset) / "hypotheses"
        train_path = Path(args.train or root / "dev.parquet")
        test_path = Path(args.test or root / "test.parquet")
    elif args.train and args.test:
        train_path, test_path = Path(args.train), Path(args.test)
    else:
        parser.error("give a data set directory or --train and --test")
    train = read_hypotheses(train_path)
    test = read_hypotheses(test_path)
    errors = table_errors(test)
    print(
        f"train: {train_path} ({len(train):,} hypotheses, {train['utterance_id'].nunique():,} "
        f"utterances); test: {test_path} ({len(test):,} hypotheses, "
        f"{test['utterance_id'].nunique():,} utterances); {args.boot} bootstrap resamples\n"
    )
    runs: list[tuple[str, str, str, Any, Any]] = [
        (f"R{k}", f"r{k}", "utterance", args.l2, "auto") for k in (1, 2, 3)
    ]
    if args.domain_scope:
        runs += [("R1, scope domain", "r1", "domain", args.l2, "auto")]
        runs += [("R3, scope domain", "r3", "domain", args.l2, "auto")]
    if args.l2_auto:
        runs += [
            ("R2, l2 auto", "r2", "utterance", "auto", "auto"),
            ("R3, l2 auto", "r3", "utterance", "auto", "auto"),
        ]
    if args.device_off:
        runs += [
            ("R2, device off", "r2", "utterance", args.l2, None),
            ("R3, device off", "r3", "utterance", args.l2, None),
        ]
    reports: list[tuple[str, dict[str, Any], str]] = []
    r0 = r0_score(test)
    scores: dict[str, Any] = {"R0": r0}
    reports.append(("R0", evaluate(score_table(test, r0, errors=errors), n_boot=args.boot), ""))
    matcher = fit_distribution_matching(train["domain"], r0_score(train), table_errors(train)[1])
    scores["DM"] = matcher.transform(test["domain"], r0)
    dm_report = evaluate(score_table(test, scores["DM"], errors=errors), n_boot=args.boot)
    shipped = Path(args.dataset) / "weights" if args.shipped and args.dataset else None
    with tempfile.TemporaryDirectory() as tmp:
        for label, loss, scope, l2, device_l2 in runs:
            if shipped is not None and scope == "utterance" and l2 == args.l2 and device_l2:
                out, note = shipped / loss, f"published weights {shipped / loss}"
            else:
                out = Path(tmp) / label.replace(" ", "_").replace(",", "")
                note = _train(
                    train, out, loss=loss, scope=scope, l2=l2, device_l2=device_l2, jobs=args.jobs
                )
            scoring = score_with_registry(test, out)
            report = evaluate(score_table(test, scoring.score, errors=errors), n_boot=args.boot)
            if scoring.r0_domains:
                note += f", R0 for {', '.join(scoring.r0_domains)}"
            note += f", largest |device weight| {_largest_device_weight(out):.3f}"
            reports.append((label, report, note))
            scores[label] = scoring.score
    reports.append(("DM", dm_report, "R0 scores matched per domain, one isotonic calibrator"))
    print("| loss | " + " | ".join(name for _, name in METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    for label, report, _ in reports:
        print(f"| {label} | " + " | ".join(_cell(report, k) for k, _ in METRICS) + " |")
    print()
    for label, _, note in reports[1:]:
        print(f"- {label}: {note}")
    print("\nPaired differences against R0 (90% paired utterance-bootstrap interval)\n")
    print("| scoring | top-1 SemER − R0 | top-1 IE − R0 |")
    print("|---|---|---|")
    for label in [k for k in scores if k != "R0"]:
        m = compare_scorings(test, r0, scores[label], n_boot=args.boot).metrics
        cells = [
            f"{m.loc[k, 'difference']:+.4f} [{m.loc[k, 'low']:+.4f}, {m.loc[k, 'high']:+.4f}]"
            for k in ("top1_semer", "top1_ie")
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
