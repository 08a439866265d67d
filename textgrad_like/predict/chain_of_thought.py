"""``ChainOfThought``: a ``Predict`` whose signature first asks for step-by-step ``reasoning``."""

from __future__ import annotations

from typing import Any

from ..nn.module import Module
from ..primitives import Prediction
from ..signatures import OutputField, ensure_signature
from .predict import Predict


class ChainOfThought(Module):
    def __init__(self, signature: Any, rationale_field: Any = None, rationale_field_type: Any = str,
                 **config: Any) -> None:
        super().__init__()
        sig = ensure_signature(signature)
        field = rationale_field or OutputField(desc="your reasoning, step by step, before the answer")
        self.predict = Predict(sig.prepend("reasoning", field, type_=rationale_field_type), **config)

    def forward(self, **kwargs: Any) -> Prediction:
        return self.predict(**kwargs)

    async def aforward(self, **kwargs: Any) -> Prediction:
        return await self.predict.acall(**kwargs)
