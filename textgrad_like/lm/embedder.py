"""``Embedder``: text → vectors, from a hosted model (through litellm) or a local function (DSPy's ``dspy.Embedder``).

``Embedder("openai/text-embedding-3-small")`` calls ``litellm.embedding`` in batches of ``batch_size``
and caches each batch's vectors in the LM cache (``caching=True``). ``Embedder(fn)`` calls any function
that maps a list of strings to one vector per string (a sentence-transformers ``encode``, the
bundled :class:`~textgrad_like.retrievers.embeddings.SentenceEmbedder`, ...); such a function is not
cached here. A single string gives a 1-D array, a list a 2-D array (one row per string).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigurationError, InputError, LMError
from .cache import cache_key, get_cache

__all__ = ["Embedder"]


class Embedder:
    """``Embedder(model, batch_size=200, caching=True, **kwargs)``; call it with a string or a list of strings.

    Args:
        model: a litellm embedding model name (``"provider/model"``) or a callable
            ``fn(list[str], **kwargs) -> vectors``.
        batch_size: strings per request (or per call of ``fn``).
        caching: cache the vectors of a hosted model (ignored for a callable).
        **kwargs: passed to every request (``dimensions=``, ``api_base=``, ...) or to ``fn``.
    """

    def __init__(self, model: str | Callable[..., Any], batch_size: int = 200, caching: bool = True,
                 **kwargs: Any) -> None:
        if not isinstance(model, str) and not callable(model):
            raise ConfigurationError(f"Embedder needs a model name or a callable, got {type(model).__name__}.")
        if int(batch_size) < 1:
            raise ConfigurationError("Embedder batch_size must be at least 1.")
        self.model = model
        self.batch_size = int(batch_size)
        self.caching = caching
        self.default_kwargs = kwargs

    def __call__(self, inputs: str | Sequence[str], batch_size: int | None = None, caching: bool | None = None,
                 **kwargs: Any) -> Any:
        import numpy as np

        single = isinstance(inputs, str)
        texts = [inputs] if single else list(inputs)
        if not all(isinstance(t, str) for t in texts):
            raise InputError("Embedder takes a string or a list of strings.")
        size = int(batch_size or self.batch_size)
        caching = self.caching if caching is None else caching
        options = {**self.default_kwargs, **kwargs}
        rows: list[Any] = []
        for start in range(0, len(texts), size):
            rows.extend(self._embed(texts[start:start + size], caching, options))
        vectors = np.asarray(rows, dtype=np.float32)
        if len(texts) and (vectors.ndim != 2 or len(vectors) != len(texts)):
            raise LMError(f"The embedding model returned {vectors.shape} for {len(texts)} strings; it must return "
                          "one vector per string.")
        return vectors[0] if single else vectors

    async def acall(self, inputs: str | Sequence[str], batch_size: int | None = None, caching: bool | None = None,
                    **kwargs: Any) -> Any:
        ctx = contextvars.copy_context()
        call = functools.partial(ctx.run, self.__call__, inputs, batch_size, caching, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(None, call)

    def _embed(self, batch: list[str], caching: bool, options: dict[str, Any]) -> list[Any]:
        if callable(self.model):
            return list(self.model(batch, **options))
        key = cache_key({"embedding_model": self.model, "input": batch, **options}) if caching else None
        if key is not None:
            hit = get_cache().get(key)
            if hit is not None:
                return list(hit)
        import litellm

        try:
            response = litellm.embedding(model=self.model, input=batch, **options)
        except Exception as exc:
            raise LMError(f"Embedding with {self.model!r} failed: {type(exc).__name__}: {exc}") from exc
        vectors = [list(map(float, item["embedding"])) for item in response.data]
        if key is not None:
            get_cache().put(key, vectors)
        return vectors
