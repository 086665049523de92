"""The per-domain NLU that produces n-best hypotheses: corpora, models, prediction.

corpus (:mod:`~reranker.nlu.corpus`) -> per-domain settings (:mod:`~reranker.nlu.settings`) ->
domain and intent classifiers (:mod:`~reranker.nlu.classifiers`) and CRF slot tagger
(:mod:`~reranker.nlu.tagger`) -> :class:`NluModels` (:mod:`~reranker.nlu.models`) -> hypotheses.
"""

from __future__ import annotations

from reranker.nlu.corpus import (
    DomainMap,
    apply_domain_map,
    read_corpora,
    read_corpus,
    read_domain_map,
    validate_corpus,
    write_corpus,
)
from reranker.nlu.importers import import_corpus, import_hwu64, import_slurp, import_snips
from reranker.nlu.models import (
    FORMAT_VERSION,
    DomainModel,
    NluModels,
    load_models,
    predict_corpus,
    train_models,
)
from reranker.nlu.settings import DomainSettings, default_settings, read_settings_file

__all__ = [
    "FORMAT_VERSION",
    "DomainMap",
    "DomainModel",
    "DomainSettings",
    "NluModels",
    "apply_domain_map",
    "default_settings",
    "import_corpus",
    "import_hwu64",
    "import_slurp",
    "import_snips",
    "load_models",
    "predict_corpus",
    "read_corpora",
    "read_corpus",
    "read_domain_map",
    "read_settings_file",
    "train_models",
    "validate_corpus",
    "write_corpus",
]
