"""Probe: run the NLU live on one utterance and rank its hypotheses for each device.

The NLU sees only the text, so every device gets the same n-best with the same NLU confidences;
the re-ranker's scores differ by device through its device features. Comparing devices side by
side shows what each domain's re-ranker learned about them ("play mary poppins" on ``fire_tv``
versus ``echo_dot``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from reranker.errors import DataError
from reranker.hypotheses import validate_hypotheses
from reranker.nlu.models import NluModels
from reranker.ranking import rank_within_utterance, utterance_codes
from reranker.scoring import score_hypotheses

__all__ = ["PROBE_COLUMNS", "probe_text"]

PROBE_COLUMNS: tuple[str, ...] = (
    "rank", "domain", "intent", "slots", "score", "domain_score", "intent_score", "slot_score",
)  # fmt: skip
"""Columns of each device's ranked frame."""


def probe_text(
    models: NluModels,
    text: str,
    devices: Sequence[str],
    weights: str | os.PathLike[str],
    *,
    nbest: int | None = None,
) -> dict[str, pd.DataFrame]:
    """Rank the NLU's hypotheses of ``text`` for each device.

    Parameters
    ----------
    models : NluModels
        Loaded NLU models (:func:`reranker.nlu.load_models`).
    text : str
        The utterance.
    devices : sequence of str
        Devices to rank for (duplicates are dropped, order kept).
    weights : str or path-like
        A weights registry directory, or ``"r0"`` for the baseline.
    nbest : int, optional
        Keep only the top ``nbest`` hypotheses of each device (default: all of the n-best).

    Returns
    -------
    dict of str to pandas.DataFrame
        Device -> its hypotheses ranked best first, columns :data:`PROBE_COLUMNS` (``rank`` 1 is
        the top; ties broken as in docs/metrics.md#top-1).

    Raises
    ------
    DataError
        Empty text, no device, or ``nbest`` < 1.
    WeightsError
        A weights directory that cannot be read.
    """
    wanted = _check_probe(text, devices, nbest)
    base = models.predict([text])
    n = len(base)
    table = pd.concat(
        [base.assign(utterance_id=f"probe-{k}", device=d) for k, d in enumerate(wanted)],
        ignore_index=True,
    )
    table = validate_hypotheses(table, source="probe")
    scoring = score_hypotheses(table, weights)
    score = np.asarray(scoring.score, dtype=np.float64)
    codes = utterance_codes(table["utterance_id"].to_numpy())
    ranks = rank_within_utterance(codes, score, table["domain_score"].to_numpy(dtype=np.float64))
    table = table.assign(score=score, rank=ranks)
    out: dict[str, pd.DataFrame] = {}
    for k, device in enumerate(wanted):
        rows = table.iloc[k * n : (k + 1) * n].sort_values("rank", kind="stable")
        if nbest is not None:
            rows = rows.head(int(nbest))
        out[device] = rows[list(PROBE_COLUMNS)].reset_index(drop=True)
    return out


def _check_probe(text: str, devices: Sequence[str], nbest: int | None) -> list[str]:
    """The distinct devices to probe, in order; raise on empty text, no device or bad ``nbest``."""
    if not isinstance(text, str) or not text.split():
        raise DataError("probe text is empty")
    if isinstance(devices, str):
        devices = [devices]
    wanted = [str(d).strip() for d in devices]
    if not wanted or any(not d for d in wanted):
        raise DataError("give at least one non-empty device to probe")
    wanted = list(dict.fromkeys(wanted))
    if nbest is not None and int(nbest) < 1:
        raise DataError(f"nbest must be >= 1, got {nbest}")
    return wanted
