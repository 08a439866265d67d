"""``Retrieve``: ask the configured retriever (``settings.rm``) for the top ``k`` passages."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..callbacks import with_callbacks
from ..errors import ConfigurationError
from ..nn.module import Module
from ..primitives import Prediction
from ..settings import settings

_TEXT_KEYS = ("long_text", "text", "passage", "content", "document")


def passage_text(item: Any) -> str:
    """The text of one retrieved item: a string, a dict with ``long_text``/``text``, or an object with one."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        for key in _TEXT_KEYS:
            if key in item and item[key] is not None:
                return str(item[key])
        return str(item)
    for key in _TEXT_KEYS:
        value = getattr(item, key, None)
        if value is not None:
            return str(value)
    return str(item)


class Retrieve(Module):
    """``Retrieve(k=3)(query)`` returns ``Prediction(passages=[...])`` from ``settings.rm``.

    The retriever is any callable ``rm(query, k=k, **kwargs)`` returning a list of strings or dicts
    (e.g. :class:`~textgrad_like.retrievers.colbertv2.ColBERTv2`); configure it with ``configure(rm=...)``.
    """

    name = "Search"
    input_variable = "query"
    desc = "takes a search query and returns one or more potentially relevant passages from a corpus"

    def __init__(self, k: int = 3, callbacks: list[Any] | None = None) -> None:
        super().__init__(callbacks=callbacks)
        if not isinstance(k, int) or k < 1:
            raise ConfigurationError(f"Retrieve(k=...) needs a positive integer, got {k!r}.")
        self.k = k

    def reset(self) -> None:
        """Nothing to reset (kept for DSPy compatibility)."""

    def dump_state(self) -> dict[str, Any]:
        return {"k": self.k}

    def load_state(self, state: dict[str, Any]) -> Retrieve:
        if isinstance(state, dict) and "k" in state:
            self.k = int(state["k"])
        return self

    @with_callbacks
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, query: str | list[str], k: int | None = None, **kwargs: Any) -> Prediction:
        rm = settings.get("rm")
        if rm is None:
            raise ConfigurationError("No retriever is configured. Call textgrad_like.configure(rm=...) with a "
                                     "retriever such as ColBERTv2(url=...), or any callable rm(query, k) -> list.")
        k = self.k if k is None else k
        passages = rm(query, k=k, **kwargs)
        if passages is None:
            passages = []
        elif isinstance(passages, (str, dict)) or not isinstance(passages, Iterable):
            passages = [passages]
        return Prediction(passages=[passage_text(p) for p in passages])
