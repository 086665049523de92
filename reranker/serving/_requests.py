"""Request bodies of the service: decoding and validation, with the rules of hypothesis tables.

A ``/rerank`` body is one utterance's n-best::

    {"utterance_id": "u1", "device": "fire_tv", "text": "play mary poppins",
     "hypotheses": [{"domain": "Video", "intent": "Video.PlayVideo",
                     "slots": "play [title : mary poppins]",
                     "domain_score": 0.8, "intent_score": 0.9, "slot_score": 0.7}, ...]}

The rules are those of a hypothesis table (docs/formats.md#hypothesis-table): ``utterance_id``,
``domain`` and ``intent`` are non-empty strings, ``slots`` a string that may be empty and must be a
valid bracket annotation, the three scores finite numbers in [0, 1]; strings are stripped of
surrounding white space, ``device`` defaults to ``unknown``, and a ``(domain, intent, slots)`` given
twice is refused. On top, sizes are bounded (:class:`Limits`). Every failure raises
:class:`RequestError` naming the field at fault, e.g. ``hypotheses[2].domain_score``. Keys beyond
these are ignored and returned unchanged, as extra table columns are.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reranker.annotation import parse_slots
from reranker.errors import DataError, RerankerError
from reranker.hypotheses import OPTIONAL_COLUMNS, SCORE_COLUMNS
from reranker.serving._model import MAX_ROWS, NBest

__all__ = ["Limits", "RequestError", "decode_json", "parse_batch", "parse_nbest"]


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may hold."""

    max_body_bytes: int = 2 * 1024 * 1024
    max_batch: int = 500
    max_hypotheses: int = 100
    max_id_chars: int = 256
    max_string_chars: int = 1024
    max_text_chars: int = 4096

    def __post_init__(self) -> None:
        if not 1 <= self.max_hypotheses <= MAX_ROWS:
            raise ValueError(f"max_hypotheses must be in [1, {MAX_ROWS}]")


class RequestError(RerankerError):
    """A request the service refuses; ``field`` names the part at fault ("" for the body)."""

    def __init__(self, field: str, message: str, *, status: int = 422) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.status = status


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def decode_json(body: bytes) -> Any:
    """Parse a request body as strict JSON (UTF-8; no NaN or Infinity); 400 otherwise."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RequestError("", f"body is not UTF-8 (byte {e.start})", status=400) from e
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise RequestError(
            "", f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}", status=400
        ) from e
    except RecursionError as e:
        raise RequestError("", "invalid JSON: nested too deeply", status=400) from e
    except ValueError as e:  # NaN/Infinity, or an integer too long to convert
        raise RequestError("", f"invalid JSON: {e}", status=400) from e


def _text(value: object, field: str, *, limit: int, required: bool) -> str:
    if not isinstance(value, str):
        raise RequestError(field, f"expected text, got {_short(value)}")
    if len(value) > limit:
        raise RequestError(field, f"longer than {limit} characters")
    value = value.strip()
    if required and not value:
        raise RequestError(field, "missing value")
    return value


def _score(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(field, f"not a number: {_short(value)}")
    if isinstance(value, int) and not 0 <= value <= 1:
        raise RequestError(field, f"score {_short(value)} is outside [0, 1]")
    number = float(value)
    if not math.isfinite(number):
        raise RequestError(field, "score is NaN or infinite")
    if not 0.0 <= number <= 1.0:
        raise RequestError(field, f"score {number!r} is outside [0, 1]")
    return number


@functools.lru_cache(maxsize=8192)
def _slots_problem(slots: str) -> str | None:
    try:
        parse_slots(slots)
    except DataError as e:
        return str(e)
    return None


def _required(obj: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise RequestError(f"{where}{key}", "missing value")
    return obj[key]


def _plain_hypothesis(obj: object, limit: int) -> tuple[str, str, str, list[float]] | None:
    """The hypothesis if it passes every rule in the common way (strings, float scores), else
    ``None`` to let :func:`_hypothesis` find and name what is wrong. Accepts nothing that
    :func:`_hypothesis` refuses; it only spares the checks their error messages."""
    if type(obj) is not dict:
        return None
    domain, intent, slots = obj.get("domain"), obj.get("intent"), obj.get("slots")
    if not (type(domain) is str and type(intent) is str and type(slots) is str):
        return None
    if len(domain) > limit or len(intent) > limit or len(slots) > limit:
        return None
    scores = [obj.get("domain_score"), obj.get("intent_score"), obj.get("slot_score")]
    for value in scores:  # NaN fails the comparison; infinities fall outside
        if type(value) is not float or not 0.0 <= value <= 1.0:
            return None
    domain, intent, slots = domain.strip(), intent.strip(), slots.strip()
    if not domain or not intent or _slots_problem(slots) is not None:
        return None
    return domain, intent, slots, scores  # type: ignore[return-value]


def _hypothesis(obj: object, where: str, limits: Limits) -> tuple[str, str, str, list[float]]:
    plain = _plain_hypothesis(obj, limits.max_string_chars)
    return plain if plain is not None else _checked_hypothesis(obj, where, limits)


def _checked_hypothesis(
    obj: object, where: str, limits: Limits
) -> tuple[str, str, str, list[float]]:
    """Every rule, one by one; raises :class:`RequestError` naming the first field at fault."""
    if not isinstance(obj, dict):
        raise RequestError(where.rstrip("."), f"expected an object, got {_short(obj)}")
    n = limits.max_string_chars
    domain = _text(_required(obj, "domain", where), f"{where}domain", limit=n, required=True)
    intent = _text(_required(obj, "intent", where), f"{where}intent", limit=n, required=True)
    slots = _text(_required(obj, "slots", where), f"{where}slots", limit=n, required=False)
    problem = _slots_problem(slots)
    if problem is not None:
        raise RequestError(f"{where}slots", problem)
    scores = [_score(_required(obj, c, where), f"{where}{c}") for c in SCORE_COLUMNS]
    return domain, intent, slots, scores


def _object(body: object, where: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise RequestError(where.rstrip("."), f"expected a JSON object, got {_short(body)}")
    return body


def parse_nbest(body: object, limits: Limits = Limits(), *, where: str = "") -> NBest:
    """Validate one utterance's n-best (a decoded JSON value); see the module docstring."""
    obj = _object(body, where)
    uid = _text(
        _required(obj, "utterance_id", where),
        f"{where}utterance_id",
        limit=limits.max_id_chars,
        required=True,
    )
    device = _text(
        obj.get("device", ""), f"{where}device", limit=limits.max_string_chars, required=False
    )
    text = obj.get("text", "")
    if not isinstance(text, str) or len(text) > limits.max_text_chars:
        raise RequestError(f"{where}text", f"expected text of at most {limits.max_text_chars}")
    hyps = _required(obj, "hypotheses", where)
    if not isinstance(hyps, list) or not hyps:
        raise RequestError(f"{where}hypotheses", "expected a non-empty list of hypotheses")
    if len(hyps) > limits.max_hypotheses:
        raise RequestError(f"{where}hypotheses", f"more than {limits.max_hypotheses} hypotheses")
    rows = [_hypothesis(h, f"{where}hypotheses[{i}].", limits) for i, h in enumerate(hyps)]
    seen: dict[tuple[str, str, str], int] = {}
    for i, (domain, intent, slots, _) in enumerate(rows):
        first = seen.setdefault((domain, intent, slots), i)
        if first != i:
            raise RequestError(
                f"{where}hypotheses[{i}].slots",
                f"duplicated hypothesis (domain, intent, slots) = ({domain!r}, {intent!r}, "
                f"{slots!r}), first at hypotheses[{first}]",
            )
    return NBest(
        utterance_id=uid,
        device=device or OPTIONAL_COLUMNS["device"],
        domain=tuple(r[0] for r in rows),
        intent=tuple(r[1] for r in rows),
        slots=tuple(r[2] for r in rows),
        domain_score=tuple(r[3][0] for r in rows),
        intent_score=tuple(r[3][1] for r in rows),
        slot_score=tuple(r[3][2] for r in rows),
        text=text,
    )


def parse_batch(body: object, limits: Limits = Limits()) -> list[NBest]:
    """Validate a ``/rerank/batch`` body: a non-empty list of n-bests, distinct utterance ids."""
    if not isinstance(body, list) or not body:
        raise RequestError("", f"expected a non-empty JSON list of utterances, got {_short(body)}")
    if len(body) > limits.max_batch:
        raise RequestError("", f"more than {limits.max_batch} utterances in one batch")
    nbests = [parse_nbest(item, limits, where=f"[{i}].") for i, item in enumerate(body)]
    first: dict[str, int] = {}
    for i, nb in enumerate(nbests):
        j = first.setdefault(nb.utterance_id, i)
        if j != i:
            raise RequestError(
                f"[{i}].utterance_id",
                f"utterance {nb.utterance_id!r} appears twice in the batch (first at [{j}])",
            )
    return nbests
