"""GSM8K grade-school math word problems, split the way DSPy splits them, and their metric.

Rows come from the hub dataset ``openai/gsm8k`` (config ``main``) unless local data is given
(``path=``, ``data_files=`` or ``$TEXTGRAD_LIKE_DATA_DIR/gsm8k``). Each example has ``question``
(the input), ``gold_reasoning`` (the worked solution) and ``answer`` (the final integer, as a str).
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ConfigurationError
from ..primitives.example import Example
from .dataloader import load_hf_splits

__all__ = ["GSM8K", "gsm8k_metric", "parse_integer_answer", "split_gsm8k_answer"]

HUB_ID = "openai/gsm8k"
HUB_CONFIG = "main"
LOCAL_NAME = "gsm8k"


def split_gsm8k_answer(answer: str) -> tuple[str, str]:
    """Split a GSM8K ``answer`` field ("...worked steps... #### 1,234") into (reasoning, "1234")."""
    words = answer.strip().split()
    if len(words) < 2 or words[-2] != "####":
        raise ConfigurationError(
            f"Not a GSM8K answer (it must end with '#### <number>'): {answer[-80:]!r}. Check the data files."
        )
    try:
        final = str(int(words[-1].replace(",", "")))
    except ValueError:
        raise ConfigurationError(f"GSM8K final answer {words[-1]!r} is not an integer") from None
    return " ".join(words[:-2]), final


def _prepare(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    out = []
    for row in rows:
        reasoning, final = split_gsm8k_answer(row["answer"])
        out.append({"question": row["question"], "gold_reasoning": reasoning, "answer": final})
    return out


class GSM8K:
    """GSM8K with DSPy's splits: train = 200 and dev = 300 questions from the shuffled official train
    split, test = the whole shuffled official test split (shuffles use seed 0).

    Args:
        path: a local folder (``save_to_disk`` output, or ``train``/``test`` data files, optionally
            under a ``main/`` sub-folder) or another hub id.
        data_files: local files, e.g. ``{"train": "train.jsonl", "test": "test.jsonl"}``.
        train_size: how many train examples (200 as in DSPy).
        dev_size: how many dev examples, taken after the train ones (300 as in DSPy).
    """

    def __init__(
        self,
        *,
        path: str | os.PathLike[str] | None = None,
        data_files: Any = None,
        train_size: int = 200,
        dev_size: int = 300,
        load_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if train_size < 0 or dev_size < 0:
            raise ConfigurationError(f"train_size and dev_size must be >= 0, got {train_size} and {dev_size}")
        self.do_shuffle = False
        splits = load_hf_splits(HUB_ID, HUB_CONFIG, path=path, data_files=data_files, local_name=LOCAL_NAME,
                                **dict(load_kwargs or {}))
        for needed in ("train", "test"):
            if needed not in splits:
                raise ConfigurationError(
                    f"GSM8K data needs a {needed!r} split; found {sorted(splits)}. Name local files train.* "
                    "and test.* or pass data_files={'train': ..., 'test': ...}"
                )
        official_train = _prepare(splits["train"])
        official_test = _prepare(splits["test"])
        random.Random(0).shuffle(official_train)
        random.Random(0).shuffle(official_test)

        def wrap(rows: list[dict[str, str]]) -> list[Example]:
            return [Example(row).with_inputs("question") for row in rows]

        self.train = wrap(official_train[:train_size])
        self.dev = wrap(official_train[train_size : train_size + dev_size])
        self.test = wrap(official_test)


_NUMBER_TOKEN = re.compile(r"\d")


def parse_integer_answer(answer: Any, only_first_line: bool = True) -> int:
    """The integer in the last number-bearing word of ``answer`` (0 when there is none).

    Commas and currency signs are ignored and decimals are cut at the point ("$1,234.50" -> 1234).
    With ``only_first_line`` only the first line is read.
    """
    text = str(answer).strip()
    if only_first_line:
        text = text.split("\n", 1)[0]
    words = [w for w in text.split() if _NUMBER_TOKEN.search(w)]
    if not words:
        return 0
    word = words[-1].split(".")[0]
    digits = "".join(c for c in word if c.isdigit())
    if not digits:
        return 0
    value = int(digits)
    stripped = word.lstrip("$(*\"'")
    return -value if stripped.startswith("-") else value


def gsm8k_metric(gold: Any, pred: Any, trace: Any = None) -> bool:
    """True when the prediction's ``answer`` holds the same integer as the gold ``answer``."""
    return parse_integer_answer(str(gold.answer)) == parse_integer_answer(str(pred.answer))
