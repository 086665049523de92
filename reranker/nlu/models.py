"""Per-domain NLU models: training, saving (no pickle), loading with validation, n-best prediction.

Each domain owns three models, trained on its own data with its own :class:`DomainSettings`:

- a **domain classifier**: one-vs-all logistic regression (maximum entropy) on word and character
  n-grams, trained on the domain's utterances against a subset of the others';
- an **intent classifier**: multinomial logistic regression over the domain's intents (a domain
  with one intent has the constant classifier, probability 1);
- a **slot tagger**: a linear-chain CRF (python-crfsuite) whose slot score is the probability of
  the tagged sequence (a domain without slots tags nothing, probability 1).

Because each domain's team chooses its own regularisation, features and negatives, the three
confidences are not comparable across domains; that is what the re-ranker corrects.

Model directory (format version :data:`FORMAT_VERSION`)::

    MODELS/manifest.json                      format, version, domains, corpus hash
    MODELS/<dir>/settings.json                the domain's settings and training summary
    MODELS/<dir>/domain_classifier.npz        vocabularies + coefficients (no pickle)
    MODELS/<dir>/intent_classifier.npz
    MODELS/<dir>/slot_tagger.crfsuite         crfsuite's own format (absent: no slots)

    MODELS/<dir>/slot_gazetteer.json          the tagger's slot values (absent: none)

Loading and n-best prediction live in :mod:`reranker.nlu.store` (re-exported here).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from reranker._files import staged_directory
from reranker.errors import DataError, RerankerError, TrainingError
from reranker.nlu.classifiers import TextClassifier, fit_text_classifier
from reranker.nlu.corpus import corpus_sha256, is_labelled
from reranker.nlu.settings import DomainSettings, check_settings, settings_for
from reranker.nlu.store import (
    CRF_FILE,
    DOMAIN_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    INTENT_FILE,
    SETTINGS_FILE,
    DomainModel,
    NluModels,
    load_models,
)
from reranker.nlu.tagger import train_slot_tagger

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "DomainModel",
    "NluModels",
    "load_models",
    "predict_corpus",
    "train_models",
]

Progress = Callable[[str, str, float], None]


def _dir_names(domains: Sequence[str]) -> dict[str, str]:
    names: dict[str, str] = {}
    used: set[str] = set()
    for d in domains:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", d).strip("._") or "domain"
        name, k = base, 2
        while name.lower() in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name.lower())
        names[d] = name
    return names


def _write_json(path: Path, doc: object) -> None:
    path.write_text(
        json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def _train_domain(
    name: str,
    corpus: pd.DataFrame,
    settings: DomainSettings,
    directory: Path,
) -> DomainModel:
    own = corpus["domain"].to_numpy() == name
    negatives = _negative_rows(own, settings)
    rows = np.sort(np.concatenate([np.flatnonzero(own), negatives]))
    texts = corpus["text"].to_numpy()[rows].tolist()
    labels = corpus["domain"].to_numpy()[rows].tolist()
    domain_clf = fit_text_classifier(
        texts,
        labels,
        c=settings.domain_c,
        word_ngrams=settings.word_ngrams,
        char_ngrams=settings.char_ngrams,
        min_df=settings.min_df,
        class_weight=settings.domain_class_weight,
        positive=name,
    )
    own_texts = corpus["text"].to_numpy()[own].tolist()
    intent_clf = fit_text_classifier(
        own_texts,
        corpus["intent"].to_numpy()[own].tolist(),
        c=settings.intent_c,
        word_ngrams=settings.word_ngrams,
        char_ngrams=settings.char_ngrams,
        min_df=1,
    )
    tagger, tag_summary = train_slot_tagger(
        corpus["annotation"].to_numpy()[own].tolist(),
        directory / CRF_FILE,
        c1=settings.crf_c1,
        c2=settings.crf_c2,
        window=settings.crf_window,
        max_iterations=settings.crf_max_iterations,
        gazetteer=settings.crf_gazetteer,
    )
    domain_clf.save(directory / DOMAIN_FILE)
    intent_clf.save(directory / INTENT_FILE)
    summary = _training_summary(own, negatives, domain_clf, intent_clf, tag_summary)
    _write_json(
        directory / SETTINGS_FILE,
        {"domain": name, "settings": settings.to_dict(), "training": summary},
    )
    return DomainModel(name, settings, domain_clf, intent_clf, tagger, summary)


def _negative_rows(own: NDArray[np.bool_], settings: DomainSettings) -> NDArray[np.intp]:
    """Other domains' rows the domain classifier sees, a seeded share of them, in order."""
    rng = np.random.default_rng(settings.seed)
    others = np.flatnonzero(~own)
    n_neg = max(1, round(settings.negative_fraction * others.size)) if others.size else 0
    return np.sort(rng.choice(others, size=n_neg, replace=False)) if n_neg else others


def _training_summary(
    own: NDArray[np.bool_],
    negatives: NDArray[np.intp],
    domain_clf: TextClassifier,
    intent_clf: TextClassifier,
    tag_summary: dict[str, Any],
) -> dict[str, Any]:
    """What the domain's settings file records of its training."""
    return {
        "n_utterances": int(own.sum()),
        "n_negatives": int(negatives.size),
        "intents": intent_clf.classes.tolist(),
        "domain_classifier": {
            "n_features": domain_clf.featurizer.n_features,
            "n_iter": domain_clf.n_iter,
            "converged": domain_clf.converged,
        },
        "intent_classifier": {
            "kind": intent_clf.kind,
            "n_features": intent_clf.featurizer.n_features,
            "n_iter": intent_clf.n_iter,
            "converged": intent_clf.converged,
        },
        "slot_tagger": tag_summary,
    }


def _train_domain_job(task: tuple[str, pd.DataFrame, DomainSettings, Path]) -> tuple[str, float]:
    """Train one domain into its directory (a worker-process entry point); returns its seconds."""
    name, corpus, settings, directory = task
    directory.mkdir()
    started = time.perf_counter()
    try:
        _train_domain(name, corpus, settings, directory)
    except RerankerError as e:
        raise TrainingError(f"domain {name!r}: {e}") from e
    except ValueError as e:
        raise TrainingError(f"domain {name!r}: {' '.join(str(e).split())}") from e
    return name, time.perf_counter() - started


def train_models(
    corpus: pd.DataFrame,
    out: str | os.PathLike[str],
    *,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    domains: Sequence[str] | None = None,
    jobs: int | None = 1,
    progress: Progress | None = None,
) -> NluModels:
    """Train every domain's models on a validated corpus and save them to ``out``.

    Parameters
    ----------
    corpus : pandas.DataFrame
        A corpus frame (:func:`reranker.nlu.read_corpus`), domains already mapped.
    out : path-like
        Model directory to create (or replace: it is written next to it and renamed into place).
    settings : mapping, optional
        Per-domain overrides (``{"<Domain>" or "*": {setting: value}}``), see
        :func:`reranker.nlu.settings.settings_for`.
    domains : sequence of str, optional
        Train only these domains (the others' utterances still serve as negatives).
    jobs : int, optional
        Worker processes: each domain trains independently of the others, so domains train in
        parallel (1: in this process). The result does not depend on ``jobs``.
    progress : callable, optional
        ``progress(domain, message, fraction)`` as each domain starts and ends; ``fraction`` is
        the share of domains done.

    Returns
    -------
    NluModels

    Raises
    ------
    DataError
        Empty corpus, fewer than two domains, or an unknown domain in ``domains``.
    TrainingError
        A domain's models cannot be trained (the message names it).
    """
    chosen, overrides, target = _check_training(corpus, out, settings, domains)
    jobs_n = 1 if jobs is None else int(jobs)
    if jobs_n < 1:
        raise DataError(f"jobs must be >= 1, got {jobs}")
    with staged_directory(target) as staging:
        dirs = _dir_names(chosen)
        tasks = [
            (name, corpus, settings_for(name, overrides), staging / dirs[name]) for name in chosen
        ]
        timings = _run_training(tasks, jobs_n, progress)
        _write_json(staging / "manifest.json", _manifest(corpus, chosen, dirs))
    # Reload from the final location so the tagger files point there.
    loaded = load_models(target)
    loaded.training_seconds = {name: timings[name] for name in chosen}
    return loaded


def _check_training(
    corpus: pd.DataFrame,
    out: str | os.PathLike[str],
    settings: Mapping[str, Mapping[str, Any]] | None,
    domains: Sequence[str] | None,
) -> tuple[list[str], dict[str, Mapping[str, Any]], Path]:
    """The domains to train, the settings overrides and the target directory, checked."""
    if len(corpus) == 0:
        raise DataError("corpus is empty")
    if not is_labelled(corpus):
        raise DataError("the corpus has no domain and intent labels: nothing to train on")
    all_domains = sorted(corpus["domain"].unique())
    if len(all_domains) < 2:
        raise DataError(
            f"the corpus has a single domain ({all_domains[0]!r}): a one-vs-all domain classifier "
            "needs at least two domains"
        )
    chosen = all_domains if domains is None else list(dict.fromkeys(domains))
    unknown = [d for d in chosen if d not in all_domains]
    if unknown:
        raise DataError(f"domain {unknown[0]!r} has no utterance in the corpus")
    overrides = dict(settings or {})
    check_settings(overrides, all_domains)
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise DataError(f"{target}: exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not (target / "manifest.json").is_file():
        # Training replaces the whole directory: never one that is not a model directory.
        raise DataError(
            f"{target}: exists and is not an NLU model directory (no manifest.json); "
            "refusing to replace it"
        )
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise DataError(f"{target}: directory {parent} does not exist")
    return chosen, overrides, target


def _run_training(
    tasks: list[tuple[str, pd.DataFrame, DomainSettings, Path]],
    jobs: int,
    progress: Progress | None,
) -> dict[str, float]:
    """Train every task's domain, in this process or in ``jobs`` worker processes; seconds each."""
    timings: dict[str, float] = {}
    total = len(tasks)

    def finished(name: str, seconds: float) -> None:
        timings[name] = seconds
        if progress is not None:
            progress(name, f"done in {seconds:.1f}s", len(timings) / total)

    if jobs == 1 or total == 1:
        for k, task in enumerate(tasks):
            if progress is not None:
                progress(task[0], "training", k / total)
            finished(*_train_domain_job(task))
        return timings
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, total), mp_context=context) as pool:
        futures = [pool.submit(_train_domain_job, task) for task in tasks]
        if progress is not None:
            for task in tasks:
                progress(task[0], "training", 0.0)
        for future in as_completed(futures):
            finished(*future.result())
    return timings


def _manifest(
    corpus: pd.DataFrame, chosen: Sequence[str], dirs: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "domains": [{"name": d, "path": dirs[d]} for d in chosen],
        "corpus": {
            "sha256": corpus_sha256(corpus),
            "n_utterances": len(corpus),
            "domains": {d: int(n) for d, n in corpus["domain"].value_counts().sort_index().items()},
        },
    }


def predict_corpus(
    models: NluModels,
    corpus: pd.DataFrame,
    *,
    device: str | None = None,
    nbest: int = 6,
    domains: int = 3,
    intents: int = 2,
) -> pd.DataFrame:
    """Hypotheses of every corpus utterance, with references (``ref_domain``, ``ref_intent``,
    ``ref_slots``) from the corpus when it is labelled (:func:`reranker.nlu.corpus.is_labelled`).

    The device of each utterance is the corpus's ``device`` field where present, else ``device``,
    else ``"unknown"``.
    """
    if len(corpus) == 0:
        raise DataError("corpus is empty")
    own = (
        corpus["device"].astype(str).str.strip()
        if "device" in corpus.columns
        else pd.Series([""] * len(corpus))
    )
    devices = own.where(own != "", device or "unknown").tolist()
    hyps = models.predict(
        corpus["text"].tolist(),
        devices=devices,
        ids=corpus["id"].tolist(),
        nbest=nbest,
        domains=domains,
        intents=intents,
    )
    if not is_labelled(corpus):
        return hyps
    refs = corpus.set_index("id")[["domain", "intent", "annotation"]]
    refs.columns = ["ref_domain", "ref_intent", "ref_slots"]
    joined = refs.loc[hyps["utterance_id"].to_numpy()].reset_index(drop=True)
    for c in joined.columns:
        hyps[c] = joined[c].to_numpy()
    return hyps
