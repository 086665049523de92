"""DomainReranker: a scikit-learn estimator trained with R1, R2 or R3."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logit
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from reranker.errors import DataError, RerankerError
from reranker.estimator import Competitors, DomainReranker
from reranker.features import default_feature_names, feature_matrix
from reranker.hypotheses import validate_hypotheses
from reranker.losses import make_problem, objective
from reranker.semer import table_errors
from reranker.synthetic import synthetic_hypotheses


@pytest.fixture(scope="module")
def domain_data() -> dict[str, np.ndarray]:
    table = validate_hypotheses(synthetic_hypotheses(1500, seed=7))
    semer, correct = table_errors(table)
    music = (table["domain"] == "Music").to_numpy()
    names = default_feature_names(table["device"].unique())
    return {
        "X": feature_matrix(table[music], names),
        "y": correct[music],
        "semer": semer[music],
        "groups": table["utterance_id"].to_numpy()[music],
    }


def test_get_set_params_and_clone() -> None:
    model = DomainReranker("r3", l2=0.1, alpha=2.0, scope="utterance", temperature=0.5)
    params = model.get_params()
    assert params["loss"] == "r3"
    assert params["alpha"] == 2.0
    assert params["temperature"] == 0.5
    other = clone(model).set_params(loss="r1", l2=0.0)
    assert other.get_params()["loss"] == "r1"
    assert model.get_params()["loss"] == "r3"


@pytest.mark.parametrize("l2", [1e-3, 0.05])
def test_r2_matches_sklearn_logistic_regression(
    domain_data: dict[str, np.ndarray], l2: float
) -> None:
    X, y, groups = domain_data["X"], domain_data["y"], domain_data["groups"]
    model = DomainReranker("r2", l2=l2, tol=1e-9).fit(X, y, groups=groups)
    # ours: (1/U) Σ_h CE_h + λ‖w‖²; sklearn: ½‖w‖² + C Σ_h CE_h (intercept unpenalised).
    # Ours divided by 2λ is ½‖w‖² + Σ_h CE_h / (2λU): the same minimiser with C = 1/(2λU).
    n_utt = len(set(groups.tolist()))
    reference = LogisticRegression(C=1.0 / (2.0 * l2 * n_utt), tol=1e-12, max_iter=100_000)
    reference.fit(X, y)
    problem = make_problem(X, y, groups)
    theirs = np.r_[reference.coef_.ravel(), reference.intercept_]
    ours = np.r_[model.coef_, model.intercept_]
    loss_ours = objective(ours, problem, loss="r2", l2=l2)[0]
    loss_theirs = objective(theirs, problem, loss="r2", l2=l2)[0]
    assert model.converged_
    assert loss_ours == pytest.approx(model.objective_, abs=1e-10)
    assert abs(loss_ours - loss_theirs) < 1e-4
    assert loss_ours <= loss_theirs + 1e-9
    np.testing.assert_allclose(model.predict_proba(X), reference.predict_proba(X), atol=1e-3)


def test_monotone_decrease_to_known_optimum() -> None:
    # R2 without penalty on a binary feature: the optimum is the empirical log-odds of each
    # cell: b = logit(P(y | x=0)), w + b = logit(P(y | x=1)).
    rng = np.random.default_rng(0)
    x = (rng.random(4000) < 0.3).astype(float)
    y = (rng.random(4000) < np.where(x == 1, 0.8, 0.25)).astype(int)
    model = DomainReranker("r2", l2=0.0, tol=1e-10).fit(x[:, None], y, groups=np.arange(4000) // 4)
    curve = np.asarray(model.loss_curve_)
    assert curve.size >= 2
    assert (np.diff(curve) <= 1e-12).all()
    assert model.intercept_ == pytest.approx(logit(y[x == 0].mean()), abs=1e-5)
    assert model.coef_[0] + model.intercept_ == pytest.approx(logit(y[x == 1].mean()), abs=1e-5)


@pytest.mark.parametrize("loss", ["r1", "r3"])
def test_semer_losses_decrease_monotonically(domain_data: dict[str, np.ndarray], loss: str) -> None:
    model = DomainReranker(loss).fit(
        domain_data["X"], domain_data["y"], groups=domain_data["groups"], semer=domain_data["semer"]
    )
    curve = np.asarray(model.loss_curve_)
    assert (np.diff(curve) <= 1e-12).all()
    assert model.converged_
    assert model.metrics_["expected_semer"] < np.mean(domain_data["semer"])


def test_standardisation_only_preconditions(domain_data: dict[str, np.ndarray]) -> None:
    args = (domain_data["X"], domain_data["y"])
    kw = {"groups": domain_data["groups"], "semer": domain_data["semer"]}
    a = DomainReranker("r3", tol=1e-9).fit(*args, **kw)
    b = DomainReranker("r3", tol=1e-9, standardize=False, max_iter=20_000).fit(*args, **kw)
    assert a.objective_ == pytest.approx(b.objective_, abs=1e-7)
    np.testing.assert_allclose(
        a.decision_function(args[0]), b.decision_function(args[0]), atol=1e-3
    )


def test_fit_is_deterministic(domain_data: dict[str, np.ndarray]) -> None:
    fits = [
        DomainReranker("r3").fit(
            domain_data["X"],
            domain_data["y"],
            groups=domain_data["groups"],
            semer=domain_data["semer"],
        )
        for _ in range(2)
    ]
    np.testing.assert_array_equal(fits[0].coef_, fits[1].coef_)
    assert fits[0].intercept_ == fits[1].intercept_


def test_predict_proba_and_decision_function(domain_data: dict[str, np.ndarray]) -> None:
    X = domain_data["X"]
    model = DomainReranker().fit(X, domain_data["y"], groups=domain_data["groups"])
    proba = model.predict_proba(X)
    assert proba.shape == (X.shape[0], 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(model.decision_function(X), X @ model.coef_ + model.intercept_)
    np.testing.assert_array_equal(model.predict(X), (proba[:, 1] >= 0.5).astype(int))
    assert isinstance(model.n_iter_, int)
    np.testing.assert_array_equal(model.classes_, [0, 1])


def test_not_converged_warns(domain_data: dict[str, np.ndarray]) -> None:
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        model = DomainReranker("r2", max_iter=1).fit(
            domain_data["X"], domain_data["y"], groups=domain_data["groups"]
        )
    assert not model.converged_
    assert model.metrics_["converged"] is False


def test_utterance_scope_uses_competitors() -> None:
    # one hypothesis per utterance against a strong frozen competitor: only the utterance scope
    # lets the bias matter, and a correct-always domain raises its logits above the competitor.
    n = 50
    X = np.zeros((n, 1))
    groups = np.arange(n)
    comp = Competitors(groups=groups, z=np.full(n, 2.0), semer=np.ones(n))
    domain = DomainReranker("r1", scope="domain").fit(
        X, np.ones(n), groups=groups, semer=np.zeros(n)
    )
    utter = DomainReranker("r1", scope="utterance").fit(
        X, np.ones(n), groups=groups, semer=np.zeros(n), competitors=comp
    )
    assert domain.intercept_ == 0.0  # no gradient: a softmax over one hypothesis
    assert utter.intercept_ > 2.0


@pytest.mark.parametrize(
    ("params", "fit_kwargs", "match"),
    [
        ({"loss": "r1"}, {}, "needs the SemER"),
        ({"loss": "r9"}, {}, "loss must be"),
        ({"scope": "global"}, {}, "scope must be"),
        ({"temperature": -1.0}, {}, "temperature"),
        ({"l2": -1.0}, {}, "l2"),
        ({"scope": "domain"}, {"competitors": Competitors([], [], [])}, "competitors only apply"),
    ],
)
def test_fit_rejects_bad_options(
    params: dict[str, object], fit_kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(RerankerError, match=match):
        DomainReranker(**params).fit(np.zeros((2, 1)), [0, 1], groups=[0, 1], **fit_kwargs)  # type: ignore[arg-type]


def test_decision_function_checks_width(domain_data: dict[str, np.ndarray]) -> None:
    model = DomainReranker().fit(domain_data["X"], domain_data["y"], groups=domain_data["groups"])
    with pytest.raises(DataError, match="shape"):
        model.decision_function(np.zeros((3, 2)))


def test_works_in_sklearn_tooling(domain_data: dict[str, np.ndarray]) -> None:
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = domain_data["X"], domain_data["y"]
    scores = cross_val_score(DomainReranker(), X, y, cv=3, scoring="neg_log_loss")
    assert scores.shape == (3,) and np.isfinite(scores).all()
    search = GridSearchCV(DomainReranker(), {"l2": [1e-3, 1.0]}, cv=3, scoring="neg_log_loss")
    search.fit(X, y)
    assert search.best_params_["l2"] in (1e-3, 1.0)
    pipe = make_pipeline(StandardScaler(), DomainReranker("r2")).fit(X, y)
    assert pipe.predict_proba(X).shape == (X.shape[0], 2)
