"""Datasets: DSPy's ``DataLoader`` and ready-made tasks (HotPotQA, GSM8K, MATH) plus small bundled tasks.

Nothing here imports ``datasets`` or ``pandas`` until data is actually loaded.
"""

from .bundled import BundledTask, bundled_names, label_match, load_bundled, register_bundled
from .dataloader import DATA_DIR_ENV, DataLoader, DatasetLoadError, load_hf_splits
from .dataset import Dataset
from .gsm8k import GSM8K, gsm8k_metric, parse_integer_answer
from .hotpotqa import HotPotQA
from .math import MATH, extract_answer, math_equivalence
from .tabular import count_match  # registers the wine, breast_cancer and counting tasks

__all__ = [
    "DATA_DIR_ENV",
    "MATH",
    "GSM8K",
    "BundledTask",
    "DataLoader",
    "Dataset",
    "DatasetLoadError",
    "HotPotQA",
    "bundled_names",
    "count_match",
    "extract_answer",
    "gsm8k_metric",
    "label_match",
    "load_bundled",
    "load_hf_splits",
    "math_equivalence",
    "parse_integer_answer",
    "register_bundled",
]
