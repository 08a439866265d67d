"""Local lexical retrieval with BM25 (the ``bm25s`` package), plus the corpus helpers shared by
every local retriever.

A corpus is a list of passage strings, a list of dicts (``{"text": ..., "title": ..., "pid": ...}``)
or a path to a ``.jsonl`` file of such dicts or a text file with one passage per line. A passage
with a title is served as ``"Title | text"``, the format of the ColBERTv2 ``wiki17_abstracts`` index.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

from ..errors import ConfigurationError
from .colbertv2 import dotdict

__all__ = ["BM25Retriever", "CorpusLike", "LocalRetriever", "load_corpus", "tokenize"]

logger = logging.getLogger(__name__)

CorpusLike = Union[str, os.PathLike, Sequence[str], Sequence[dict]]

_WORD = re.compile(r"\w+", re.UNICODE)
_POSSESSIVE = re.compile(r"(?<=\w)['\u2019]s\b")
# A short English stop list; BM25's idf already down-weights frequent words, this only trims noise.
_STOPWORDS = frozenset(
    "a an and are as at be been but by did do does for from had has have he her his how in into is it its "
    "of on or she that the their them then there these they this to was were what when where which who "
    "whom whose why will with".split()
)


def _fold(text: str) -> str:
    """Lower-case and strip accents, so "Galápagos" and "galapagos" meet."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _stem(word: str) -> str:
    """A deliberately light stemmer: plural and possessive endings only."""
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Split ``text`` into lower-cased, accent-free, lightly stemmed words without stop words."""
    return [_stem(w) for w in _WORD.findall(_POSSESSIVE.sub("", _fold(text))) if w not in _STOPWORDS]


def _passage_from_dict(row: dict[str, Any], index: int, where: str) -> tuple[str, Any]:
    text = row.get("text", row.get("long_text", row.get("passage")))
    if not isinstance(text, str):
        raise ConfigurationError(f"Corpus entry {index} in {where} has no 'text' string; keys: {sorted(row)}")
    title = row.get("title")
    if isinstance(title, str) and title and not text.startswith(f"{title} |"):
        text = f"{title} | {text}"
    return text, row.get("pid", index)


def load_corpus(corpus: CorpusLike) -> tuple[list[str], list[Any]]:
    """Read a corpus into parallel lists of passage texts and passage ids.

    Raises:
        ConfigurationError: the path does not exist, an entry has no text, or the corpus is empty.
    """
    if isinstance(corpus, (str, os.PathLike)):
        path = Path(corpus)
        if not path.is_file():
            raise ConfigurationError(
                f"Corpus file {str(path)!r} not found. Pass a list of passages, or the path of a .jsonl file "
                "with a 'text' field per line (or a text file with one passage per line)."
            )
        with path.open(encoding="utf-8") as fh:
            lines = [line.rstrip("\n") for line in fh if line.strip()]
        if path.suffix.lower() in (".jsonl", ".json"):
            try:
                rows = [json.loads(line) for line in lines]
            except ValueError as exc:
                raise ConfigurationError(f"Corpus file {str(path)!r} is not valid JSON Lines: {exc}") from exc
            return _from_items(rows, str(path))
        return _from_items(lines, str(path))
    if isinstance(corpus, Sequence):
        return _from_items(list(corpus), "the corpus list")
    raise ConfigurationError(
        f"A corpus must be a list of strings or dicts, or a file path; got {type(corpus).__name__}"
    )


def _from_items(items: list[Any], where: str) -> tuple[list[str], list[Any]]:
    texts: list[str] = []
    pids: list[Any] = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            texts.append(item)
            pids.append(index)
        elif isinstance(item, dict):
            text, pid = _passage_from_dict(item, index, where)
            texts.append(text)
            pids.append(pid)
        else:
            raise ConfigurationError(
                f"Corpus entry {index} in {where} is a {type(item).__name__}; use strings or dicts with 'text'"
            )
    if not texts:
        raise ConfigurationError(f"{where} holds no passages; a retriever needs at least one")
    return texts, pids


class LocalRetriever:
    """Base class of the in-process retrievers: same call shape as :class:`ColBERTv2`.

    ``retriever(query, k=None)`` returns up to ``k`` (default: the ``k`` given at construction)
    :class:`dotdict` passages with ``text``, ``long_text``, ``pid``, ``score`` and ``rank``, best first;
    ``simplify=True`` returns the texts only. An instance can be passed as ``configure(rm=...)``,
    served with :mod:`textgrad_like.retrievers.server`, or wrapped in a ``search(query)`` tool.
    """

    def __init__(self, corpus: CorpusLike, k: int = 3) -> None:
        self.k = self._check_k(k)
        self.texts, self.pids = load_corpus(corpus)

    @staticmethod
    def _check_k(k: Any) -> int:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigurationError(f"k must be a positive integer, got {k!r}")
        return k

    def __len__(self) -> int:
        return len(self.texts)

    def _scores(self, query: str, k: int) -> list[tuple[int, float]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, query: str, k: int | None = None, simplify: bool = False) -> list[str] | list[dotdict]:
        if not isinstance(query, str):
            raise ConfigurationError(f"query must be a string, got {type(query).__name__}")
        k = self.k if k is None else self._check_k(k)
        k = min(k, len(self.texts))
        hits = self._scores(query, k)
        if simplify:
            return [self.texts[i] for i, _ in hits]
        return [
            dotdict(text=self.texts[i], long_text=self.texts[i], pid=self.pids[i], score=float(score), rank=rank)
            for rank, (i, score) in enumerate(hits, start=1)
        ]

    def search(self, query: str, k: int | None = None) -> list[str]:
        """The passage texts for ``query``: a ready-made body for a ``search(query)`` agent tool."""
        return self(query, k=k, simplify=True)  # type: ignore[return-value]


class BM25Retriever(LocalRetriever):
    """BM25 over a local corpus, indexed with the ``bm25s`` package (``pip install bm25s``).

    Args:
        corpus: passages, dicts with ``text`` (and optional ``title``/``pid``), or a file path.
        k: how many passages a call returns when it does not say.
        k1, b: the usual BM25 parameters.
    """

    def __init__(self, corpus: CorpusLike, k: int = 3, k1: float = 1.5, b: float = 0.75) -> None:
        super().__init__(corpus, k)
        try:
            import bm25s
        except ImportError as exc:
            raise ConfigurationError(
                "BM25Retriever needs the bm25s package: pip install 'bm25s>=0.2' (or textgrad_like[data])"
            ) from exc
        self._lock = threading.Lock()
        self._index = bm25s.BM25(k1=k1, b=b)
        corpus_tokens = [tokenize(text) or ["\u2205"] for text in self.texts]  # bm25s dislikes empty docs
        self._index.index(corpus_tokens, show_progress=False)
        self._vocab = set(self._index.vocab_dict)
        logger.debug("BM25 index built over %d passages (%d terms)", len(self.texts), len(self._vocab))

    def _scores(self, query: str, k: int) -> list[tuple[int, float]]:
        tokens = [t for t in tokenize(query) if t in self._vocab]
        if not tokens:
            return [(i, 0.0) for i in range(k)]
        with self._lock:  # bm25s keeps scratch state; one query at a time per index
            docs, scores = self._index.retrieve([tokens], k=k, show_progress=False, n_threads=1)
        return [(int(d), float(s)) for d, s in zip(docs[0], scores[0], strict=True)]

    def __repr__(self) -> str:
        return f"BM25Retriever(passages={len(self.texts)}, k={self.k})"
