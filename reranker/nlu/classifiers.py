"""Maximum-entropy text classifiers without pickle: n-gram features and logistic regression.

Text becomes binary word n-gram and character n-gram (within word boundaries) indicators, each
block L2-normalised, built with scikit-learn's :class:`~sklearn.feature_extraction.text.CountVectorizer`.
A classifier is fitted with :class:`~sklearn.linear_model.LogisticRegression` and then kept as
plain arrays (vocabularies, coefficients, intercepts) so that it is saved in an ``.npz`` file and
loaded with ``allow_pickle=False``; prediction is numpy:

- binary (one-vs-all domain classifier): :math:`p = \\sigma(x \\cdot w + b)`;
- multinomial (intent classifier): :math:`p = \\mathrm{softmax}(W x + b)`;
- constant (a domain with a single intent): :math:`p = 1`.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.special import expit, softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

from reranker._files import read_file_bytes
from reranker.errors import ModelError, TrainingError

__all__ = ["TextClassifier", "TextFeaturizer", "fit_text_classifier"]

_TOKEN_PATTERN = r"(?u)\b\w+\b|[^\w\s]"


def _binary_counts(vocab: Sequence[str] | None, min_df: int, **kind: Any) -> CountVectorizer:
    """Lower-cased presence features of one kind (words or characters); a saved ``vocab`` is
    reused as it is, otherwise terms seen in fewer than ``min_df`` texts are dropped."""
    return CountVectorizer(
        lowercase=True,
        binary=True,
        min_df=min_df if vocab is None else 1,
        vocabulary=None if vocab is None else list(vocab),
        dtype=np.float64,
        **kind,
    )


@dataclass(frozen=True)
class TextFeaturizer:
    """Binary word and character n-gram indicators with fixed vocabularies.

    Attributes
    ----------
    word_vocab : ndarray of str
        Word n-grams (orders 1 to ``word_ngrams``), in feature order.
    char_vocab : ndarray of str
        Character n-grams of orders ``char_ngrams``, in feature order (empty if none).
    word_ngrams : int
    char_ngrams : tuple of int
    """

    word_vocab: NDArray[np.str_]
    char_vocab: NDArray[np.str_]
    word_ngrams: int
    char_ngrams: tuple[int, int]

    @staticmethod
    def _word_vectorizer(
        order: int, vocab: Sequence[str] | None = None, min_df: int = 1
    ) -> CountVectorizer:
        return _binary_counts(vocab, min_df, token_pattern=_TOKEN_PATTERN, ngram_range=(1, order))

    @staticmethod
    def _char_vectorizer(
        orders: tuple[int, int], vocab: Sequence[str] | None = None, min_df: int = 1
    ) -> CountVectorizer:
        return _binary_counts(vocab, min_df, analyzer="char_wb", ngram_range=orders)

    @classmethod
    def fit(
        cls, texts: Sequence[str], *, word_ngrams: int, char_ngrams: tuple[int, int], min_df: int
    ) -> TextFeaturizer:
        """Learn the vocabularies from ``texts``."""
        min_df = min(min_df, max(1, len(texts)))

        def vocab_of(vectorizer: CountVectorizer) -> NDArray[np.str_]:
            try:
                vectorizer.fit(texts)
            except ValueError:  # no n-gram reaches min_df
                return np.zeros(0, dtype=np.str_)
            items = sorted(vectorizer.vocabulary_.items(), key=lambda kv: kv[1])
            return np.array([k for k, _ in items], dtype=np.str_)

        words = vocab_of(cls._word_vectorizer(word_ngrams, min_df=min_df))
        chars = (
            vocab_of(cls._char_vectorizer(tuple(char_ngrams), min_df=min_df))  # type: ignore[arg-type]
            if tuple(char_ngrams) != (0, 0)
            else np.zeros(0, dtype=np.str_)
        )
        if words.size + chars.size == 0:
            raise TrainingError("no text features: every utterance is empty or min_df is too high")
        return cls(words, chars, int(word_ngrams), (int(char_ngrams[0]), int(char_ngrams[1])))

    @property
    def n_features(self) -> int:
        """Number of features (word plus character n-grams)."""
        return int(self.word_vocab.size + self.char_vocab.size)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Feature matrix of shape ``(len(texts), n_features)``, each block L2-normalised."""
        blocks = []
        if self.word_vocab.size:
            v = self._word_vectorizer(self.word_ngrams, self.word_vocab.tolist())
            blocks.append(normalize(v.transform(texts)))
        if self.char_vocab.size:
            v = self._char_vectorizer(self.char_ngrams, self.char_vocab.tolist())
            blocks.append(normalize(v.transform(texts)))
        matrix = sp.hstack(blocks, format="csr") if len(blocks) > 1 else blocks[0].tocsr()
        return matrix * (1.0 / np.sqrt(len(blocks)))


@dataclass(frozen=True)
class TextClassifier:
    """A fitted logistic-regression text classifier kept as arrays.

    Attributes
    ----------
    kind : str
        ``"binary"`` (``classes`` = ``[negative, positive]``, one coefficient row),
        ``"multinomial"`` (one row per class) or ``"constant"`` (one class, probability 1).
    classes : ndarray of str
    coef : ndarray of shape (n_rows, n_features)
    intercept : ndarray of shape (n_rows,)
    featurizer : TextFeaturizer
    n_iter : int
        L-BFGS iterations the fit took.
    converged : bool
    """

    kind: str
    classes: NDArray[np.str_]
    coef: NDArray[np.float64]
    intercept: NDArray[np.float64]
    featurizer: TextFeaturizer
    n_iter: int = 0
    converged: bool = True

    def decision(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """Linear scores ``X @ coef.T + intercept``, shape ``(n, n_rows)``."""
        x = self.featurizer.transform(texts)
        return np.asarray(x @ self.coef.T, dtype=np.float64) + self.intercept

    def predict_proba(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """Class probabilities: shape ``(n,)`` (positive class) for ``binary``, ``(n, n_classes)`` otherwise."""
        if self.kind == "constant":
            return np.ones((len(texts), 1), dtype=np.float64)
        z = self.decision(texts)
        if self.kind == "binary":
            return np.asarray(expit(z[:, 0]), dtype=np.float64)
        return np.asarray(softmax(z, axis=1), dtype=np.float64)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write an ``.npz`` (compressed; only numeric and string arrays, no pickle)."""
        np.savez_compressed(
            Path(path),
            kind=np.array(self.kind),
            classes=self.classes.astype(np.str_),
            coef=self.coef.astype(np.float64),
            intercept=self.intercept.astype(np.float64),
            word_vocab=self.featurizer.word_vocab.astype(np.str_),
            char_vocab=self.featurizer.char_vocab.astype(np.str_),
            orders=np.array(
                [self.featurizer.word_ngrams, *self.featurizer.char_ngrams], dtype=np.int64
            ),
            fit=np.array([self.n_iter, int(self.converged)], dtype=np.int64),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TextClassifier:
        """Read an ``.npz`` written by :meth:`save`, checking every array (never unpickles)."""
        p = Path(path)
        if not os.path.lexists(p):
            raise ModelError(f"{p}: missing classifier file")
        data = read_file_bytes(p, what="classifier file", error=ModelError)
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as e:  # a corrupt archive fails in many ways (BadZipFile, zlib, ...)
            reason = " ".join(str(e).split())[:200] or type(e).__name__
            raise ModelError(f"{p}: not a readable classifier file ({reason})") from e
        needed = (
            "kind",
            "classes",
            "coef",
            "intercept",
            "word_vocab",
            "char_vocab",
            "orders",
            "fit",
        )
        missing = [k for k in needed if k not in arrays]
        if missing:
            raise ModelError(f"{p}: classifier file lacks array {missing[0]!r}")
        kind = str(arrays["kind"])
        classes, coef, intercept = arrays["classes"], arrays["coef"], arrays["intercept"]
        words, chars, orders = arrays["word_vocab"], arrays["char_vocab"], arrays["orders"]
        if kind not in ("binary", "multinomial", "constant"):
            raise ModelError(f"{p}: unknown classifier kind {kind!r}")
        rows = {"binary": 1, "multinomial": classes.size, "constant": 0}[kind]
        ok = (
            coef.ndim == 2
            and coef.shape == (rows, words.size + chars.size)
            and intercept.shape == (rows,)
            and orders.shape == (3,)
            and (kind != "binary" or classes.size == 2)
            and (kind != "constant" or classes.size == 1)
            and np.isfinite(coef).all()
            and np.isfinite(intercept).all()
        )
        if not ok:
            raise ModelError(
                f"{p}: inconsistent classifier arrays (coefficients {coef.shape}, {classes.size} classes, {words.size + chars.size} features)"
            )
        featurizer = TextFeaturizer(
            words.astype(np.str_),
            chars.astype(np.str_),
            int(orders[0]),
            (int(orders[1]), int(orders[2])),
        )
        fit = arrays["fit"]
        return cls(
            kind,
            classes.astype(np.str_),
            coef.astype(np.float64),
            intercept.astype(np.float64),
            featurizer,
            int(fit[0]),
            bool(fit[1]),
        )


def fit_text_classifier(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    c: float,
    word_ngrams: int,
    char_ngrams: tuple[int, int],
    min_df: int = 1,
    class_weight: str = "none",
    positive: str | None = None,
    max_iter: int = 2000,
) -> TextClassifier:
    """Fit a logistic-regression classifier of ``labels`` from ``texts``.

    Parameters
    ----------
    texts, labels : sequences of str
    c : float
        Inverse L2 regularisation strength (scikit-learn's ``C``).
    word_ngrams, char_ngrams, min_df
        Features (see :class:`TextFeaturizer`).
    class_weight : {"none", "balanced"}
    positive : str, optional
        For a one-vs-all classifier: the positive label; ``labels`` must then hold only it and
        other values, and the result is ``binary``.
    max_iter : int
        L-BFGS iteration limit; non-convergence is recorded (``converged``), not raised.

    Returns
    -------
    TextClassifier
        ``constant`` when there is a single class.
    """
    y = np.asarray(labels, dtype=np.str_)
    if y.size == 0:
        raise TrainingError("cannot fit a classifier on no data")
    featurizer = TextFeaturizer.fit(
        list(texts), word_ngrams=word_ngrams, char_ngrams=char_ngrams, min_df=min_df
    )
    classes, target = _classes_and_target(y, positive)
    if target is None:
        return TextClassifier(
            "constant", classes, np.zeros((0, featurizer.n_features)), np.zeros(0), featurizer
        )
    model = LogisticRegression(
        C=c,
        solver="lbfgs",
        max_iter=max_iter,
        class_weight="balanced" if class_weight == "balanced" else None,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(featurizer.transform(list(texts)), target)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    kind, coef, intercept = _uniform_form(model, one_vs_all=positive is not None)
    return TextClassifier(
        kind, classes, coef, intercept, featurizer, int(np.max(model.n_iter_)), converged
    )


def _classes_and_target(
    y: NDArray[np.str_], positive: str | None
) -> tuple[NDArray[np.str_], NDArray[np.int64] | None]:
    """The classifier's classes and each text's class index (None: a single class)."""
    if positive is not None:
        target = (y == positive).astype(np.int64)
        if target.min() == target.max():
            raise TrainingError(
                f"the one-vs-all classifier of {positive!r} needs both its own and other domains' utterances"
            )
        return np.array(["~" + positive, positive], dtype=np.str_), target
    classes = np.unique(y)
    if classes.size == 1:
        return classes, None
    return classes, np.searchsorted(classes, y).astype(np.int64)


def _uniform_form(
    model: LogisticRegression, *, one_vs_all: bool
) -> tuple[str, NDArray[np.float64], NDArray[np.float64]]:
    """``(kind, coef, intercept)``; two intents keep the multinomial form (one row per class)."""
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    if one_vs_all:
        return "binary", coef, intercept
    if coef.shape[0] == 1:
        coef = np.vstack([-coef / 2.0, coef / 2.0])
        intercept = np.array([-intercept[0] / 2.0, intercept[0] / 2.0])
    return "multinomial", coef, intercept
