"""The corpora behind the demo datasets: where they are installed, how each dataset's splits are made.

The source corpora ship inside the package (``reranker/data/corpora``, :func:`default_sources`)
with their attribution and licences. Two datasets are made from them:

- **media**: the simulated media assistant of :mod:`reranker.media_corpus`, generated from the
  SNIPS titles (train, dev and test generated with different seeds);
- **real**: NLU models trained on HWU64 (CC BY 4.0); the re-rankers' ``dev`` hypotheses are
  HWU64's own, cross-fitted over 5 folds (each utterance predicted by an NLU trained on the other
  folds); ``test`` is SLURP's devel split (CC BY 4.0), which neither the NLU nor the re-rankers
  see. Corpus domains are mapped to product domains (SLURP's ``play`` split into Music, Books,
  Podcasts, Radio and Games by intent). Real corpora have no device; each utterance gets a
  **simulated** device drawn uniformly at random, independent of its content, so the device
  features carry no information there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reranker.errors import DataError
from reranker.media_corpus import (
    DEVICE_SHARE,
    DEVICES,
    DOMAIN_PRIOR,
    MEDIA_SETTINGS,
    generate_media_corpus,
)
from reranker.nlu.corpus import read_corpus, read_domain_map

__all__ = [
    "ATTRIBUTION",
    "DemoSplits",
    "check_sources",
    "default_domain_map",
    "default_sources",
    "media_splits",
    "real_corpus_splits",
    "real_splits",
    "write_attribution",
]


def _package_data() -> Path:
    root = resources.files("reranker") / "data"
    if not isinstance(root, Path) or not root.is_dir():
        raise DataError(f"{root}: the package's data files are not on the file system")
    return root


def default_sources() -> Path:
    """The real corpora installed with the package (``reranker/data/corpora``).

    ``hwu64.jsonl``, ``slurp_devel.jsonl`` and ``snips.jsonl``, with ``ATTRIBUTION.md`` and the
    text of their licences.
    """
    return _package_data() / "corpora"


def default_domain_map() -> Path:
    """The HWU64/SLURP scenario to product domain map installed with the package."""
    return _package_data() / "domain_maps" / "slurp_to_product.json"


def check_sources(sources: Path, names: Sequence[str]) -> None:
    """Raise :class:`DataError` naming the first of ``names`` missing from ``sources``."""
    for name in names:
        if not (sources / name).is_file():
            raise DataError(f"{sources}: missing {name} (pass --sources with the real corpora)")


_CROSS_FIT_FOLDS = 5
"""Folds of the real-corpus demo's cross-fitted ``dev`` hypotheses."""


def _simulated_devices(n: int, rng: np.random.Generator) -> list[str]:
    return [DEVICES[int(i)] for i in rng.integers(0, len(DEVICES), n)]


ATTRIBUTION: list[str] = [
    "HWU64: X. Liu, A. Eshghi, P. Swietojanski, V. Rieser, \"Benchmarking Natural Language Understanding Services for building Conversational Agents\", IWSDS 2019. CC BY 4.0.",
    "SLURP: E. Bastianelli, A. Vanzo, P. Swietojanski, V. Rieser, \"SLURP: A Spoken Language Understanding Resource Package\", EMNLP 2020. Text released under CC BY 4.0.",
    "SNIPS: A. Coucke et al., \"Snips Voice Platform: an embedded Spoken Language Understanding system for private-by-design voice interfaces\", 2018. CC0 1.0.",
]  # fmt: skip


_LICENCES = {
    "CC BY 4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC0 1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
}


def write_attribution(path: Path) -> None:
    """``ATTRIBUTION.md`` of a demo folder: what its data are derived from, under which licence."""
    lines = [
        "# Attribution",
        "",
        "The demo datasets in this folder are derived from these annotated corpora (the `real/`",
        "and `sample/` data from HWU64 and SLURP, `media/` from SNIPS titles):",
        "",
        *(f"- {entry}" for entry in ATTRIBUTION),
        "",
        "Licences: " + "; ".join(f"{name}, {url}" for name, url in _LICENCES.items()) + ".",
        "Changes: product domains mapped from the corpora's scenarios, NLU hypotheses, and",
        "**simulated** devices (no corpus records a device). The corpora themselves ship with the",
        "`reranker` package (`reranker/data/corpora/`, with their attribution and licence texts).",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class DemoSplits:
    """One demo dataset's corpora, its ``dataset.json`` facts and its NLU settings per domain."""

    train: pd.DataFrame
    dev: pd.DataFrame
    test: pd.DataFrame
    info: dict[str, Any]
    settings: Mapping[str, Mapping[str, Any]] | None
    dev_cross_fit: int | None = None
    """When set, ``dev`` is ``train`` itself and its hypotheses are cross-fitted over this many
    folds (:func:`reranker.nlu.cross_fit.cross_fitted_hypotheses`): the re-rankers learn from
    NLU output on utterances the NLU did not train on."""


def media_splits(sources: Path, *, small: bool, seed: int) -> DemoSplits:
    """The media dataset: train, dev and test generated from the SNIPS titles in ``sources``."""
    check_sources(sources, ["snips.jsonl"])
    snips = read_corpus(sources / "snips.jsonl")
    sizes = (600, 300, 300) if small else (6000, 2000, 2000)
    splits = [
        generate_media_corpus(snips, n, seed=seed * 1000 + k, prefix=f"media-{name}")
        for k, (name, n) in enumerate(zip(("train", "dev", "test"), sizes, strict=True))
    ]
    info = {
        "name": "Media demo",
        "description": (
            "A simulated media assistant: Music, Video, Books, Weather, Shopping and General, "
            "generated from templates and real titles (SNIPS slot values, CC0) plus titles in "
            "several catalogues ('mary poppins', 'moana', 'thriller', ...). Devices are "
            "simulated: the true domain of an ambiguous request depends on the device (Video "
            "mostly on fire_tv, Music and Books mostly on echo_dot)."
        ),
        "devices": "simulated",
        "device_simulation": {
            "device_share": DEVICE_SHARE,
            "domain_prior_given_device": DOMAIN_PRIOR,
        },
        "sources": ["SNIPS (CC0 1.0): titles, artists, playlists and cities"],
        "attribution": [ATTRIBUTION[2]],
    }
    return DemoSplits(splits[0], splits[1], splits[2], info, MEDIA_SETTINGS)


def real_splits(sources: Path, *, small: bool, seed: int) -> DemoSplits:
    """The real-corpus dataset: train and (cross-fitted) dev from HWU64, test SLURP devel."""
    check_sources(sources, ["hwu64.jsonl", "slurp_devel.jsonl"])
    map_path = sources.parent / "domain_maps" / "slurp_to_product.json"
    domain_map = read_domain_map(map_path if map_path.is_file() else default_domain_map())
    train = read_corpus(sources / "hwu64.jsonl", domain_map=domain_map)
    held = read_corpus(sources / "slurp_devel.jsonl", domain_map=domain_map)
    if small:
        keep = ["Alarm", "Books", "Music", "Weather", "General"]
        train = train[train["domain"].isin(keep)]
        train = train.groupby("domain", sort=True).head(120).reset_index(drop=True)
        held = held[held["domain"].isin(keep)].head(240).reset_index(drop=True)
    rng = np.random.default_rng(seed)
    train = train.assign(device=_simulated_devices(len(train), rng))
    test = held.assign(device=_simulated_devices(len(held), rng))
    info = {
        "name": "Real corpora demo",
        "description": (
            f"NLU models trained on HWU64. The re-rankers train on dev: HWU64's own utterances, "
            f"their hypotheses cross-fitted over {_CROSS_FIT_FOLDS} folds (each utterance "
            f"predicted by an NLU trained on the other folds). Test is SLURP's devel split, "
            "seen by neither the NLU nor the re-rankers. Corpus scenarios are mapped to product "
            "domains (SLURP's 'play' split into Music, Books, Podcasts, Radio and Games by "
            "intent). Devices are simulated: drawn uniformly at random, independent of the "
            "utterance, so they carry no information."
        ),
        "devices": "simulated",
        "device_simulation": {
            "device_share": {d: 1 / len(DEVICES) for d in DEVICES},
            "independent_of_content": True,
        },
        "domain_map": domain_map.description,
        "sources": [
            "HWU64 (CC BY 4.0): NLU training corpus; cross-fitted, re-ranker training (dev)",
            "SLURP devel (CC BY 4.0): test",
        ],
        "dev_hypotheses": {"cross_fitted_on": "train", "folds": _CROSS_FIT_FOLDS},
        "attribution": ATTRIBUTION[:2],
    }
    return DemoSplits(train, train, test, info, None, dev_cross_fit=_CROSS_FIT_FOLDS)


def real_corpus_splits(
    sources: str | os.PathLike[str] | None = None, *, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The real-corpus demo's corpora, as :func:`reranker.demo.build_demo` makes them: ``(train, dev, test)``.

    ``train`` is HWU64 (every utterance), ``dev`` the same utterances (the demo predicts them
    cross-fitted), ``test`` SLURP devel; domains mapped to product domains, devices simulated;
    ``seed`` as in :func:`reranker.demo.build_demo`.
    """
    src = Path(sources) if sources is not None else default_sources()
    splits = real_splits(src, small=False, seed=seed)
    return splits.train, splits.dev, splits.test
