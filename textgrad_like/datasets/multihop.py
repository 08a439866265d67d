"""A small offline multi-hop QA task over a bundled corpus of encyclopedia-style abstracts.

* ``data/wiki_abstracts.jsonl``: about 180 short abstracts (``pid``, ``title``, ``text``), written for
  this package; served as ``"Title | text"`` passages like the ColBERTv2 ``wiki17_abstracts`` index.
* ``data/multihop_qa.jsonl``: two-hop questions with short answers, each answerable from the two
  abstracts named in ``supporting_titles`` (e.g. "How many storeys does the castle that David
  Gregory inherited have?" needs *David Gregory (physician)* and *Kinnairdy Castle*).

``load_multihop()`` returns a :class:`~textgrad_like.datasets.bundled.BundledTask` whose ``train``,
``dev`` and ``test`` lists hold ``Example(question=..., answer=..., supporting_titles=[...])`` with
``question`` as the input. ``load_bundled("multihop")`` gives the same task.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from ..primitives.example import Example
from .bundled import DATA_DIR, BundledTask, bundled_names, register_bundled

__all__ = [
    "MULTIHOP_QA_PATH",
    "WIKI_ABSTRACTS_PATH",
    "answer_exact_match",
    "load_multihop",
    "load_wiki_abstracts",
    "normalize_answer",
]

WIKI_ABSTRACTS_PATH = DATA_DIR / "wiki_abstracts.jsonl"
MULTIHOP_QA_PATH = DATA_DIR / "multihop_qa.jsonl"
SPLITS = ("train", "dev", "test")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ConfigurationError(f"{path} is missing; reinstall textgrad_like (the file ships with the package)")
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_wiki_abstracts() -> list[dict[str, Any]]:
    """The bundled abstracts as dicts with ``pid``, ``title``, ``text``; any local retriever takes this list."""
    return _read_jsonl(WIKI_ABSTRACTS_PATH)


def normalize_answer(text: str) -> str:
    """Lower-case, strip accents, punctuation, articles and extra spaces (SQuAD-style)."""
    text = unicodedata.normalize("NFKD", str(text).lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = "".join(ch for ch in text if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def answer_exact_match(example: Any, pred: Any, trace: Any = None) -> bool:
    """True when the predicted ``answer`` equals the gold one after :func:`normalize_answer`."""
    gold = example["answer"] if isinstance(example, dict) else example.answer
    guess = pred["answer"] if isinstance(pred, dict) else getattr(pred, "answer", "")
    return normalize_answer(guess) == normalize_answer(gold)


def load_multihop() -> BundledTask:
    """Load the bundled two-hop QA task (train/dev/test Examples with ``question`` as input)."""
    splits: dict[str, list[Example]] = {name: [] for name in SPLITS}
    for row in _read_jsonl(MULTIHOP_QA_PATH):
        split = row.get("split", "train")
        if split not in splits:
            raise ConfigurationError(f"{MULTIHOP_QA_PATH}: row {row.get('id')} has unknown split {split!r}")
        example = Example(
            id=row["id"],
            question=row["question"],
            answer=row["answer"],
            supporting_titles=list(row["supporting_titles"]),
        ).with_inputs("question")
        splits[split].append(example)
    return BundledTask(
        name="multihop",
        train=splits["train"],
        dev=splits["dev"],
        test=splits["test"],
        input_keys=("question",),
        metric=answer_exact_match,
        description="Answer a two-hop question in a few words; retrieve from the bundled wiki abstracts.",
        extra={"corpus_path": str(WIKI_ABSTRACTS_PATH)},
    )


if "multihop" not in bundled_names():
    register_bundled("multihop", load_multihop)
