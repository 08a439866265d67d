"""``Dataset``: the base class of the ready-made tasks, with seeded, sized train/dev/test splits.

A subclass fills ``self._train``, ``self._dev`` and ``self._test`` with lists of plain dicts (or
Examples). The public ``train``/``dev``/``test`` properties shuffle each split with its own seed,
cut it to the requested size, wrap every row in an :class:`~textgrad_like.Example` tagged with a
``dspy_uuid`` and ``dspy_split`` and mark ``input_keys`` as inputs. The result is computed once and
kept until :meth:`Dataset.reset_seeds` changes the seeds or sizes.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Mapping
from types import SimpleNamespace
from typing import Any

from ..errors import ConfigurationError
from ..primitives.example import Example

__all__ = ["Dataset"]


def _check_size(name: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ConfigurationError(f"{name} must be a non-negative int or None (= the whole split), got {value!r}")


class Dataset:
    """Base class for datasets with ``train``, ``dev`` and ``test`` splits.

    Args:
        train_seed: seed of the shuffle applied to the train split.
        train_size: how many train examples to keep (None keeps all).
        eval_seed: seed of the shuffles applied to the dev and test splits.
        dev_size: how many dev examples to keep (None keeps all).
        test_size: how many test examples to keep (None keeps all).
        input_keys: fields marked as inputs on every example (``Example.with_inputs``).
    """

    def __init__(
        self,
        train_seed: int = 0,
        train_size: int | None = None,
        eval_seed: int = 0,
        dev_size: int | None = None,
        test_size: int | None = None,
        input_keys: Iterable[str] | None = None,
    ) -> None:
        for name, value in (("train_size", train_size), ("dev_size", dev_size), ("test_size", test_size)):
            _check_size(name, value)
        if isinstance(input_keys, str):
            raise ConfigurationError(f"input_keys must be a list of field names, e.g. [{input_keys!r}], not a str")
        self.train_seed = train_seed
        self.train_size = train_size
        self.dev_seed = eval_seed
        self.dev_size = dev_size
        self.test_seed = eval_seed
        self.test_size = test_size
        self.input_keys: list[str] = list(input_keys or [])
        self.do_shuffle = True
        self.name = type(self).__name__
        self._train: Iterable[Any] | None = getattr(self, "_train", None)
        self._dev: Iterable[Any] | None = getattr(self, "_dev", None)
        self._test: Iterable[Any] | None = getattr(self, "_test", None)

    @property
    def eval_seed(self) -> int:
        return self.dev_seed

    def reset_seeds(
        self,
        train_seed: int | None = None,
        train_size: int | None = None,
        eval_seed: int | None = None,
        dev_size: int | None = None,
        test_size: int | None = None,
    ) -> None:
        """Change seeds and sizes (None keeps the current value) and forget the cached splits."""
        for name, value in (("train_size", train_size), ("dev_size", dev_size), ("test_size", test_size)):
            _check_size(name, value)
        if train_seed is not None:
            self.train_seed = train_seed
        if train_size is not None:
            self.train_size = train_size
        if eval_seed is not None:
            self.dev_seed = eval_seed
            self.test_seed = eval_seed
        if dev_size is not None:
            self.dev_size = dev_size
        if test_size is not None:
            self.test_size = test_size
        for cached in ("_train_", "_dev_", "_test_"):
            self.__dict__.pop(cached, None)

    # splits ---------------------------------------------------------------------------------------
    @property
    def train(self) -> list[Example]:
        if "_train_" not in self.__dict__:
            self._train_ = self._shuffle_and_sample("train", self._train, self.train_size, self.train_seed)
        return self._train_

    @property
    def dev(self) -> list[Example]:
        if "_dev_" not in self.__dict__:
            self._dev_ = self._shuffle_and_sample("dev", self._dev, self.dev_size, self.dev_seed)
        return self._dev_

    @property
    def test(self) -> list[Example]:
        if "_test_" not in self.__dict__:
            self._test_ = self._shuffle_and_sample("test", self._test, self.test_size, self.test_seed)
        return self._test_

    def _shuffle_and_sample(
        self, split: str, data: Iterable[Any] | None, size: int | None, seed: int = 0
    ) -> list[Example]:
        if data is None:
            raise ConfigurationError(
                f"{self.name} has no {split!r} split. Use one of the splits it provides, or set "
                f"self._{split} to a list of dicts in the subclass's __init__."
            )
        rows = list(data)
        if self.do_shuffle:
            random.Random(seed).shuffle(rows)  # shuffle whatever the size, so a smaller size is a prefix
        if size is not None:
            rows = rows[:size]
        out: list[Example] = []
        for row in rows:
            if isinstance(row, Example):
                fields: dict[str, Any] = dict(row.items(include_dspy=True))
            elif isinstance(row, Mapping):
                fields = dict(row)
            else:
                raise ConfigurationError(
                    f"{self.name}._{split} holds a {type(row).__name__}; each row must be a dict or an Example"
                )
            fields["dspy_uuid"] = str(uuid.uuid4())
            fields["dspy_split"] = split
            example = Example(fields)
            if self.input_keys:
                example = example.with_inputs(*self.input_keys)
            out.append(example)
        return out

    @classmethod
    def prepare_by_seed(
        cls,
        train_seeds: list[int] | None = None,
        train_size: int = 16,
        dev_size: int = 1000,
        divide_eval_per_seed: bool = True,
        eval_seed: int = 2023,
        **kwargs: Any,
    ) -> SimpleNamespace:
        """Build one train set per seed and matching evaluation sets, for runs repeated over seeds.

        Returns an object with ``train_sets`` and ``eval_sets`` (lists of the same length as
        ``train_seeds``). With ``divide_eval_per_seed`` the dev split is cut into disjoint slices.
        """
        seeds = list(train_seeds or [1, 2, 3, 4, 5])
        if not seeds:
            raise ConfigurationError("train_seeds must hold at least one seed")
        dataset = cls(train_size=train_size, eval_seed=eval_seed, dev_size=dev_size, test_size=0, **kwargs)
        eval_pool = dataset.dev
        per_seed = dev_size // len(seeds) if divide_eval_per_seed else dev_size
        train_sets: list[list[Example]] = []
        eval_sets: list[list[Example]] = []
        offset = 0
        for seed in seeds:
            dataset.reset_seeds(train_seed=seed, train_size=train_size, eval_seed=eval_seed, dev_size=dev_size)
            eval_slice = eval_pool[offset : offset + per_seed]
            train_set = dataset.train
            if len(eval_slice) != per_seed or len(train_set) != train_size:
                raise ConfigurationError(
                    f"{cls.__name__} is too small for prepare_by_seed: asked for {train_size} train and "
                    f"{per_seed} eval examples per seed, got {len(train_set)} and {len(eval_slice)}. "
                    "Lower train_size/dev_size or use fewer seeds."
                )
            train_sets.append(train_set)
            eval_sets.append(eval_slice)
            if divide_eval_per_seed:
                offset += per_seed
        return SimpleNamespace(train_sets=train_sets, eval_sets=eval_sets)

    def __repr__(self) -> str:
        return (
            f"{self.name}(train_seed={self.train_seed}, train_size={self.train_size}, eval_seed={self.dev_seed}, "
            f"dev_size={self.dev_size}, test_size={self.test_size})"
        )
