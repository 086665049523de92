"""Fitting one domain's re-ranker on realistic data, side by side with scikit-learn.

Usage: ``python benchmarks/bench_training.py [--utterances 170000] [--l2 1e-3] [--repeat 1]``

Data: :func:`reranker.synthetic.realistic_hypotheses` (about six hypotheses per utterance, so
about one million rows by default), the default features (log and raw confidences, rank, device
one-hot: ten columns, unstandardised), the correct bit and SemER of every row.

Measured in one process, printing ratios last:

1. R2 fit: ``DomainReranker("r2")`` (Newton's method on the exact Hessian) against
   scikit-learn's ``LogisticRegression(solver="lbfgs")`` on the same matrix with the same
   penalty (``C = 1 / (2 λ U)``, U utterances: our R2 is ``(1/U) Σ CE + λ‖w‖²``), scikit-learn
   run with ``tol=1e-8`` so that both reach the same objective (their relative difference is
   printed);
2. one evaluation of the R1, R2 and R3 objective and gradient against one ``X @ w`` over the
   same rows.
"""

from __future__ import annotations

import argparse
import os
import warnings

import numpy as np
from _timing import best_of, ratio_table
from sklearn.linear_model import LogisticRegression

from reranker.estimator import DomainReranker
from reranker.features import default_feature_names, feature_matrix
from reranker.losses import _objective, make_problem, objective
from reranker.semer import table_errors
from reranker.synthetic import realistic_hypotheses


def loss_rows(
    X: np.ndarray, y: np.ndarray, groups: np.ndarray, semer: np.ndarray, coef: np.ndarray, l2: float
) -> list[tuple[str, str, str, float | None]]:
    """Time one R1, R2 and R3 objective-and-gradient evaluation against one ``X @ w``.

    The ratio of these rows is ours / ``X @ w`` (the goal is at most 4).
    """
    scaled = make_problem((X - X.mean(axis=0)) / X.std(axis=0), y, groups, semer=semer)
    theta = np.r_[coef * X.std(axis=0), 0.0]
    penalty = np.full(X.shape[1], l2)
    t_xw, _ = best_of(lambda: scaled.X @ theta[:-1], 20)
    evals = {
        loss: best_of(lambda loss=loss: _objective(theta, scaled, loss, 1.0, penalty), 10)[0]
        for loss in ("r1", "r2", "r3")
    }
    print(f"\none X @ w over the same rows: {t_xw * 1e3:.1f} ms")
    for loss, seconds in evals.items():
        print(f"{loss} loss and gradient: {seconds * 1e3:.1f} ms")
    return [
        (
            f"{loss.upper()} loss + gradient (ours / X @ w)",
            f"{seconds * 1e3:.1f} ms",
            f"{t_xw * 1e3:.1f} ms (X @ w)",
            seconds / t_xw,
        )
        for loss, seconds in evals.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=170_000)
    parser.add_argument("--l2", type=float, default=1e-3)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    table = realistic_hypotheses(args.utterances, seed=0)
    X = feature_matrix(table, default_feature_names(table["device"].unique()))
    semer, y = table_errors(table)
    groups = table["utterance_id"].to_numpy()
    n_utt = int(table["utterance_id"].nunique())
    print(f"data: {X.shape[0]:,} rows x {X.shape[1]} features, {n_utt:,} utterances")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}\n")

    t_ours, ours = best_of(
        lambda: DomainReranker("r2", l2=args.l2).fit(X, y, groups=groups), args.repeat
    )

    def sklearn_fit() -> LogisticRegression:
        model = LogisticRegression(C=1.0 / (2.0 * args.l2 * n_utt), tol=1e-8, max_iter=100_000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model.fit(X, y)

    t_sk, sk = best_of(sklearn_fit, args.repeat)
    problem = make_problem(X, y, groups)
    f_ours = objective(np.r_[ours.coef_, ours.intercept_], problem, loss="r2", l2=args.l2)[0]
    f_sk = objective(np.r_[sk.coef_.ravel(), sk.intercept_], problem, loss="r2", l2=args.l2)[0]
    print(
        f"R2 fit, ours (Newton, {ours.n_iter_} iterations):  {t_ours:8.2f} s  objective {f_ours:.12g}"
    )
    print(
        f"R2 fit, sklearn lbfgs ({int(sk.n_iter_[0])} iterations): {t_sk:8.2f} s  objective {f_sk:.12g}"
    )
    print(f"relative objective difference (sklearn - ours) / ours: {(f_sk - f_ours) / f_ours:+.2e}")

    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    rows: list[tuple[str, str, str, float | None]] = [
        (
            f"R2 fit, {X.shape[0]:,} x {X.shape[1]}",
            f"{t_ours:.2f} s",
            f"{t_sk:.2f} s (sklearn lbfgs)",
            t_sk / t_ours,
        )
    ]
    rows += loss_rows(X, y, groups, semer, ours.coef_, args.l2)
    ratio_table(rows)


if __name__ == "__main__":
    main()
