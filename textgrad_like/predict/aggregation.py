"""``majority``: pick the most common answer among several completions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InputError
from ..primitives import Completions, Example, Prediction
from ..primitives.text import normalize_text


def default_normalize(text: Any) -> str | None:
    """Normalized text for voting; ``None`` (ignored in the vote) when nothing is left."""
    return normalize_text(str(text)) or None


def majority(prediction_or_completions: Prediction | Completions | list[Any],
             normalize: Callable[[Any], Any] | None = default_normalize, field: str | None = None) -> Prediction:
    """The completion whose ``field`` (default: the signature's last output field) is most common.

    Values that ``normalize`` maps to ``None`` do not vote (unless none is left); ties go to the
    earliest completion. Returns a :class:`Prediction` holding that completion.
    """
    if isinstance(prediction_or_completions, Prediction):
        completions: Any = prediction_or_completions.completions
    elif isinstance(prediction_or_completions, (Completions, list)):
        completions = prediction_or_completions
    else:
        raise InputError("majority(...) takes a Prediction, a Completions object or a list of completions, got "
                         f"{type(prediction_or_completions).__name__}.")
    rows = [c if isinstance(c, (dict, Example)) else dict(c) for c in completions]
    if not rows:
        raise InputError("majority(...) needs at least one completion.")
    signature = getattr(completions, "signature", None)
    if not field:
        if signature is not None:
            field = list(signature.output_fields)[-1]
        else:
            field = list(rows[0].keys())[-1]
    missing = [i for i, row in enumerate(rows) if field not in row]
    if missing:
        raise InputError(f"Completions {missing} have no field {field!r}; pass field= with a field they all have.")
    norm = normalize or (lambda value: value)
    values = [norm(row[field]) for row in rows]
    voters = [v for v in values if v is not None] or values
    counts: dict[Any, int] = {}
    for value in voters:
        key = _hashable(value)
        counts[key] = counts.get(key, 0) + 1
    winner = max(counts, key=lambda k: counts[k])  # max keeps the first of equal counts
    chosen = next(row for row, value in zip(rows, values, strict=True) if _hashable(value) == winner)
    return Prediction.from_completions([dict(chosen.items())], signature=signature)


def _hashable(value: Any) -> Any:
    try:
        hash(value)
        return value
    except TypeError:
        return repr(value)
