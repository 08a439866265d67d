"""Tabular-as-text and counting tasks, shipped offline for the learning benchmark.

* ``"wine"``: scikit-learn's wine table (178 wines, 13 chemical measurements, 3 cultivars).
* ``"breast_cancer"``: scikit-learn's Wisconsin breast-cancer table (569 tumours; the 10 "mean"
  measurements; ``malignant`` or ``benign``).
* ``"counting"``: a generated task: how many times a word occurs in a short list of words.

Each row's measurements are written as one line of text (``alcohol: 13.2; malic acid: 1.78; ...``),
the input field ``features``; the output is ``label``. The rows are written once from
scikit-learn's bundled tables (``python -m textgrad_like.datasets.tabular``; scikit-learn is only
needed for that) and shipped as JSON Lines under ``datasets/data/``: loading needs neither
scikit-learn nor the network. Splits are stratified and seeded: ``train`` is small on purpose
(the few labelled examples a user has), ``test`` is the held-out split no optimizer may select on.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .bundled import DATA_DIR, BundledTask, _task_from_rows, label_match, register_bundled, write_bundled_files

logger = logging.getLogger(__name__)

WINE_LABELS = ["cultivar_1", "cultivar_2", "cultivar_3"]
BREAST_CANCER_LABELS = ["malignant", "benign"]
# train / dev / test sizes: a small labelled trainset, a validation split, a held-out test split of 90.
SPLIT_SIZES = {"wine": (40, 48, 90), "breast_cancer": (40, 60, 90)}


def _number(value: float) -> str:
    """Three significant digits, whole numbers from 100 up (``1035``, ``13.2``, ``0.0406``)."""
    return str(round(value)) if abs(value) >= 100 else f"{value:.3g}"


def _stratified_splits(labels: list[str], sizes: tuple[int, int, int], seed: int) -> list[str | None]:
    """A split name per row (None for rows left out), each split keeping the label shares of the table."""
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    for rows in by_label.values():
        rng.shuffle(rows)
    total = len(labels)
    out: list[str | None] = [None] * total
    taken = dict.fromkeys(by_label, 0)
    for split, size in zip(("train", "dev", "test"), sizes, strict=True):
        for label, rows in by_label.items():
            share = round(size * len(rows) / total)
            for i in rows[taken[label]:taken[label] + share]:
                out[i] = split
            taken[label] += share
    return out


def _table_rows(name: str, seed: int = 0) -> list[dict[str, str]]:
    from sklearn import datasets as skdatasets  # dev-time only: the rows are shipped as JSON Lines

    if name == "wine":
        table = skdatasets.load_wine()
        columns = list(range(len(table.feature_names)))
        names = [n.replace("_", " ").replace("od280/od315 of diluted wines", "od280/od315") for n in table.feature_names]
        label_names = WINE_LABELS
    else:
        table = skdatasets.load_breast_cancer()
        columns = [i for i, n in enumerate(table.feature_names) if n.startswith("mean ")]
        names = [n.removeprefix("mean ") for n in table.feature_names]
        label_names = BREAST_CANCER_LABELS
    labels = [label_names[int(t)] for t in table.target]
    splits = _stratified_splits(labels, SPLIT_SIZES[name], seed)
    rows = []
    for i, split in enumerate(splits):
        if split is None:
            continue
        text = "; ".join(f"{names[c]}: {_number(float(table.data[i][c]))}" for c in columns)
        rows.append({"features": text, "label": labels[i], "split": split})
    random.Random(seed).shuffle(rows)
    return rows


_WORDS = ["apple", "pear", "plum", "fig", "kiwi", "lime", "date", "grape"]


def counting_rows(n: int = 180, seed: int = 0) -> list[dict[str, str]]:
    """``n`` distinct lists of 6–10 words; ``count`` is how often ``word`` occurs (0–5). Splits 60/30/90."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    while len(rows) < n:
        word = rng.choice(_WORDS)
        count = rng.randint(0, 5)
        others = [w for w in _WORDS if w != word]
        items = [word] * count + [rng.choice(others) for _ in range(rng.randint(max(1, 6 - count), 10 - count))]
        rng.shuffle(items)
        key = (word, " ".join(items))
        if key in seen:
            continue
        seen.add(key)
        rows.append({"words": ", ".join(items), "word": word, "count": str(count)})
    for i, row in enumerate(rows):
        row["split"] = "train" if i < 60 else "dev" if i < 90 else "test"
    return rows


_GENERATORS: dict[str, Callable[[], list[dict[str, str]]]] = {
    "wine": lambda: _table_rows("wine"),
    "breast_cancer": lambda: _table_rows("breast_cancer"),
    "counting": counting_rows,
}


def write_tabular_files(folder: str | Path = DATA_DIR) -> list[Path]:
    """(Re)write the shipped JSON Lines files of these tasks (needs scikit-learn); returns the paths."""
    return write_bundled_files(folder, _GENERATORS)


def _rows(name: str) -> list[dict[str, Any]]:
    path = DATA_DIR / f"{name}.jsonl"
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def count_match(example: Any, pred: Any, trace: Any = None) -> bool:
    """True when the predicted ``count`` is the gold integer."""
    try:
        return int(str(getattr(pred, "count", "")).strip()) == int(example.count)
    except ValueError:
        return False


def _load_table(name: str, labels: list[str], description: str) -> Callable[[], BundledTask]:
    def load() -> BundledTask:
        return _task_from_rows(name, _rows(name), ("features",), labels=list(labels), metric=label_match,
                               description=description)
    return load


register_bundled("wine", _load_table(
    "wine", WINE_LABELS, "Name the cultivar of a wine from its 13 chemical measurements (field `label`)."),
    overwrite=True)
register_bundled("breast_cancer", _load_table(
    "breast_cancer", BREAST_CANCER_LABELS,
    "Say whether a breast tumour is malignant or benign from 10 cell-nucleus measurements (field `label`)."),
    overwrite=True)
register_bundled("counting", lambda: _task_from_rows(
    "counting", _rows("counting"), ("words", "word"), metric=count_match,
    description="Count how many times `word` occurs in the comma-separated `words` (field `count`, an integer)."),
    overwrite=True)


if __name__ == "__main__":  # python -m textgrad_like.datasets.tabular  regenerates the data files
    logging.basicConfig(level=logging.INFO)
    write_tabular_files()
