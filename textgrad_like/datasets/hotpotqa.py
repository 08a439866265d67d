"""HotPotQA (multi-hop question answering), split the way DSPy splits it.

Train and dev come from the official *train* split (hard questions, shuffled with seed 0, 75% /
25%); test is the official *validation* split. Rows come from the hub dataset
``hotpotqa/hotpot_qa`` (config ``fullwiki``) unless local data is given (``path=``,
``data_files=`` or ``$TEXTGRAD_LIKE_DATA_DIR/hotpotqa``).
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigurationError
from .dataloader import load_hf_splits
from .dataset import Dataset

__all__ = ["HotPotQA"]

HUB_ID = "hotpotqa/hotpot_qa"
HUB_CONFIG = "fullwiki"
LOCAL_NAME = "hotpotqa"


def _gold_titles(row: Mapping[str, Any]) -> set[str]:
    facts = row.get("supporting_facts") or {}
    if isinstance(facts, Mapping):
        return set(facts.get("title", []))
    return {fact[0] for fact in facts}  # the original JSON stores [[title, sentence_id], ...]


class HotPotQA(Dataset):
    """HotPotQA with DSPy's splits and fields.

    Args:
        only_hard_examples: keep only ``level == "hard"`` questions for train/dev (DSPy's choice).
            False keeps every level in train/dev; test is the official validation split either way.
        keep_details: which fields to keep for train/dev rows: ``"dev_titles"`` (question, answer,
            and ``gold_titles`` on dev only), ``True`` (also id, type, context and ``gold_titles``),
            or anything else for question and answer only. Test rows always have id, question,
            answer, type and ``gold_titles``.
        unofficial_dev: build dev from the last 25% of the hard train questions; False leaves no dev.
        path: a local folder (``save_to_disk`` output, or ``train``/``validation`` data files,
            optionally under a ``fullwiki/`` sub-folder) or another hub id.
        data_files: local files, e.g. ``{"train": "train.jsonl", "validation": "dev.jsonl"}``.
        **kwargs: seeds and sizes of :class:`Dataset` (train_seed, train_size, eval_seed, ...).
    """

    def __init__(
        self,
        *args: Any,
        only_hard_examples: bool = True,
        keep_details: bool | str = "dev_titles",
        unofficial_dev: bool = True,
        path: str | os.PathLike[str] | None = None,
        data_files: Any = None,
        load_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("input_keys", ["question"])
        super().__init__(*args, **kwargs)
        splits = load_hf_splits(HUB_ID, HUB_CONFIG, path=path, data_files=data_files, local_name=LOCAL_NAME,
                                **dict(load_kwargs or {}))
        for needed in ("train", "validation"):
            if needed not in splits:
                raise ConfigurationError(
                    f"HotPotQA data needs a {needed!r} split; found {sorted(splits)}. Name local files "
                    "train.* and validation.* or pass data_files={'train': ..., 'validation': ...}"
                )

        if keep_details is True:
            keys = ["id", "question", "answer", "type", "supporting_facts", "context"]
        elif keep_details == "dev_titles":
            keys = ["question", "answer", "supporting_facts"]
        else:
            keys = ["question", "answer"]

        pool: list[dict[str, Any]] = []
        for row in splits["train"]:
            if only_hard_examples and row.get("level") != "hard":
                continue
            example = {k: row[k] for k in keys}
            if "supporting_facts" in example:
                example["gold_titles"] = _gold_titles(row)
                del example["supporting_facts"]
            pool.append(example)
        random.Random(0).shuffle(pool)
        cut = len(pool) * 75 // 100
        train, dev = pool[:cut], pool[cut:]
        if keep_details == "dev_titles":
            for example in train:
                example.pop("gold_titles", None)

        test = []
        for row in splits["validation"]:
            example = {k: row[k] for k in ("id", "question", "answer", "type")}
            example["gold_titles"] = _gold_titles(row)
            test.append(example)

        self._train = train
        self._dev = dev if unofficial_dev else None
        self._test = test
