"""Datasets on disk: the hypothesis tables, weights registries and NLU models of a data directory.

A data directory is laid out like ``demo_data/``: one sub-directory per dataset, each holding
``hypotheses/<split>.{parquet,csv,jsonl}`` (or a single ``hypotheses.{parquet,csv,jsonl}``),
optionally ``dataset.json``, ``weights/{r1,r2,r3}/`` and ``models/``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reranker.hypotheses import SUFFIXES
from reranker.options import LOSSES

__all__ = ["DatasetInfo", "discover_datasets"]

_SPLIT_ORDER = ("test", "dev", "train")


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset the dashboard can open: hypothesis tables per split, weights, NLU models.

    Attributes
    ----------
    key : str
        Directory name (``media``, ``real``, ``sample``), used in URLs.
    name, description : str
        From ``dataset.json`` when present.
    splits : dict
        Split name (``test``, ``dev``, ``train``, or ``all`` for a single table) -> table path:
        a file, or a directory of Parquet parts (a partitioned dataset).
    weights : dict
        Loss (``r1``, ``r2``, ``r3``) -> weights registry directory.
    models : Path or None
        NLU model directory (the probe needs it).
    devices_simulated : bool
        Whether the devices of this dataset are a simulation (``"devices": "simulated"``).
    device_note : str
        What the devices of this dataset mean, from its ``dataset.json`` (``device_simulation``:
        ``independent_of_content`` or ``domain_prior_given_device``); empty for real devices.
    """

    key: str
    name: str
    description: str
    root: Path
    splits: dict[str, Path] = field(default_factory=dict)
    weights: dict[str, Path] = field(default_factory=dict)
    models: Path | None = None
    devices_simulated: bool = False
    device_note: str = ""

    @property
    def default_split(self) -> str:
        """The split analyses use by default: ``test`` when there is one."""
        for split in _SPLIT_ORDER:
            if split in self.splits:
                return split
        return next(iter(self.splits))


def _has_parquet(directory: Path) -> bool:
    return any(p.suffix.lower() == ".parquet" for p in directory.rglob("*") if p.is_file())


def _table_files(directory: Path) -> dict[str, Path]:
    """Split name -> table: ``<split>.{parquet,csv,jsonl}`` files and ``<split>/`` directories of
    Parquet parts; a ``hypotheses/`` directory partitioned by ``key=value`` is one split, ``all``."""
    found: dict[str, Path] = {}
    if not directory.is_dir():
        return found
    children = sorted(directory.iterdir())
    if any(c.is_dir() and "=" in c.name for c in children):
        return {"all": directory} if _has_parquet(directory) else {}
    for path in children:
        if path.name.startswith((".", "_")) or path.stem in found:
            continue
        if path.is_file() and path.suffix.lower() in SUFFIXES:
            found[path.stem] = path
        elif path.is_dir() and _has_parquet(path):
            found[path.name] = path
    return found


def _dataset_at(directory: Path) -> DatasetInfo | None:
    splits = _table_files(directory / "hypotheses")
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.stem == "hypotheses" and path.suffix.lower() in SUFFIXES:
            splits.setdefault("all", path)
    if not splits:
        return None
    meta: dict[str, Any] = {}
    meta_path = directory / "dataset.json"
    if meta_path.is_file():
        try:
            loaded = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            loaded = {}
        meta = loaded if isinstance(loaded, dict) else {}
    weights = {
        loss: directory / "weights" / loss
        for loss in LOSSES
        if (directory / "weights" / loss).is_dir()
    }
    models = directory / "models"
    return DatasetInfo(
        key=directory.name,
        name=str(meta.get("name") or directory.name.replace("_", " ").capitalize()),
        description=str(meta.get("description") or ""),
        root=directory,
        splits=dict(sorted(splits.items(), key=lambda kv: _split_rank(kv[0]))),
        weights=weights,
        models=models if models.is_dir() else None,
        devices_simulated=str(meta.get("devices", "")).lower() == "simulated",
        device_note=_device_note(meta),
    )


def _device_note(meta: dict[str, Any]) -> str:
    """One sentence on what a dataset's devices mean, from its own description."""
    if str(meta.get("devices", "")).lower() != "simulated":
        return ""
    simulation = meta.get("device_simulation")
    simulation = simulation if isinstance(simulation, dict) else {}
    if simulation.get("independent_of_content"):
        return (
            "The devices of this dataset are simulated and drawn uniformly at random, "
            "independently of the utterance: they carry no information, so any difference "
            "between devices here (learned device weights, probe rankings, per-device metrics) "
            "is noise from a finite sample, not a device preference."
        )
    if simulation.get("domain_prior_given_device"):
        return (
            "The devices of this dataset are simulated: each utterance was assigned a device and "
            "its true domain drawn from a documented device-dependent distribution "
            "(dataset.json, device_simulation)."
        )
    return "The devices of this dataset are simulated."


def _split_rank(split: str) -> tuple[int, str]:
    return (_SPLIT_ORDER.index(split) if split in _SPLIT_ORDER else len(_SPLIT_ORDER), split)


def discover_datasets(root: str | os.PathLike[str]) -> list[DatasetInfo]:
    """Datasets under a data directory laid out like ``demo_data/``.

    A dataset is a directory holding ``hypotheses/<split>.{parquet,csv,jsonl}`` or a single
    ``hypotheses.{parquet,csv,jsonl}``, optionally ``dataset.json``, ``weights/{r1,r2,r3}/`` and
    ``models/``. ``root`` itself may be such a directory. Datasets described by a
    ``dataset.json`` come first, then the others, each group by name.
    """
    base = Path(root)
    if not base.is_dir():
        return []
    found: list[DatasetInfo] = []
    own = _dataset_at(base)
    if own is not None:
        found.append(own)
    for child in sorted(base.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            info = _dataset_at(child)
            if info is not None:
                found.append(info)
    return sorted(found, key=lambda d: (not (d.root / "dataset.json").is_file(), d.key))
