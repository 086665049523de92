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

The n-best of an utterance takes the ``domains`` top domains by domain score and, within each, the
``intents`` top intents by intent score, each with the domain's slot tagging; at most ``nbest``
hypotheses, ordered by domain rank then intent rank.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reranker._files import read_json_file
from reranker.errors import DataError, ModelError, RerankerError, TrainingError
from reranker.nlu.classifiers import TextClassifier, fit_text_classifier
from reranker.nlu.corpus import corpus_sha256, is_labelled
from reranker.nlu.settings import DomainSettings, settings_for
from reranker.nlu.tagger import SlotTagger, train_slot_tagger

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "DomainModel",
    "NluModels",
    "load_models",
    "predict_corpus",
    "train_models",
]

FORMAT_NAME = "reranker-nlu-models"
FORMAT_VERSION = 1
"""Version of the model directory layout; a directory of another version is refused."""

_DOMAIN_FILE = "domain_classifier.npz"
_INTENT_FILE = "intent_classifier.npz"
_CRF_FILE = "slot_tagger.crfsuite"
_SETTINGS_FILE = "settings.json"

Progress = Callable[[str, str, float], None]


@dataclass
class DomainModel:
    """One domain's three models and its settings."""

    name: str
    settings: DomainSettings
    domain_classifier: TextClassifier
    intent_classifier: TextClassifier
    slot_tagger: SlotTagger
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def intents(self) -> list[str]:
        """The domain's intents (classes of its intent classifier)."""
        return [str(c) for c in self.intent_classifier.classes]


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
    rng = np.random.default_rng(settings.seed)
    others = np.flatnonzero(~own)
    n_neg = max(1, round(settings.negative_fraction * others.size)) if others.size else 0
    negatives = np.sort(rng.choice(others, size=n_neg, replace=False)) if n_neg else others
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
        directory / _CRF_FILE,
        c1=settings.crf_c1,
        c2=settings.crf_c2,
        window=settings.crf_window,
        max_iterations=settings.crf_max_iterations,
    )
    domain_clf.save(directory / _DOMAIN_FILE)
    intent_clf.save(directory / _INTENT_FILE)
    summary: dict[str, Any] = {
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
    _write_json(
        directory / _SETTINGS_FILE,
        {"domain": name, "settings": settings.to_dict(), "training": summary},
    )
    return DomainModel(name, settings, domain_clf, intent_clf, tagger, summary)


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
    stray = [k for k in overrides if k != "*" and k not in all_domains]
    if stray:
        raise DataError(f"settings name domain {stray[0]!r}, which has no utterance in the corpus")
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
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    try:
        dirs = _dir_names(chosen)
        jobs_n = 1 if jobs is None else int(jobs)
        if jobs_n < 1:
            raise DataError(f"jobs must be >= 1, got {jobs}")
        tasks = [
            (name, corpus, settings_for(name, overrides), staging / dirs[name]) for name in chosen
        ]
        timings: dict[str, float] = {}
        done = 0

        def finished(name: str, seconds: float) -> None:
            nonlocal done
            done += 1
            timings[name] = seconds
            if progress is not None:
                progress(name, f"done in {seconds:.1f}s", done / len(chosen))

        if jobs_n == 1 or len(tasks) == 1:
            for k, task in enumerate(tasks):
                if progress is not None:
                    progress(task[0], "training", k / len(chosen))
                finished(*_train_domain_job(task))
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                max_workers=min(jobs_n, len(tasks)), mp_context=context
            ) as pool:
                futures = {pool.submit(_train_domain_job, task): task[0] for task in tasks}
                if progress is not None:
                    for name in chosen:
                        progress(name, "training", 0.0)
                for future in as_completed(futures):
                    finished(*future.result())
        timings = {name: timings[name] for name in chosen}
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "domains": [{"name": d, "path": dirs[d]} for d in chosen],
            "corpus": {
                "sha256": corpus_sha256(corpus),
                "n_utterances": len(corpus),
                "domains": {
                    d: int(n) for d, n in corpus["domain"].value_counts().sort_index().items()
                },
            },
        }
        _write_json(staging / "manifest.json", manifest)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # Reload from the final location so the tagger files point there.
    loaded = load_models(target)
    loaded.training_seconds = timings
    return loaded


class NluModels:
    """A loaded set of per-domain NLU models (see :func:`load_models`)."""

    def __init__(
        self, path: Path, domains: Mapping[str, DomainModel], manifest: Mapping[str, Any]
    ) -> None:
        self.path = path
        self.domains: dict[str, DomainModel] = dict(domains)
        self.manifest = dict(manifest)
        self.training_seconds: dict[str, float] = {}

    @property
    def domain_names(self) -> list[str]:
        """Domain names, sorted."""
        return sorted(self.domains)

    def __repr__(self) -> str:
        return f"NluModels({str(self.path)!r}, domains={self.domain_names})"

    def domain_scores(self, texts: Sequence[str]) -> pd.DataFrame:
        """Each domain's one-vs-all score for each text, shape ``(len(texts), n_domains)``."""
        names = self.domain_names
        cols = {d: self.domains[d].domain_classifier.predict_proba(list(texts)) for d in names}
        return pd.DataFrame(cols, columns=names)

    def predict(
        self,
        texts: Sequence[str],
        *,
        devices: Sequence[str] | str | None = None,
        ids: Sequence[str] | None = None,
        nbest: int = 6,
        domains: int = 3,
        intents: int = 2,
    ) -> pd.DataFrame:
        """The n-best hypotheses of each text, as hypothesis table rows without references.

        The columns are those of docs/formats.md#hypothesis-table.

        Parameters
        ----------
        texts : sequence of str
        devices : str or sequence of str, optional
            Each utterance's device (one string for all); default ``"unknown"``.
        ids : sequence of str, optional
            Utterance ids; default ``"u1"``, ``"u2"``, ...
        nbest : int
            At most this many hypotheses per utterance.
        domains : int
            Top domains (by domain score) that contribute hypotheses.
        intents : int
            Top intents (by intent score) per contributing domain.

        Returns
        -------
        pandas.DataFrame
            Columns ``utterance_id, text, device, domain, intent, slots, domain_score,
            intent_score, slot_score``; per utterance ordered by domain rank then intent rank.
        """
        for name, value in (("nbest", nbest), ("domains", domains), ("intents", intents)):
            if int(value) < 1:
                raise DataError(f"{name} must be >= 1, got {value}")
        texts = [" ".join(str(t).split()) for t in texts]
        n = len(texts)
        empty = [k for k, t in enumerate(texts) if not t]
        if empty:
            raise DataError(f"utterance {empty[0] + 1}: text is empty")
        if ids is None:
            ids = [f"u{k + 1}" for k in range(n)]
        if len(ids) != n:
            raise DataError(f"got {len(ids)} ids for {n} texts")
        if devices is None or isinstance(devices, str):
            device_list = [devices or "unknown"] * n
        else:
            device_list = [str(d) if str(d).strip() else "unknown" for d in devices]
            if len(device_list) != n:
                raise DataError(f"got {len(device_list)} devices for {n} texts")
        columns = [
            "utterance_id", "text", "device", "domain", "intent", "slots",
            "domain_score", "intent_score", "slot_score",
        ]  # fmt: skip
        if n == 0:
            return pd.DataFrame(
                {c: pd.Series([], dtype=object if "score" not in c else float) for c in columns}
            )
        names = self.domain_names
        scores = self.domain_scores(texts).to_numpy()
        k_dom = min(int(domains), len(names))
        # Top domains per utterance: higher score first, then domain name (stable, deterministic).
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k_dom]
        intent_probs = {d: self.domains[d].intent_classifier.predict_proba(texts) for d in names}
        records: list[tuple[Any, ...]] = []
        for u in range(n):
            count = 0
            for j in order[u]:
                d = names[j]
                model = self.domains[d]
                probs = intent_probs[d][u]
                classes = model.intent_classifier.classes
                top = np.argsort(-probs, kind="stable")[: int(intents)]
                tagging = model.slot_tagger.tag(texts[u])
                for i in top:
                    if count >= nbest:
                        break
                    records.append(
                        (ids[u], texts[u], device_list[u], d, str(classes[i]), tagging.annotation,
                         float(scores[u, j]), float(probs[i]), tagging.probability)
                    )  # fmt: skip
                    count += 1
        return pd.DataFrame.from_records(records, columns=columns)


def _read_manifest(path: Path) -> dict[str, Any]:
    manifest_path = path / "manifest.json"
    try:
        if not path.exists():
            raise ModelError(f"{path}: no such model directory")
        if not path.is_dir():
            raise ModelError(f"{path}: not a model directory")
        if not os.path.lexists(manifest_path):
            raise ModelError(f"{path}: not an NLU model directory (no manifest.json)")
    except OSError as e:
        raise ModelError(f"{path}: cannot open the model directory ({e.strerror})") from e
    doc = read_json_file(manifest_path, what="model manifest", error=ModelError)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise ModelError(
            f"{manifest_path}: not an NLU model manifest (format is not {FORMAT_NAME!r})"
        )
    version = doc.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(
            f"{path}: model format version {version!r}, but this reranker reads version "
            f"{FORMAT_VERSION}; retrain with `reranker nlu train`"
        )
    entries = doc.get("domains")
    if (
        not isinstance(entries, list)
        or not entries
        or not all(
            isinstance(e, dict)
            and isinstance(e.get("name"), str)
            and isinstance(e.get("path"), str)
            for e in entries
        )
    ):
        raise ModelError(f"{manifest_path}: 'domains' must be a non-empty list of {{name, path}}")
    return doc


def load_models(path: str | os.PathLike[str]) -> NluModels:
    """Load and validate an NLU model directory written by :func:`train_models`.

    Raises
    ------
    ModelError
        Missing or malformed files, inconsistent arrays, or a directory of another format version.
    """
    root = Path(path)
    manifest = _read_manifest(root)
    models: dict[str, DomainModel] = {}
    for entry in manifest["domains"]:
        name, sub = entry["name"], entry["path"]
        if "/" in sub or "\\" in sub or sub in ("", ".", ".."):
            raise ModelError(f"{root}: bad domain directory {sub!r} in manifest.json")
        directory = root / sub
        settings_path = directory / _SETTINGS_FILE
        if not os.path.lexists(settings_path):
            raise ModelError(f"{directory}: missing {_SETTINGS_FILE} of domain {name!r}")
        doc = read_json_file(settings_path, what="settings file", error=ModelError)
        try:
            settings = DomainSettings.from_dict(doc["settings"], source=str(settings_path))
        except (KeyError, TypeError, DataError) as e:
            raise ModelError(f"{settings_path}: malformed settings ({e})") from e
        domain_clf = TextClassifier.load(directory / _DOMAIN_FILE)
        intent_clf = TextClassifier.load(directory / _INTENT_FILE)
        if domain_clf.kind != "binary" or str(domain_clf.classes[1]) != name:
            raise ModelError(
                f"{directory / _DOMAIN_FILE}: not the one-vs-all classifier of {name!r}"
            )
        if intent_clf.kind == "binary":
            raise ModelError(
                f"{directory / _INTENT_FILE}: an intent classifier cannot be one-vs-all"
            )
        crf = directory / _CRF_FILE
        training = doc.get("training", {}) if isinstance(doc, dict) else {}
        tagger_info = training.get("slot_tagger", {}) if isinstance(training, dict) else {}
        if not isinstance(tagger_info, dict):
            raise ModelError(
                f"{settings_path}: malformed settings ('slot_tagger' is not an object)"
            )
        has_slots = bool(tagger_info.get("has_slots", os.path.lexists(crf)))
        if has_slots and not crf.is_file():
            raise ModelError(f"{directory}: missing {_CRF_FILE} of domain {name!r}")
        tagger = SlotTagger(crf if has_slots else None, window=settings.crf_window)
        models[name] = DomainModel(name, settings, domain_clf, intent_clf, tagger, training)
    if len(models) != len(manifest["domains"]):
        raise ModelError(f"{root}: a domain appears twice in manifest.json")
    return NluModels(root, models, manifest)


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
