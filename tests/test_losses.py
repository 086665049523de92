"""Losses R1, R2, R3 (docs/losses.md): values against slow references, gradients with check_grad."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import check_grad
from scipy.special import expit, softmax

from reranker.errors import DataError, ParameterError
from reranker.losses import LossProblem, loss_parts, make_problem, objective


def _random_problem(
    seed: int,
    *,
    n_groups: int = 12,
    k: int = 3,
    temperature: float = 1.0,
    competitors: bool = False,
    cap_semer: bool = False,
) -> tuple[LossProblem, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, n_groups)
    groups = np.repeat([f"g{i}" for i in range(n_groups)], sizes)
    perm = rng.permutation(groups.size)  # rows of one utterance need not be adjacent
    groups = groups[perm]
    n = groups.size
    X = rng.normal(size=(n, k)) * rng.uniform(0.5, 3, k)
    y = (rng.random(n) < 0.4).astype(float)
    semer = rng.choice([0.0, 0.5, 1.0, 1.5, 2.0], n)
    data = {"X": X, "y": y, "groups": groups, "semer": semer}
    kwargs = {}
    if competitors:
        m = 2 * n_groups
        cg = np.append(rng.choice(groups, m - 1), "not-in-training")
        cz = rng.normal(0, 2, m)
        cs = rng.choice([0.0, 1.0, 2.0], m)
        kwargs = {"competitor_groups": cg, "competitor_z": cz, "competitor_semer": cs}
        data.update({"cg": cg, "cz": cz, "cs": cs})
    problem = make_problem(
        X, y, groups, semer=semer, temperature=temperature, cap_semer=cap_semer, **kwargs
    )
    return problem, data


def _slow_objective(
    theta: np.ndarray,
    data: dict[str, np.ndarray],
    *,
    loss: str,
    alpha: float,
    l2: float,
    temperature: float,
) -> float:
    """Obviously-correct reference: a Python loop over utterances."""
    w, b = theta[:-1], theta[-1]
    z = data["X"] @ w + b
    groups = data["groups"]
    uniq = list(dict.fromkeys(groups.tolist()))
    r1 = r2 = 0.0
    for g in uniq:
        rows = np.flatnonzero(groups == g)
        zs, ss = list(z[rows]), list(data["semer"][rows])
        if "cg" in data:
            crow = np.flatnonzero(data["cg"] == g)
            zs += list(data["cz"][crow])
            ss += list(data["cs"][crow])
        p = softmax(np.array(zs) / temperature)
        r1 += float(p @ np.array(ss))
        s = expit(z[rows])
        y = data["y"][rows]
        r2 += float(-(y * np.log(s) + (1 - y) * np.log(1 - s)).sum())
    r1 /= len(uniq)
    r2 /= len(uniq)
    value = {"r1": r1, "r2": r2, "r3": r1 + alpha * r2}[loss]
    return value + l2 * float(w @ w)


CASES = [
    (loss, scope, tau)
    for loss in ("r1", "r2", "r3")
    for scope in ("domain", "utterance")
    for tau in (1.0, 0.4)
    if not (loss == "r2" and (scope == "utterance" or tau != 1.0))
]


@pytest.mark.parametrize(("loss", "scope", "tau"), CASES)
def test_objective_matches_slow_reference(loss: str, scope: str, tau: float) -> None:
    problem, data = _random_problem(3, temperature=tau, competitors=scope == "utterance")
    rng = np.random.default_rng(4)
    for _ in range(3):
        theta = rng.normal(size=problem.X.shape[1] + 1)
        value, _ = objective(theta, problem, loss=loss, alpha=0.7, l2=0.05)  # type: ignore[arg-type]
        slow = _slow_objective(theta, data, loss=loss, alpha=0.7, l2=0.05, temperature=tau)
        assert value == pytest.approx(slow, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize(("loss", "scope", "tau"), CASES)
def test_objective_gradient_check_grad(loss: str, scope: str, tau: float) -> None:
    problem, _ = _random_problem(5, temperature=tau, competitors=scope == "utterance")
    rng = np.random.default_rng(6)
    for _ in range(3):
        theta = rng.normal(size=problem.X.shape[1] + 1)

        def f(t: np.ndarray) -> float:
            return objective(t, problem, loss=loss, alpha=1.3, l2=0.1)[0]  # type: ignore[arg-type]

        def g(t: np.ndarray) -> np.ndarray:
            return objective(t, problem, loss=loss, alpha=1.3, l2=0.1)[1]  # type: ignore[arg-type]

        err = check_grad(f, g, theta, epsilon=1e-6)
        assert err < 1e-5 * max(1.0, float(np.linalg.norm(g(theta))))


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_groups=st.integers(1, 15),
    k=st.integers(1, 5),
    tau=st.floats(0.2, 5.0),
    loss=st.sampled_from(["r1", "r2", "r3"]),
    competitors=st.booleans(),
    cap=st.booleans(),
)
def test_gradient_on_random_shapes(
    seed: int, n_groups: int, k: int, tau: float, loss: str, competitors: bool, cap: bool
) -> None:
    problem, _ = _random_problem(
        seed, n_groups=n_groups, k=k, temperature=tau, competitors=competitors, cap_semer=cap
    )
    theta = np.random.default_rng(seed + 1).normal(size=k + 1)
    lam = np.linspace(0.0, 0.2, k)  # per-weight penalties

    def f(t: np.ndarray) -> float:
        return objective(t, problem, loss=loss, l2=lam)[0]  # type: ignore[arg-type]

    def g(t: np.ndarray) -> np.ndarray:
        return objective(t, problem, loss=loss, l2=lam)[1]  # type: ignore[arg-type]

    err = check_grad(f, g, theta, epsilon=1e-6)
    assert err < 1e-5 * max(1.0, float(np.linalg.norm(g(theta))))


def test_r1_hand_worked() -> None:
    # one utterance, z = [0, log 3]: softmax = [1/4, 3/4]; SemER = [1, 0] -> 1/4
    X = np.array([[0.0], [np.log(3.0)]])
    problem = make_problem(X, [0, 1], ["u", "u"], semer=[1.0, 0.0])
    value, grad = objective([1.0, 0.0], problem, loss="r1", l2=0.0)
    assert value == pytest.approx(0.25)
    # dE/dz = p (s - E): [1/4 * 3/4, 3/4 * -1/4]; dE/dw = Σ x dE/dz = log 3 * -3/16
    assert grad[0] == pytest.approx(-3 / 16 * np.log(3.0))
    assert grad[1] == pytest.approx(0.0)  # a shared bias cancels in a softmax


def test_r1_utterance_scope_hand_worked() -> None:
    # the domain's one hypothesis z = 0 (SemER 0) against a frozen competitor z = log 3 (SemER 1)
    problem = make_problem(
        [[0.0]],
        [1],
        ["u"],
        semer=[0.0],
        competitor_groups=["u"],
        competitor_z=[np.log(3.0)],
        competitor_semer=[1.0],
    )
    value, _ = objective([0.0, 0.0], problem, loss="r1", l2=0.0)
    assert value == pytest.approx(0.75)


def test_r2_hand_worked_and_penalty_skips_bias() -> None:
    problem = make_problem([[1.0], [2.0]], [1, 0], ["a", "b"])
    value, grad = objective([0.5, -1.0], problem, loss="r2", l2=0.1)
    z = np.array([-0.5, 0.0])
    ce = np.log1p(np.exp(-z[0])) + np.log1p(np.exp(z[1]))
    assert value == pytest.approx(ce / 2 + 0.1 * 0.25)
    assert grad[1] == pytest.approx(((expit(z[0]) - 1) + expit(z[1])) / 2)


def test_r3_is_r1_plus_alpha_r2() -> None:
    problem, _ = _random_problem(9)
    theta = np.linspace(-1, 1, problem.X.shape[1] + 1)
    r1, g1 = objective(theta, problem, loss="r1", l2=0.0)
    r2, g2 = objective(theta, problem, loss="r2", l2=0.0)
    r3, g3 = objective(theta, problem, loss="r3", alpha=2.5, l2=0.0)
    assert r3 == pytest.approx(r1 + 2.5 * r2)
    np.testing.assert_allclose(g3, g1 + 2.5 * g2)
    parts = loss_parts(theta, problem)
    assert parts == pytest.approx({"expected_semer": r1, "cross_entropy": r2})


def test_utterance_scope_without_competitors_equals_domain_scope() -> None:
    problem, data = _random_problem(11)
    empty = make_problem(
        data["X"],
        data["y"],
        data["groups"],
        semer=data["semer"],
        competitor_groups=[],
        competitor_z=[],
        competitor_semer=[],
    )
    theta = np.ones(problem.X.shape[1] + 1)
    assert objective(theta, empty, loss="r1")[0] == objective(theta, problem, loss="r1")[0]


def test_extreme_logits_stay_finite() -> None:
    problem, _ = _random_problem(12, competitors=True)
    theta = np.full(problem.X.shape[1] + 1, 800.0)
    for loss in ("r1", "r2", "r3"):
        value, grad = objective(theta, problem, loss=loss)  # type: ignore[arg-type]
        assert np.isfinite(value)
        assert np.isfinite(grad).all()


def test_cap_semer_caps_inside_the_loss() -> None:
    problem = make_problem([[0.0]], [0], ["u"], semer=[2.0], cap_semer=True)
    assert objective([0.0, 0.0], problem, loss="r1", l2=0.0)[0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"X": [1.0, 2.0]}, "2-dimensional"),
        ({"y": [0, 2]}, "only 0 and 1"),
        ({"groups": ["a"]}, "groups has 1"),
        ({"semer": [0.0, -1.0]}, "semer must be"),
        ({"temperature": 0.0}, "temperature"),
        ({"X": [[np.nan], [1.0]]}, "NaN"),
    ],
)
def test_make_problem_rejects_bad_input(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "X": [[1.0], [2.0]],
        "y": [0, 1],
        "groups": ["a", "b"],
        "semer": [0.0, 1.0],
        "temperature": 1.0,
    }
    args.update(kwargs)
    with pytest.raises(DataError, match=match):
        make_problem(
            args["X"],  # type: ignore[arg-type]
            args["y"],  # type: ignore[arg-type]
            args["groups"],  # type: ignore[arg-type]
            semer=args["semer"],  # type: ignore[arg-type]
            temperature=args["temperature"],  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"loss": "r4"}, "loss must be"), ({"alpha": -1.0}, "alpha"), ({"l2": -0.1}, "l2")],
)
def test_objective_rejects_bad_options(kwargs: dict[str, object], match: str) -> None:
    problem, _ = _random_problem(1)
    with pytest.raises(ParameterError, match=match):
        objective(np.zeros(problem.X.shape[1] + 1), problem, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("loss", "scope", "tau"), [c for c in CASES if c[0] == "r1"])
def test_objective_with_huge_logits_matches_slow_reference(
    loss: str, scope: str, tau: float
) -> None:
    # |z / τ| above 350 takes the per-utterance shifted softmax; values must not change
    problem, data = _random_problem(7, temperature=tau, competitors=scope == "utterance")
    rng = np.random.default_rng(8)
    theta = rng.normal(size=problem.X.shape[1] + 1) * 400.0
    value, grad = objective(theta, problem, loss=loss, alpha=0.7, l2=0.05)  # type: ignore[arg-type]
    with np.errstate(divide="ignore", invalid="ignore"):  # the reference's unused R2 term
        slow = _slow_objective(theta, data, loss=loss, alpha=0.7, l2=0.05, temperature=tau)
    assert np.isfinite(grad).all()
    assert value == pytest.approx(slow, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(
    ("loss", "tau"), [("r1", 1.0), ("r2", 1.0), ("r3", 1.0), ("r3", 0.4), ("r1", 2.5)]
)
def test_fused_and_shifted_paths_agree(
    monkeypatch: pytest.MonkeyPatch, loss: str, tau: float
) -> None:
    from reranker import losses

    problem, _ = _random_problem(9, temperature=tau, competitors=True)
    theta = np.random.default_rng(10).normal(size=problem.X.shape[1] + 1)
    fast = objective(theta, problem, loss=loss, alpha=0.5, l2=0.01)  # type: ignore[arg-type]
    monkeypatch.setattr(losses, "fused_objective", lambda *a, **k: None)  # the pass declines
    monkeypatch.setattr(losses, "SAFE_EXPONENT", -1.0)  # and the shifted path runs
    shifted = objective(theta, problem, loss=loss, alpha=0.5, l2=0.01)  # type: ignore[arg-type]
    assert fast[0] == pytest.approx(shifted[0], rel=1e-13)
    np.testing.assert_allclose(fast[1], shifted[1], rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("loss", ["r1", "r2", "r3"])
def test_fused_pass_across_many_blocks_matches_slow_reference(
    monkeypatch: pytest.MonkeyPatch, loss: str
) -> None:
    from reranker import kernel_losses

    monkeypatch.setattr(kernel_losses, "BLOCK_ROWS", 5)  # blocks of one or two utterances
    problem, data = _random_problem(11, n_groups=30, temperature=0.7, competitors=True)
    assert problem.blocks.bounds.shape[0] > 8
    theta = np.random.default_rng(12).normal(size=problem.X.shape[1] + 1)
    value, grad = objective(theta, problem, loss=loss, alpha=0.7, l2=0.05)  # type: ignore[arg-type]
    slow = _slow_objective(theta, data, loss=loss, alpha=0.7, l2=0.05, temperature=0.7)
    assert value == pytest.approx(slow, rel=1e-10, abs=1e-12)
    err = check_grad(
        lambda t: objective(t, problem, loss=loss, alpha=0.7, l2=0.05)[0],  # type: ignore[arg-type]
        lambda t: objective(t, problem, loss=loss, alpha=0.7, l2=0.05)[1],  # type: ignore[arg-type]
        theta,
        epsilon=1e-6,
    )
    assert err < 1e-5 * max(1.0, float(np.linalg.norm(grad)))


def test_softplus_sum_by_mantissa_products_matches_log1p() -> None:
    from reranker.kernel_losses import _log1p_exp_sum

    rng = np.random.default_rng(13)
    for n in (1, 31, 32, 33, 1000):
        z = np.r_[rng.normal(0, 40, n - 1), 349.0] if n > 1 else np.array([-349.0])
        e = np.exp(z)
        exact = float(np.sum(np.logaddexp(0.0, z)))
        assert _log1p_exp_sum(e, np.empty(n)) == pytest.approx(exact, rel=1e-14, abs=1e-300)


def _tied_problem(
    seed: int, n_groups: int, k: int, tau: float, competitors: bool
) -> tuple[LossProblem, np.ndarray]:
    """Utterances of 1 to 6 rows with repeated feature rows (tied logits) and tied SemER."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, n_groups)
    groups = rng.permutation(np.repeat(np.arange(n_groups).astype(str), sizes))
    n = groups.size
    X = rng.choice([-1.0, 0.0, 0.5, 2.0], size=(n, k))  # few distinct rows: ties
    y = (rng.random(n) < 0.3).astype(float)
    semer = rng.choice([0.0, 0.0, 1.0, 0.5], n)
    kwargs: dict[str, np.ndarray] = {}
    if competitors:
        m = n_groups
        kwargs = {
            "competitor_groups": rng.choice(groups, m),
            "competitor_z": rng.choice([0.0, 1.0, -3.0], m),
            "competitor_semer": rng.choice([0.0, 1.0], m),
        }
    problem = make_problem(X, y, groups, semer=semer, temperature=tau, **kwargs)  # type: ignore[arg-type]
    theta = rng.choice([0.0, 0.3, -1.2], size=k + 1)
    return problem, theta


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_groups=st.integers(1, 40),
    k=st.integers(1, 4),
    tau=st.sampled_from([1.0, 0.5, 3.0]),
    competitors=st.booleans(),
    block=st.integers(1, 30),
    parallel=st.booleans(),
)
def test_fused_pass_matches_shifted_reference_with_ties(
    seed: int, n_groups: int, k: int, tau: float, competitors: bool, block: int, parallel: bool
) -> None:
    from reranker import kernel_losses, losses

    weights = {"r1": 0.0, "r2": 1.0, "r3": 0.6}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kernel_losses, "BLOCK_ROWS", block)  # chunks of one to many utterances
        mp.setattr(kernel_losses, "PARALLEL_ROWS", 1 if parallel else 10**9)
        problem, theta = _tied_problem(seed, n_groups, k, tau, competitors)
        assert np.array_equal(np.sort(problem.order), np.arange(problem.X.shape[0]))
        fused = {
            loss: kernel_losses.fused_objective(
                theta,
                problem.X,
                problem.semer,
                problem.blocks,
                n_utterances=problem.n_utterances,
                temperature=tau,
                r1=loss != "r2",
                r2_weight=weight,
            )
            for loss, weight in weights.items()
        }
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(losses, "fused_objective", lambda *a, **kw: None)
        mp.setattr(losses, "SAFE_EXPONENT", -1.0)  # the per-utterance shifted softmax
        for loss in weights:
            slow = objective(theta, problem, loss=loss, alpha=0.6, l2=0.0)  # type: ignore[arg-type]
            fast = fused[loss]
            assert fast is not None
            assert fast[0] == pytest.approx(slow[0], rel=1e-12, abs=1e-15)
            np.testing.assert_allclose(fast[1], slow[1], rtol=1e-11, atol=1e-14)


def test_layout_puts_each_utterance_in_one_chunk_rank_major() -> None:
    from reranker.kernel_losses import layout

    starts = np.array([0, 2, 3, 6, 8, 11, 12])  # counts 2, 1, 3, 2, 3, 1, 2 (n = 14)
    rows = layout(starts, 14)
    assert np.array_equal(np.sort(rows.rows), np.arange(14))
    counts = np.diff(np.r_[starts, 14])
    assert np.array_equal(counts[rows.utterances], np.sort(counts, kind="stable"))
    for (r0, u0, c), (r1, u1) in zip(rows.bounds[:-1], rows.bounds[1:, :2], strict=True):
        block = rows.rows[r0:r1].reshape(c, -1)  # column g: the rows of one utterance, in order
        expected = starts[rows.utterances[u0:u1]] + np.arange(c)[:, None]
        assert np.array_equal(block, expected)
        assert np.array_equal(rows.group[r0:r1].reshape(c, -1), np.tile(np.arange(u0, u1), (c, 1)))


def test_two_threads_give_the_single_pass_result(monkeypatch: pytest.MonkeyPatch) -> None:
    from reranker import kernel_losses

    problem, _ = _random_problem(21, n_groups=200, k=4, temperature=0.8, competitors=True)
    theta = np.random.default_rng(22).normal(size=5)
    monkeypatch.setattr(kernel_losses.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(kernel_losses, "_blas_threads", lambda: 2)
    for loss in ("r1", "r2", "r3"):
        monkeypatch.setattr(kernel_losses, "PARALLEL_ROWS", 10**9)
        one = objective(theta, problem, loss=loss, alpha=0.4, l2=0.01)  # type: ignore[arg-type]
        monkeypatch.setattr(kernel_losses, "PARALLEL_ROWS", 1)
        assert len(kernel_losses._halves(problem.blocks.bounds)) == 2
        two = objective(theta, problem, loss=loss, alpha=0.4, l2=0.01)  # type: ignore[arg-type]
        assert two[0] == pytest.approx(one[0], rel=1e-13)
        np.testing.assert_allclose(two[1], one[1], rtol=1e-12, atol=1e-15)


def test_one_pass_in_a_process_kept_on_one_core(monkeypatch: pytest.MonkeyPatch) -> None:
    from threadpoolctl import threadpool_limits

    from reranker import kernel_losses

    problem, _ = _random_problem(23, n_groups=100)
    monkeypatch.setattr(kernel_losses, "PARALLEL_ROWS", 1)
    monkeypatch.setattr(kernel_losses.os, "cpu_count", lambda: 2)
    with threadpool_limits(1, user_api="blas"):
        assert len(kernel_losses._halves(problem.blocks.bounds)) == 1
