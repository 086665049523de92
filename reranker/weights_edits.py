"""Editing weights by hand: uploaded documents published by loss, and the what-if re-ranking.

The dashboard's Weights and Utterances pages call these; they hold no interface code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from reranker._files import DOCUMENT_LIMIT, decode_utf8, parse_json
from reranker.contributions import rescore_utterance
from reranker.errors import WeightsError

__all__ = ["parse_documents", "publish_documents", "what_if"]

KEY = ["domain", "intent", "slots"]


def parse_documents(files: Sequence[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """Validated weights documents from uploaded ``(name, bytes)`` files (all or none).

    Raises
    ------
    WeightsError
        Naming the first file that is too large, not UTF-8 JSON, or not a weights document.
    """
    from reranker.weights_document import validate_weights_document

    documents = []
    for name, data in files:
        if len(data) > DOCUMENT_LIMIT:
            raise WeightsError(f"{name}: too large for a weights document")
        text = decode_utf8(name, data, error=WeightsError)
        raw = parse_json(text, source=name, error=WeightsError)
        documents.append(validate_weights_document(raw, source=name))
    return documents


def publish_documents(
    documents: Sequence[Mapping[str, Any]], registry_of: Callable[[str], Path]
) -> Iterator[tuple[str, str, int]]:
    """Publish each document as a new version in the registry of the loss it names.

    ``registry_of(loss)`` gives that registry's directory. Yields ``(loss, domain, version)``
    as each is published, so a failure leaves the earlier ones published and reported.
    """
    from reranker.registry import WeightsRegistry

    for d in documents:
        version = WeightsRegistry(registry_of(str(d["loss"]))).publish(str(d["domain"]), d)
        yield str(d["loss"]), str(d["domain"]), version


def what_if(
    rows: pd.DataFrame,
    documents: Mapping[str, Mapping[str, Any]],
    domain: str,
    weights: Sequence[float],
    bias: float,
    semer: Mapping[tuple[str, str, str], float] | None = None,
) -> tuple[pd.DataFrame, bool]:
    """One utterance re-ranked with ``domain``'s weights and bias replaced.

    Returns the hypotheses in their what-if order (``domain, intent, slots, what-if score,
    what-if rank, current rank`` and, given ``semer`` by hypothesis, ``semer``) and whether
    any rank changed.
    """
    edited = dict(documents)
    edited[domain] = {**documents[domain], "weights": list(weights), "bias": bias}
    before = rescore_utterance(rows, documents)
    after = rescore_utterance(rows, edited)
    out = after[[*KEY, "score", "rank"]].rename(
        columns={"score": "what-if score", "rank": "what-if rank"}
    )
    keys = list(zip(after["domain"], after["intent"], after["slots"], strict=True))
    out["current rank"] = (
        before.set_index(KEY)["rank"].loc[pd.MultiIndex.from_tuples(keys)].to_numpy()
    )
    if semer is not None:
        out["semer"] = [semer[k] for k in keys]
    changed = bool((out["what-if rank"] != out["current rank"]).any())
    return out.reset_index(drop=True), changed
