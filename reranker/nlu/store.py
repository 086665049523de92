"""The NLU model store: loading a model directory with validation (no pickle), n-best prediction.

See :mod:`reranker.nlu.models` for the directory layout and how the models are trained.

The n-best of an utterance takes the ``domains`` top domains by domain score and, within each, the
``intents`` top intents by intent score, each with the domain's slot tagging; at most ``nbest``
hypotheses, ordered by domain rank then intent rank.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reranker._files import read_json_file
from reranker.errors import DataError, ModelError
from reranker.nlu.classifiers import TextClassifier
from reranker.nlu.gazetteer import Gazetteer
from reranker.nlu.settings import DomainSettings
from reranker.nlu.tagger import GAZETTEER_FILE, SlotTagger

__all__ = [
    "CRF_FILE",
    "DOMAIN_FILE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "INTENT_FILE",
    "SETTINGS_FILE",
    "DomainModel",
    "NluModels",
    "load_models",
]

FORMAT_NAME = "reranker-nlu-models"
FORMAT_VERSION = 1
"""Version of the model directory layout; a directory of another version is refused."""

DOMAIN_FILE = "domain_classifier.npz"
INTENT_FILE = "intent_classifier.npz"
CRF_FILE = "slot_tagger.crfsuite"
SETTINGS_FILE = "settings.json"

_COLUMNS = (
    "utterance_id", "text", "device", "domain", "intent", "slots",
    "domain_score", "intent_score", "slot_score",
)  # fmt: skip


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
        texts, ids, device_list = _check_predict_arguments(
            texts, devices, ids, nbest=nbest, domains=domains, intents=intents
        )
        if not texts:
            return pd.DataFrame(
                {c: pd.Series([], dtype=object if "score" not in c else float) for c in _COLUMNS}
            )
        names = self.domain_names
        scores = self.domain_scores(texts).to_numpy()
        k_dom = min(int(domains), len(names))
        # Top domains per utterance: higher score first, then domain name (stable, deterministic).
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k_dom]
        intent_probs = {d: self.domains[d].intent_classifier.predict_proba(texts) for d in names}
        records: list[tuple[Any, ...]] = []
        for u, text in enumerate(texts):
            candidates = []
            for j in order[u]:
                model = self.domains[names[j]]
                probs = intent_probs[names[j]][u]
                top = np.argsort(-probs, kind="stable")[: int(intents)]
                tagging = model.slot_tagger.tag(text)
                candidates += [
                    (ids[u], text, device_list[u], names[j], str(model.intent_classifier.classes[i]),
                     tagging.annotation, float(scores[u, j]), float(probs[i]), tagging.probability)
                    for i in top
                ]  # fmt: skip
            records += candidates[: int(nbest)]
        return pd.DataFrame.from_records(records, columns=list(_COLUMNS))


def _check_predict_arguments(
    texts: Sequence[str],
    devices: Sequence[str] | str | None,
    ids: Sequence[str] | None,
    **counts: int,
) -> tuple[list[str], list[str], list[str]]:
    """Normalised texts, ids and devices of :meth:`NluModels.predict`, checked."""
    for name, value in counts.items():
        if int(value) < 1:
            raise DataError(f"{name} must be >= 1, got {value}")
    clean = [" ".join(str(t).split()) for t in texts]
    n = len(clean)
    empty = [k for k, t in enumerate(clean) if not t]
    if empty:
        raise DataError(f"utterance {empty[0] + 1}: text is empty")
    id_list = [f"u{k + 1}" for k in range(n)] if ids is None else list(ids)
    if len(id_list) != n:
        raise DataError(f"got {len(id_list)} ids for {n} texts")
    if devices is None or isinstance(devices, str):
        device_list = [devices or "unknown"] * n
    else:
        device_list = [str(d) if str(d).strip() else "unknown" for d in devices]
        if len(device_list) != n:
            raise DataError(f"got {len(device_list)} devices for {n} texts")
    return clean, id_list, device_list


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


def _load_domain(root: Path, name: str, sub: str) -> DomainModel:
    """One domain's models from its directory, checked."""
    if "/" in sub or "\\" in sub or sub in ("", ".", ".."):
        raise ModelError(f"{root}: bad domain directory {sub!r} in manifest.json")
    directory = root / sub
    settings_path = directory / SETTINGS_FILE
    if not os.path.lexists(settings_path):
        raise ModelError(f"{directory}: missing {SETTINGS_FILE} of domain {name!r}")
    doc = read_json_file(settings_path, what="settings file", error=ModelError)
    try:
        # Models saved before gazetteers existed have none.
        saved = {"crf_gazetteer": False, **doc["settings"]}
        settings = DomainSettings.from_dict(saved, source=str(settings_path))
    except (KeyError, TypeError, DataError) as e:
        raise ModelError(f"{settings_path}: malformed settings ({e})") from e
    domain_clf = TextClassifier.load(directory / DOMAIN_FILE)
    intent_clf = TextClassifier.load(directory / INTENT_FILE)
    if domain_clf.kind != "binary" or str(domain_clf.classes[1]) != name:
        raise ModelError(f"{directory / DOMAIN_FILE}: not the one-vs-all classifier of {name!r}")
    if intent_clf.kind == "binary":
        raise ModelError(f"{directory / INTENT_FILE}: an intent classifier cannot be one-vs-all")
    crf = directory / CRF_FILE
    training = doc.get("training", {}) if isinstance(doc, dict) else {}
    tagger_info = training.get("slot_tagger", {}) if isinstance(training, dict) else {}
    if not isinstance(tagger_info, dict):
        raise ModelError(f"{settings_path}: malformed settings ('slot_tagger' is not an object)")
    has_slots = bool(tagger_info.get("has_slots", os.path.lexists(crf)))
    if has_slots and not crf.is_file():
        raise ModelError(f"{directory}: missing {CRF_FILE} of domain {name!r}")
    gazetteer = None
    if has_slots and settings.crf_gazetteer:
        gazetteer = Gazetteer.load(directory / GAZETTEER_FILE)
    tagger = SlotTagger(crf if has_slots else None, window=settings.crf_window, gazetteer=gazetteer)
    return DomainModel(name, settings, domain_clf, intent_clf, tagger, training)


def load_models(path: str | os.PathLike[str]) -> NluModels:
    """Load and validate an NLU model directory written by :func:`reranker.nlu.train_models`.

    Raises
    ------
    ModelError
        Missing or malformed files, inconsistent arrays, or a directory of another format version.
    """
    root = Path(path)
    manifest = _read_manifest(root)
    models: dict[str, DomainModel] = {}
    for entry in manifest["domains"]:
        models[entry["name"]] = _load_domain(root, entry["name"], entry["path"])
    if len(models) != len(manifest["domains"]):
        raise ModelError(f"{root}: a domain appears twice in manifest.json")
    return NluModels(root, models, manifest)
