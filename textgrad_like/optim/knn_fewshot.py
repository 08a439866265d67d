"""``KNNFewShot``: per call, demos from the training examples nearest to the inputs.

At each forward call the compiled program embeds its inputs, finds the ``k`` nearest training
examples and runs :class:`BootstrapFewShot` on them (with ``few_shot_bootstrap_args``), then answers
with the resulting demos. The embedder is any callable ``list[str] -> array (n, d)``; the default,
:class:`HashingEmbedder`, needs no model and no network.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

import numpy as np

from ..errors import OptimizerError
from .bootstrap import BootstrapFewShot
from .teleprompter import Teleprompter

logger = logging.getLogger(__name__)

__all__ = ["HashingEmbedder", "KNNFewShot", "NearestExamples"]


class HashingEmbedder:
    """An offline embedder: hashed word and character n-gram counts, L2-normalized (``dim`` columns)."""

    def __init__(self, dim: int = 1024, char_ngrams: tuple[int, ...] = (3, 4)) -> None:
        if dim < 8:
            raise OptimizerError(f"HashingEmbedder(dim=...) must be >= 8, got {dim}.")
        self.dim = dim
        self.char_ngrams = char_ngrams

    def _bucket(self, token: str) -> int:
        return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little") % self.dim

    def __call__(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            lowered = str(text).lower()
            for word in re.findall(r"\w+", lowered):
                out[row, self._bucket("w:" + word)] += 1.0
            padded = f" {lowered} "
            for n in self.char_ngrams:
                for i in range(max(0, len(padded) - n + 1)):
                    out[row, self._bucket(f"c{n}:" + padded[i:i + n])] += 0.5
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


def _example_text(fields: dict[str, Any], keys: list[str]) -> str:
    return " | ".join(f"{k}: {fields[k]}" for k in keys if k in fields)


class NearestExamples:
    """``NearestExamples(k, trainset, vectorizer)(**inputs)`` returns the ``k`` most similar examples
    (cosine similarity over the input fields)."""

    def __init__(self, k: int, trainset: list[Any], vectorizer: Any = None) -> None:
        if k < 1:
            raise OptimizerError(f"k must be >= 1, got {k}.")
        if not trainset:
            raise OptimizerError("KNNFewShot needs a non-empty trainset.")
        self.k = k
        self.trainset = list(trainset)
        self.vectorizer = vectorizer or HashingEmbedder()
        first = self.trainset[0]
        self.input_keys = sorted(first.inputs().keys()) if getattr(first, "input_keys", None) else sorted(first.keys())
        texts = [_example_text(dict(ex.items()), self.input_keys) for ex in self.trainset]
        self.matrix = self._embed(texts)

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self.vectorizer(texts), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise OptimizerError("The vectorizer must map a list of n strings to an array of shape (n, d).")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)

    def __call__(self, **inputs: Any) -> list[Any]:
        query = self._embed([_example_text(inputs, self.input_keys)])[0]
        scores = self.matrix @ query
        order = sorted(range(len(self.trainset)), key=lambda i: (-float(scores[i]), i))[: self.k]
        return [self.trainset[i] for i in order]


_CLASSES: dict[type, type] = {}


def _knn_forward(self: Any, *args: Any, **kwargs: Any) -> Any:
    neighbors = self._knn_retriever(**kwargs)
    optimizer = BootstrapFewShot(**self._knn_bootstrap_args)
    compiled = optimizer.compile(self._knn_base, teacher=self._knn_teacher, trainset=neighbors, num_threads=1,
                                 disable_progress=True)
    return compiled(*args, **kwargs)


def _knn_class(cls: type) -> type:
    if cls not in _CLASSES:
        _CLASSES[cls] = type(f"KNN{cls.__name__}", (cls,), {"forward": _knn_forward, "__module__": __name__,
                                                             "__qualname__": f"KNN{cls.__name__}"})
    return _CLASSES[cls]


class KNNFewShot(Teleprompter):
    """``KNNFewShot(k, trainset, vectorizer=None, **few_shot_bootstrap_args).compile(student, teacher=None)``.

    The compiled program has the student's structure (same predictors and parameters); its
    forward retrieves neighbors and bootstraps demos from them on every call (so every call may
    spend teacher LM calls when ``max_bootstrapped_demos > 0``).
    """

    def __init__(self, k: int, trainset: list[Any], vectorizer: Any = None,
                 **few_shot_bootstrap_args: Any) -> None:
        super().__init__()
        self.k = k
        self.KNN = NearestExamples(k, trainset, vectorizer=vectorizer)
        self.few_shot_bootstrap_args = dict(few_shot_bootstrap_args)
        BootstrapFewShot(**self.few_shot_bootstrap_args)  # fail now on bad arguments

    def compile(self, student: Any, *, teacher: Any = None, trainset: list[Any] | None = None,
                valset: list[Any] | None = None, **kwargs: Any) -> Any:
        if kwargs:
            raise OptimizerError(f"KNNFewShot.compile got unknown arguments {sorted(kwargs)}.")
        program = student.reset_copy()
        program.__class__ = _knn_class(type(student))
        object.__setattr__(program, "_knn_retriever", self.KNN)
        object.__setattr__(program, "_knn_base", student.reset_copy())
        object.__setattr__(program, "_knn_teacher", teacher)
        object.__setattr__(program, "_knn_bootstrap_args", dict(self.few_shot_bootstrap_args))
        self.search_state = {"k": self.k, "trainset_size": len(self.KNN.trainset), "input_keys": self.KNN.input_keys}
        logger.info("KNNFewShot: no LM calls now; each call bootstraps from its %d nearest examples (up to %d "
                    "teacher runs per call).", self.k,
                    min(self.k, int(self.few_shot_bootstrap_args.get("max_bootstrapped_demos", 4))))
        return program
