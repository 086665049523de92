"""Cross-fitted (out-of-fold) n-best hypotheses of the NLU's own training corpus.

A re-ranker must learn from hypotheses of utterances the NLU did not train on: on its own
training utterances the NLU is over-confident and rarely wrong, so a re-ranker fitted there learns
the wrong levels. Held-out labelled data is usually scarce, while the NLU's training corpus is
large. Cross-fitting turns the training corpus into re-ranker training data: the corpus is cut
into K folds (a hash of the utterance id, :func:`reranker.bootstrap.utterance_keys`, so folds do
not depend on row order), the NLU is trained K times, each time on K - 1 folds, and predicts the
n-best of the fold it did not see. Every utterance thus gets hypotheses from models that never
saw it, from an NLU trained on (K - 1)/K of the data, as a production re-ranker sees them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from reranker.bootstrap import hashed_folds
from reranker.errors import DataError, RerankerError
from reranker.nlu.corpus import is_labelled
from reranker.nlu.models import predict_corpus, train_models
from reranker.nlu.settings import check_settings

__all__ = ["FOLDS", "cross_fit_folds", "cross_fitted_hypotheses"]

FOLDS = 5
"""Default number of folds."""


def cross_fit_folds(ids: pd.Series, folds: int) -> NDArray[np.int64]:
    """Fold (0 .. folds-1) of each utterance id: its stable hash modulo ``folds``."""
    if folds < 2:
        raise DataError(f"cross-fitting needs at least 2 folds, got {folds}")
    return hashed_folds(ids, folds)


def _check_folds(
    corpus: pd.DataFrame, folds: int, settings: Mapping[str, Mapping[str, Any]] | None
) -> NDArray[np.int64]:
    """Each utterance's fold, after checking, before any training, that every fold can be done."""
    if len(corpus) == 0:
        raise DataError("corpus is empty")
    if not is_labelled(corpus):
        raise DataError("the corpus has no domain and intent labels: nothing to cross-fit")
    duplicated = corpus["id"].astype(str).duplicated()
    if duplicated.any():
        raise DataError(f"utterance id {corpus['id'][duplicated].iloc[0]!r} appears twice")
    fold = cross_fit_folds(corpus["id"], folds)
    if len(corpus) < folds:
        raise DataError(
            f"cross-fitting over {folds} folds needs at least {folds} utterances, got {len(corpus)}"
        )
    domains = corpus["domain"].to_numpy()
    check_settings(settings, domains.tolist())
    for k in range(folds):
        rest = np.unique(domains[fold != k])
        if rest.size < 2:
            raise DataError(
                f"fold {k + 1} of {folds}: the other folds hold {rest.size} domain(s); training "
                "the NLU needs at least two domains"
            )
    return fold


def _fold_settings(
    settings: Mapping[str, Mapping[str, Any]] | None, domains: set[str]
) -> dict[str, Mapping[str, Any]] | None:
    """``settings`` without the domains a fold's training part lacks (a domain whose every
    utterance is held out is not trained in that fold, so its settings do not apply)."""
    if settings is None:
        return None
    return {name: value for name, value in settings.items() if name == "*" or name in domains}


def _predict_fold(
    corpus: pd.DataFrame,
    held: NDArray[np.bool_],
    target: Path,
    *,
    settings: Mapping[str, Mapping[str, Any]] | None,
    jobs: int | None,
    predict: dict[str, Any],
) -> pd.DataFrame:
    """Train the NLU on the rows not ``held`` (into ``target``, removed after) and predict the
    held rows."""
    train = corpus[~held].reset_index(drop=True)
    try:
        models = train_models(
            train, target, settings=_fold_settings(settings, set(train["domain"])), jobs=jobs
        )
        return predict_corpus(models, corpus[held].reset_index(drop=True), **predict)
    finally:
        shutil.rmtree(target, ignore_errors=True)


def cross_fitted_hypotheses(
    corpus: pd.DataFrame,
    *,
    folds: int = FOLDS,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    jobs: int | None = 1,
    device: str | None = None,
    nbest: int = 6,
    domains: int = 3,
    intents: int = 2,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """The n-best hypotheses of every utterance of ``corpus`` from NLU models that did not see it.

    Parameters
    ----------
    corpus : pandas.DataFrame
        A labelled corpus frame (:func:`reranker.nlu.read_corpus`), domains already mapped.
    folds : int
        K: the NLU is trained K times, on K - 1 folds each.
    settings, jobs
        As for :func:`reranker.nlu.train_models` (settings of a domain absent from a fold's
        training part are left out for that fold).
    device, nbest, domains, intents
        As for :func:`reranker.nlu.predict_corpus`.
    progress : callable, optional
        Called with a one-line message as each fold starts and ends.

    Returns
    -------
    pandas.DataFrame
        Hypotheses with references, utterances in corpus order (each utterance's rows as
        :func:`~reranker.nlu.predict_corpus` ranks them).

    Raises
    ------
    DataError
        Fewer than two folds or utterances than folds, a duplicated id, an unlabelled corpus, or
        a fold whose complement cannot train an NLU (one domain); checked before any training.
    RerankerError
        A fold's training failed (the message starts with the fold).
    """
    fold = _check_folds(corpus, folds, settings)
    predict = {"device": device, "nbest": nbest, "domains": domains, "intents": intents}
    report = progress or (lambda message: None)
    parts = []
    with tempfile.TemporaryDirectory(prefix="reranker-cross-fit-") as tmp:
        for k in np.unique(fold).tolist():
            held = fold == k
            label = f"fold {k + 1}/{folds}"
            report(f"{label}: training on {int((~held).sum()):,} utterances")
            try:
                hyps = _predict_fold(
                    corpus,
                    held,
                    Path(tmp) / f"fold{k}",
                    settings=settings,
                    jobs=jobs,
                    predict=predict,
                )
            except RerankerError as error:
                raise type(error)(f"{label}: {error}") from error
            parts.append(hyps)
            report(f"{label}: {int(held.sum()):,} utterances predicted")
    hyps = pd.concat(parts, ignore_index=True)
    position = pd.Series(np.arange(len(corpus)), index=corpus["id"].to_numpy())
    order = np.argsort(position.loc[hyps["utterance_id"].to_numpy()].to_numpy(), kind="stable")
    return hyps.iloc[order].reset_index(drop=True)
