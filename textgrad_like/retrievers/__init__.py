"""Retrievers: the ColBERTv2 client, local BM25 and embedding search, and a ColBERTv2-protocol server.

Every retriever is called as ``retriever(query, k=...)`` and returns passages with ``text``,
``long_text``, ``pid`` and ``score`` (attribute or key access), so any of them can be given to
``configure(rm=...)`` or wrapped in an agent's ``search(query)`` tool. Nothing heavy is imported
here: ``bm25s``, ``numpy``, ``torch`` and ``transformers`` load when a retriever is built or used.
"""

from __future__ import annotations

from typing import Any

from .bm25 import BM25Retriever, LocalRetriever, load_corpus
from .colbertv2 import ColBERTv2, RetrievalError, RetrieverConnectionError, clear_request_cache, dotdict
from .embeddings import Embeddings, EmbeddingsRetriever, HashingEmbedder, SentenceEmbedder, default_embedder

_LAZY = {"RetrieverServer", "make_server"}


def __getattr__(name: str) -> Any:
    # The server module is loaded on first use, so `python -m textgrad_like.retrievers.server`
    # does not find it already imported by this package.
    if name in _LAZY:
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "BM25Retriever",
    "ColBERTv2",
    "Embeddings",
    "EmbeddingsRetriever",
    "HashingEmbedder",
    "LocalRetriever",
    "RetrievalError",
    "RetrieverConnectionError",
    "RetrieverServer",
    "SentenceEmbedder",
    "clear_request_cache",
    "default_embedder",
    "dotdict",
    "load_corpus",
    "make_server",
]
