"""The demo datasets: a simulated media assistant and a real-corpus NLU, end to end.

``reranker demo --out DIR`` builds, deterministically, for each dataset::

    DIR/<dataset>/dataset.json                 name, description, sizes, how it was made
    DIR/<dataset>/corpus/{train,dev,test}.jsonl annotated corpora, with devices
    DIR/<dataset>/models/                       per-domain NLU models trained on ``train``
    DIR/<dataset>/hypotheses/{train,dev,test}.parquet   n-best hypotheses with references
    DIR/<dataset>/weights/{r1,r2,r3}/           re-rankers trained on the ``dev`` hypotheses

plus ``DIR/sample/hypotheses.csv`` (the first utterances of the real test split) and
``DIR/ATTRIBUTION.md`` (the corpora the data are derived from, their authors and licences). The
source corpora ship inside the package (``reranker/data/corpora``, see :func:`default_sources`).

**media** (`Media demo`, :mod:`reranker.media_corpus`): a generated media-assistant corpus whose
**simulated** device decides the true domain of an ambiguous title ("play mary poppins" is
mostly Video on ``fire_tv``, mostly Music or Books on ``echo_dot``).

**real** (`Real corpora demo`, :mod:`reranker.demo_sources`): NLU models trained on HWU64;
``dev`` is HWU64 again, its hypotheses cross-fitted (each utterance predicted by an NLU trained
on the other folds, :mod:`reranker.nlu.cross_fit`); ``test`` is SLURP's devel split; devices
simulated independently of the content.

Everything is seeded; two builds write byte-identical corpora and hypothesis files.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from reranker._files import staged_directory
from reranker._validation import check_choice
from reranker.demo_sources import (
    DemoSplits,
    check_sources,
    default_domain_map,
    default_sources,
    media_splits,
    real_corpus_splits,
    real_splits,
    write_attribution,
)
from reranker.errors import DataError, TrainingError
from reranker.hypotheses import validate_hypotheses, write_table
from reranker.media_corpus import (
    AMBIGUOUS_TITLES,
    DEVICES,
    DOMAIN_PRIOR,
    MEDIA_SETTINGS,
    generate_media_corpus,
    media_catalogues,
)
from reranker.nlu.corpus import read_corpus, write_corpus
from reranker.nlu.cross_fit import cross_fitted_hypotheses
from reranker.nlu.models import NluModels, predict_corpus, train_models
from reranker.options import LOSSES, SCOPES

__all__ = [
    "AMBIGUOUS_TITLES",
    "DATASETS",
    "DEVICES",
    "DOMAIN_PRIOR",
    "MEDIA_SETTINGS",
    "build_demo",
    "default_domain_map",
    "default_sources",
    "generate_media_corpus",
    "media_catalogues",
    "real_corpus_splits",
]

DATASETS: tuple[str, ...] = ("media", "real")
_SOURCES: dict[str, tuple[str, ...]] = {
    "media": ("snips.jsonl",),
    "real": ("hwu64.jsonl", "slurp_devel.jsonl"),
}
"""The source corpora each dataset is made from."""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class _Build:
    """The options of one demo build, shared by every dataset it makes."""

    small: bool
    seed: int
    weights: bool
    jobs: int | None
    scope: str
    report: Progress


def _processes(jobs: int | None) -> int:
    """Worker processes of a build: ``jobs``, or every core when None."""
    return int(jobs) if jobs is not None else max(1, os.cpu_count() or 1)


def _write_json(path: Path, doc: object) -> None:
    path.write_text(
        json.dumps(doc, indent=1, sort_keys=False, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def _sample_info(real: Path, n_utterances: int) -> dict[str, Any]:
    """``sample/dataset.json``: what the sample is, with the real-corpus demo's device facts."""
    real_info = json.loads((real / "dataset.json").read_text(encoding="utf-8"))
    return {
        "name": "Sample",
        "description": (
            f"The first {n_utterances} utterances of the real-corpus demo's test split (NLU "
            "trained on HWU64, hypotheses on SLURP devel), as one small CSV file: a quick look at "
            "the table format and an example to upload. It has no weights or NLU models of its "
            "own. Devices are simulated: drawn uniformly at random, independent of the "
            "utterance, so they carry no information."
        ),
        "devices": real_info.get("devices"),
        "device_simulation": real_info.get("device_simulation"),
        "source": "real/hypotheses/test.parquet",
        "attribution": real_info.get("attribution"),
    }


def _train_nlu(name: str, target: Path, splits: DemoSplits, build: _Build) -> NluModels:
    """Write the dataset's corpora to ``target/corpus`` and train its NLU on ``train``."""
    corpus_dir = target / "corpus"
    corpus_dir.mkdir(parents=True)
    for split, frame in (("train", splits.train), ("dev", splits.dev), ("test", splits.test)):
        write_corpus(frame, corpus_dir / f"{split}.jsonl")
    build.report(
        f"{name}: corpus train/dev/test = {len(splits.train)}/{len(splits.dev)}/{len(splits.test)} utterances"
    )
    return train_models(
        read_corpus(corpus_dir / "train.jsonl"),
        target / "models",
        settings=splits.settings,
        jobs=_processes(build.jobs),
        progress=lambda d, m, f: build.report(f"{name}: NLU {d}: {m}") if m != "training" else None,
    )


def _predict_split(
    name: str,
    split: str,
    corpus: pd.DataFrame,
    models: NluModels,
    splits: DemoSplits,
    build: _Build,
) -> pd.DataFrame:
    """One split's hypotheses: from ``models``, or cross-fitted for a cross-fitted ``dev``."""
    if split != "dev" or splits.dev_cross_fit is None:
        return predict_corpus(models, corpus)
    return cross_fitted_hypotheses(
        corpus,
        folds=splits.dev_cross_fit,
        settings=splits.settings,
        jobs=_processes(build.jobs),
        progress=lambda message: build.report(f"{name}: dev hypotheses cross-fitted, {message}"),
    )


def _write_hypotheses(
    name: str, target: Path, models: NluModels, splits: DemoSplits, build: _Build
) -> dict[str, dict[str, int]]:
    """Predict every split's n-best hypotheses into ``target/hypotheses``; their sizes."""
    hyp_dir = target / "hypotheses"
    hyp_dir.mkdir()
    counts: dict[str, dict[str, int]] = {}
    for split in ("train", "dev", "test"):
        corpus = read_corpus(target / "corpus" / f"{split}.jsonl")
        predicted = _predict_split(name, split, corpus, models, splits, build)
        hyps = validate_hypotheses(predicted, source=f"{name}/{split}")
        write_table(hyps, hyp_dir / f"{split}.parquet")
        counts[split] = {"utterances": len(corpus), "hypotheses": len(hyps)}
    return counts


def _train_weights(name: str, target: Path, build: _Build) -> dict[str, Any]:
    """Train every loss's re-rankers on the dev hypotheses into ``target/weights/<loss>``."""
    from reranker.training import train_domains

    hyp = target / "hypotheses" / "dev.parquet"
    dev = validate_hypotheses(pd.read_parquet(hyp), source=f"{name}/dev")
    trained: dict[str, Any] = {}
    for loss in LOSSES:
        results = train_domains(
            dev,
            loss=loss,
            out=target / "weights" / loss,
            engine="serial" if build.jobs == 1 else "local",
            jobs=build.jobs,
            scope=build.scope,
        )
        failed = {d: r.error for d, r in results.items() if not r.ok}
        if failed:
            domain, error = next(iter(failed.items()))
            raise TrainingError(f"{name}: {loss} weights of domain {domain!r} failed: {error}")
        trained[loss] = {d: {"converged": r.converged} for d, r in results.items()}
        build.report(f"{name}: {loss} weights trained for {len(results)} domains")
    return trained


def _dataset_info(
    splits: DemoSplits,
    models: NluModels,
    counts: dict[str, dict[str, int]],
    trained: dict[str, Any],
    build: _Build,
) -> dict[str, Any]:
    """``dataset.json``: the dataset's facts, how it was made and where its parts are."""
    info = dict(splits.info)
    info.update(
        {
            "seed": build.seed,
            "small": build.small,
            "splits": counts,
            "domains": models.domain_names,
            "nlu": {
                "models": "models/",
                "nbest": {"nbest": 6, "domains": 3, "intents": 2},
                "settings": {d: models.domains[d].settings.profile for d in models.domain_names},
            },
            "weights": {loss: f"weights/{loss}" for loss in trained} if build.weights else {},
            "weights_trained_on": "dev" if build.weights else None,
            "weights_options": {"scope": build.scope} if build.weights else {},
            "evaluate_on": "test",
        }
    )
    return info


def _build_dataset(name: str, target: Path, sources: Path, build: _Build) -> dict[str, Any]:
    """Build one dataset into the empty folder ``target``: corpora, NLU, hypotheses, weights."""
    make = media_splits if name == "media" else real_splits
    splits = make(sources, small=build.small, seed=build.seed)
    started = time.perf_counter()
    models = _train_nlu(name, target, splits, build)
    nlu_seconds = time.perf_counter() - started
    build.report(f"{name}: NLU models trained in {nlu_seconds:.1f}s")
    counts = _write_hypotheses(name, target, models, splits, build)
    build.report(f"{name}: hypotheses written")
    trained = _train_weights(name, target, build) if build.weights else {}
    _write_json(target / "dataset.json", _dataset_info(splits, models, counts, trained, build))
    return {"nlu_seconds": nlu_seconds, "splits": counts}


def _build_in_place(name: str, root: Path, sources: Path, build: _Build) -> dict[str, Any]:
    """Build ``root/<name>`` in a staging folder and move it into place when complete."""
    with staged_directory(root / name) as staging:
        return _build_dataset(name, staging, sources, build)


def _write_sample(root: Path, n_utterances: int, report: Progress) -> None:
    """``root/sample``: the first utterances of the real test split, as one CSV file."""
    test = pd.read_parquet(root / "real" / "hypotheses" / "test.parquet")
    ids = test["utterance_id"].drop_duplicates().head(n_utterances)
    sample = test[test["utterance_id"].isin(set(ids))].reset_index(drop=True)
    (root / "sample").mkdir(exist_ok=True)
    write_table(sample, root / "sample" / "hypotheses.csv")
    _write_json(root / "sample" / "dataset.json", _sample_info(root / "real", len(ids)))
    report(f"sample: {len(sample)} hypotheses of {len(ids)} utterances")


def _check_request(
    datasets: Sequence[str],
    scope: str,
    out: str | os.PathLike[str],
    sources: str | os.PathLike[str] | None,
) -> tuple[Path, Path]:
    """The output and source folders of a valid request (``out`` created); else raise."""
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        raise DataError(f"unknown demo dataset {unknown[0]!r}; choose from {', '.join(DATASETS)}")
    check_choice("scope", scope, SCOPES)
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise DataError(f"{root}: exists and is not a directory")
    root.mkdir(parents=True, exist_ok=True)
    src = Path(sources) if sources is not None else default_sources()
    if not src.is_dir():
        raise DataError(f"{src}: no such folder of source corpora (pass --sources)")
    check_sources(src, sorted({f for d in datasets for f in _SOURCES[d]}))
    return root, src


def build_demo(
    out: str | os.PathLike[str],
    *,
    datasets: Sequence[str] = DATASETS,
    small: bool = False,
    sources: str | os.PathLike[str] | None = None,
    weights: bool = True,
    seed: int = 0,
    jobs: int | None = 1,
    scope: str = "utterance",
    sample_utterances: int = 100,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Build the demo datasets under ``out`` (see the module docstring for the layout).

    Each dataset is built in a temporary directory next to ``out/<dataset>`` and moved into place
    when complete, replacing a previous build (other files under ``out`` are left alone).

    Parameters
    ----------
    out : path-like
    datasets : sequence of {"media", "real"}
    small : bool
        A small, fast configuration (a few hundred utterances, fewer domains) for tests.
    sources : path-like, optional
        Folder with ``hwu64.jsonl``, ``slurp_devel.jsonl`` and ``snips.jsonl`` (default: the
        corpora installed with the package, :func:`default_sources`). A
        ``domain_maps/slurp_to_product.json`` beside that folder replaces the packaged domain map.
    weights : bool
        Train the R1, R2, R3 re-rankers on the dev hypotheses (:func:`reranker.training.train_domains`).
    seed : int
    jobs : int, optional
        Worker processes for NLU and re-ranker training (1: in this process; None: every core);
        the data built do not depend on it.
    scope : {"utterance", "domain"}
        Softmax scope of the R1 and R3 losses (see :func:`reranker.training.train_domains`).
    sample_utterances : int
        Utterances of the real test split copied to ``out/sample/hypotheses.csv``.
    progress : callable, optional
        Called with a one-line message as the build advances.

    Returns
    -------
    dict
        Per dataset: NLU training seconds and split sizes.
    """
    report: Progress = progress or (lambda message: None)
    root, src = _check_request(datasets, scope, out, sources)
    write_attribution(root / "ATTRIBUTION.md")
    build = _Build(small=small, seed=seed, weights=weights, jobs=jobs, scope=scope, report=report)
    summary: dict[str, Any] = {}
    for name in dict.fromkeys(datasets):
        summary[name] = _build_in_place(name, root, src, build)
        if name == "real":
            _write_sample(root, sample_utterances, report)
    return summary
