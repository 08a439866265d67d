r"""MATH competition problems (Hendrycks et al.), split the way DSPy splits them, and an answer check.

Rows come from the hub dataset ``DigitalLearningGmbH/MATH-lighteval`` (one config per subject,
e.g. ``"algebra"``) unless local data is given (``path=``, ``data_files=`` or
``$TEXTGRAD_LIKE_DATA_DIR/math``). Each example has ``question``, ``reasoning`` (the worked
solution) and ``answer`` (the content of the solution's last ``\boxed{...}``).

:func:`math_equivalence` decides whether two final answers are the same after normalizing LaTeX
spelling (``\dfrac`` vs ``\frac``, ``\left(``, units, ``x = 3`` vs ``3``, ``0.5`` vs ``\frac{1}{2}``).
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from ..errors import ConfigurationError
from ..primitives.example import Example
from .dataloader import load_hf_splits

__all__ = ["MATH", "extract_answer", "math_equivalence", "normalize_math_answer"]

HUB_ID = "DigitalLearningGmbH/MATH-lighteval"
LOCAL_NAME = "math"


def extract_answer(solution: str) -> str | None:
    r"""The text inside the last ``\boxed{...}`` (or ``\fbox{...}``) of ``solution``, or None."""
    start = max(solution.rfind("\\boxed{"), solution.rfind("\\fbox{"))
    if start == -1:
        match = re.search(r"\\boxed (\S+)", solution)  # "\boxed 5" form
        return match.group(1).rstrip("$.") if match else None
    i = solution.index("{", start) + 1
    depth = 1
    chars: list[str] = []
    while i < len(solution):
        ch = solution[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                break
        chars.append(ch)
        i += 1
    if depth != 0:
        return None
    answer = "".join(chars)
    answer = re.sub(r"\\text\{\s*[^}]*\}\s*$", "", answer) if re.search(r"\d", answer) else answer
    return answer.replace("\\!", "").strip()


# --- answer normalization -------------------------------------------------------------------------

_REMOVALS = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\$", "$", "\\%", "%", "^{\\circ}", "^\\circ",
             "\\displaystyle")


def _brace_fracs(s: str) -> str:
    r"""Give every ``\frac`` argument braces: ``\frac12`` -> ``\frac{1}{2}``, ``\frac1{x}`` -> ``\frac{1}{x}``."""
    out = []
    i = 0
    while i < len(s):
        if s.startswith("\\frac", i):
            out.append("\\frac")
            i += len("\\frac")
            for _ in range(2):
                if i < len(s) and s[i] == "{":
                    depth, j = 0, i
                    while j < len(s):
                        depth += s[j] == "{"
                        depth -= s[j] == "}"
                        j += 1
                        if depth == 0:
                            break
                    out.append(s[i:j])
                    i = j
                elif i < len(s):
                    out.append("{" + s[i] + "}")
                    i += 1
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def normalize_math_answer(answer: Any) -> str:
    """A canonical spelling of a final answer, used by :func:`math_equivalence`."""
    s = str(answer).strip().replace("\n", "")
    s = s.replace("\\\\", "\\").replace("dfrac", "frac").replace("tfrac", "frac")
    for token in _REMOVALS:
        s = s.replace(token, "")
    # units written as trailing text: "5 \text{ cm}" -> "5"
    if re.search(r"\d", s):
        s = re.sub(r"\\(?:text|mbox|mathrm)\{\s+[^}]*\}\s*$", "", s)
    s = re.sub(r"\\(?:text|mbox|mathrm|textbf)\{([^}]*)\}", r"\1", s)
    s = s.strip()
    # a short left-hand side: "x = 5" -> "5"
    parts = s.split("=")
    if len(parts) == 2 and len(parts[0].strip()) <= 2:
        s = parts[1]
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)
    s = s.replace(" ", "")
    s = _brace_fracs(s)
    s = re.sub(r"^(-?\d+)/(\d+)$", r"\\frac{\1}{\2}", s)
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    s = s.rstrip(".")
    if s.startswith("."):
        s = "0" + s
    s = s.replace("{.", "{0.")
    return s


def _as_number(s: str) -> Fraction | None:
    match = re.fullmatch(r"(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}", s)
    try:
        if match:
            value = Fraction(int(match.group(2)), int(match.group(3)))
            return -value if match.group(1) else value
        if re.fullmatch(r"-?\d+(\.\d+)?", s):
            return Fraction(s)
    except ZeroDivisionError:
        return None
    return None


def math_equivalence(reference: Any, prediction: Any) -> bool:
    """True when two MATH final answers mean the same thing (after :func:`normalize_math_answer`).

    Exact numbers are compared by value, so ``0.5``, ``1/2`` and ``\\dfrac{1}{2}`` are equal.
    Two None answers are equal; None and an answer are not.
    """
    if reference is None or prediction is None:
        return reference is None and prediction is None
    a, b = normalize_math_answer(reference), normalize_math_answer(prediction)
    if a == b:
        return True
    x, y = _as_number(a), _as_number(b)
    return x is not None and y is not None and x == y


class MATH:
    """One MATH subject, split like DSPy: MATH's own *test* split is shuffled (seed 0) and cut into
    train, dev and test of ``min(350, n // 3)``, ``min(350, n // 3)`` and the rest.

    Args:
        subset: the subject config, e.g. "algebra", "geometry", "number_theory", "prealgebra".
        path: a local folder (``save_to_disk`` output, or data files with a ``test`` split,
            optionally under a sub-folder named like ``subset``) or another hub id.
        data_files: local files, e.g. ``{"test": "algebra_test.jsonl"}``.
    """

    def __init__(
        self,
        subset: str,
        *,
        path: str | os.PathLike[str] | None = None,
        data_files: Any = None,
        load_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(subset, str) or not subset:
            raise ConfigurationError(f"MATH(subset) needs a subject name such as 'algebra', got {subset!r}")
        self.subset = subset
        splits = load_hf_splits(HUB_ID, subset, path=path, data_files=data_files, local_name=LOCAL_NAME,
                                **dict(load_kwargs or {}))
        if "test" not in splits:
            raise ConfigurationError(
                f"MATH data needs a 'test' split; found {sorted(splits)}. Name the local file test.* or pass "
                "data_files={'test': ...}"
            )
        rows = [
            Example(question=row["problem"], reasoning=row["solution"],
                    answer=extract_answer(row["solution"])).with_inputs("question")
            for row in splits["test"]
        ]
        size = min(350, len(rows) // 3)
        random.Random(0).shuffle(rows)
        self.train, self.dev, self.test = rows[:size], rows[size : 2 * size], rows[2 * size :]

    def metric(self, example: Any, pred: Any, trace: Any = None) -> bool:
        """True when ``pred.answer`` is equivalent to ``example.answer`` (see :func:`math_equivalence`)."""
        return math_equivalence(example.answer, pred.answer)
