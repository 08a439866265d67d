"""``MultiChainComparison``: read ``M`` candidate reasoning chains and write one corrected answer."""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from ..nn.module import Module
from ..nn.traced import derive
from ..primitives import Prediction
from ..signatures import InputField, OutputField, ensure_signature
from .predict import Predict


class MultiChainComparison(Module):
    """Compare ``M`` completions (each with ``reasoning`` or ``rationale`` and the last output field)
    and produce the signature's outputs after a holistic ``rationale``.

    ``forward(completions, **inputs)``: ``completions`` is a list of dicts / Predictions or a
    :class:`~textgrad_like.primitives.Completions` with exactly ``M`` items.
    """

    def __init__(self, signature: Any, M: int = 3, temperature: float = 0.7, **config: Any) -> None:  # noqa: N803
        super().__init__()
        if not isinstance(M, int) or M < 1:
            raise InputError(f"M must be a positive integer, got {M!r}.")
        self.M = M
        sig = ensure_signature(signature)
        self.last_key = list(sig.output_fields)[-1]
        for i in range(1, M + 1):
            sig = sig.append(f"reasoning_attempt_{i}",
                             InputField(prefix=f"Attempt {i}:", desc="one candidate's reasoning and proposed answer"))
        sig = sig.prepend("rationale", OutputField(
            prefix="Corrected reasoning:",
            desc="compare the attempts, point out their mistakes, and reason to the right answer"))
        self.predict = Predict(sig, temperature=temperature, **config)

    def forward(self, completions: Any, **kwargs: Any) -> Prediction:
        items = list(completions)
        if len(items) != self.M:
            raise InputError(f"MultiChainComparison was built with M={self.M} but got {len(items)} completions; "
                             "pass exactly M completions or create it with the matching M.")
        attempts = {}
        for i, completion in enumerate(items, 1):
            rationale = _field(completion, "rationale")
            if rationale is None:
                rationale = _field(completion, "reasoning") or ""
            answer = _field(completion, self.last_key)
            if answer is None:
                raise InputError(f"Completion {i} has no {self.last_key!r} field to compare.")
            first_line = str(rationale).strip().split("\n")[0].strip()
            answer_line = str(answer).strip().split("\n")[0].strip()
            attempts[f"reasoning_attempt_{i}"] = derive(f"Reasoning: {first_line} | Proposed {self.last_key}: "
                                                        f"{answer_line}", rationale, answer)  # keeps the edges
        return self.predict(**{**attempts, **kwargs})


def _field(completion: Any, key: str) -> Any:
    if isinstance(completion, dict):
        return completion.get(key)
    getter = getattr(completion, "get", None)
    if callable(getter):
        return getter(key, None)
    return getattr(completion, key, None)
