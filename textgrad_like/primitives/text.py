"""Text normalisation shared by the answer metrics and by voting (``majority``)."""

from __future__ import annotations

import re
import string
import unicodedata

__all__ = ["normalize_text"]


def normalize_text(text: str) -> str:
    """Lower-case, strip accents, punctuation and articles, squeeze spaces."""
    text = unicodedata.normalize("NFD", str(text))
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn").lower()
    text = "".join(" " if ch in string.punctuation else ch for ch in text)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())
