"""Benchmark: test-time refinement of answers to instructions with checkable constraints.

Each task is an instruction whose answer can be checked by code (word limits, required words,
format). The model writes a first answer; then, for N steps, ``FunctionLoss`` runs the checks and
reports the failed ones as feedback, ``loss.backward()`` makes that the answer's gradient and
``TextualGradientDescent`` rewrites the answer. The score is the fraction of checks passed; the
table shows it for the first answer and after the refinement steps, with the LM calls spent.

With ``--feedback judge`` the feedback comes from ``TextLoss`` (the model criticising the answer
itself) instead of the checks; the score is still the checks' (the judge never sees them).

    python benchmarks/instance_refinement.py                 # embedded model, 3 steps, ~5-10 min on 2 cores
    python benchmarks/instance_refinement.py --steps 5 --tasks 3 --json out.json
    python benchmarks/instance_refinement.py --model openai/gpt-4o-mini
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

from textgrad_like.autograd.text_loss import FunctionLoss, TextLoss
from textgrad_like.nn.functional import llm_call
from textgrad_like.nn.graph import no_grad
from textgrad_like.nn.parameter import Variable
from textgrad_like.optim.tgd import TextualGradientDescent
from textgrad_like.settings import settings

Check = tuple[str, Callable[[str], bool]]


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9'-]+", text)


TASKS: list[dict[str, Any]] = [
    {
        "name": "ocean_sentence",
        "instruction": "Write one sentence about the ocean that uses the word 'blue' and has at most 12 words.",
        "checks": [
            ("uses the word 'blue'", lambda t: "blue" in t.lower()),
            ("has at most 12 words", lambda t: 0 < len(_words(t)) <= 12),
            ("is one sentence ending with a period", lambda t: t.strip().endswith(".") and t.strip().count(".") == 1),
        ],
        "good_example": "The blue ocean stretches far beyond the horizon.",
    },
    {
        "name": "three_fruits",
        "instruction": "List exactly three fruits, in lowercase, separated by commas, and nothing else.",
        "checks": [
            ("has exactly three comma-separated items", lambda t: len([p for p in t.split(",") if p.strip()]) == 3),
            ("is all lowercase", lambda t: t == t.lower()),
            ("has one or two words per item (nothing else)",
             lambda t: all(1 <= len(p.split()) <= 2 for p in t.strip().rstrip(".").split(","))),
        ],
        "good_example": "apple, banana, cherry",
    },
    {
        "name": "sum_number",
        "instruction": "What is 12 + 30? Reply with just the number.",
        "checks": [
            ("contains the correct result 42", lambda t: re.search(r"\b42\b", t) is not None),
            ("is just the number, without other words", lambda t: re.fullmatch(r"\s*42\.?\s*", t) is not None),
        ],
        "good_example": "42",
    },
    {
        "name": "greeting_caps",
        "instruction": "Write a greeting of at most five words, entirely in capital letters, ending with '!'.",
        "checks": [
            ("is entirely in capital letters", lambda t: any(c.isalpha() for c in t) and t == t.upper()),
            ("has at most five words", lambda t: 0 < len(_words(t)) <= 5),
            ("ends with '!'", lambda t: t.strip().endswith("!")),
        ],
        "good_example": "HELLO AND WELCOME!",
    },
]


def check_answer(task: dict[str, Any], text: str) -> tuple[float, str]:
    """Fraction of the task's checks passed, and feedback naming the failed ones."""
    checks: list[Check] = task["checks"]
    failed = [desc for desc, fn in checks if not fn(text)]
    score = (len(checks) - len(failed)) / len(checks)
    if not failed:
        return score, "The answer meets every requirement."
    return score, ("The answer does not meet these requirements of the instruction "
                   f"'{task['instruction']}':\n" + "\n".join(f"- it must be/have: {d}" for d in failed))


def _calls(lm: Any) -> int:
    usage = getattr(lm, "usage", None)
    if usage is not None:
        return int(usage.calls + usage.cache_hits)
    return int(getattr(lm, "calls", 0))


def run_task(task: dict[str, Any], steps: int, lm: Any, first_answer: str | None = None,
             feedback: str = "checks", adapter: Any = None, answer_tokens: int = 64) -> dict[str, Any]:
    """Refine one task's answer for ``steps`` steps (stops early at a perfect score). ``adapter``
    (e.g. ``JSONAdapter(use_response_format=True)``) is used for the optimizer's rewrite calls."""
    began, calls0 = time.perf_counter(), _calls(lm)
    if first_answer is None:
        with no_grad():
            first_answer = llm_call(task["instruction"], system_prompt="Follow the user's instruction exactly.",
                                    lm=lm, max_tokens=answer_tokens).value
    answer = Variable(first_answer, role_description=f"answer to the instruction: {task['instruction']}")
    if feedback == "checks":
        loss_fn: Any = FunctionLoss(lambda text: check_answer(task, text), description="requirement checks")
    else:
        loss_fn = TextLoss(f"Criticise this answer to the instruction '{task['instruction']}'. "
                           "Say briefly which requirements it breaks.", lm=lm)
    optimizer = TextualGradientDescent([answer], lm=lm, constraints=["Reply with the new answer only."])
    scores = [check_answer(task, answer.value)[0]]
    failed_steps = 0
    for _ in range(steps):
        if scores[-1] >= 1.0:
            break
        optimizer.zero_grad()
        loss_fn(answer).backward(backward_lm=lm)
        if adapter is not None:
            with settings.context(adapter=adapter):
                optimizer.step()
        else:
            optimizer.step()
        failed_steps += bool(optimizer.state.get(id(answer), {}).get("last_error"))
        scores.append(check_answer(task, answer.value)[0])
    return {"task": task["name"], "first_answer": first_answer, "final_answer": answer.value,
            "first_score": scores[0], "final_score": scores[-1], "best_score": max(scores), "scores": scores,
            "updates": len(scores) - 1, "unparsed_steps": failed_steps, "lm_calls": _calls(lm) - calls0,
            "seconds": round(time.perf_counter() - began, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="local/embedded")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=len(TASKS), help="run the first N tasks")
    parser.add_argument("--feedback", choices=["checks", "judge"], default="checks")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--adapter", choices=["json", "chat"], default="json",
                        help="format of the rewrite calls: json = schema-constrained JSON (always parses on "
                             "local models), chat = tagged blocks with JSON fallback")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    from textgrad_like.adapters import JSONAdapter
    from textgrad_like.lm import LM

    lm = LM(args.model, temperature=0.0, max_tokens=args.max_tokens, cache=False)
    adapter = JSONAdapter(use_response_format=True) if args.adapter == "json" else None
    began = time.perf_counter()
    rows = []
    for task in TASKS[: args.tasks]:
        row = run_task(task, args.steps, lm, feedback=args.feedback, adapter=adapter)
        rows.append(row)
        print(f"{row['task']:<16} first {row['first_score']:.2f} -> after {row['updates']} step(s) "
              f"{row['final_score']:.2f} (best {row['best_score']:.2f}; {row['unparsed_steps']} unparsed; "
              f"{row['lm_calls']} LM calls, "
              f"{row['seconds']:.0f}s)\n    first: {row['first_answer'][:90]!r}\n    final: {row['final_answer'][:90]!r}",
              flush=True)
    first = statistics.mean(r["first_score"] for r in rows)
    final = statistics.mean(r["final_score"] for r in rows)
    calls = sum(r["lm_calls"] for r in rows)
    print(f"\nmean score: first answer {first:.3f} -> after refinement {final:.3f}; {calls} LM calls; "
          f"model {args.model}, feedback from {args.feedback}, {args.adapter} rewrites, {args.steps} steps; "
          f"{time.perf_counter() - began:.0f}s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"model": args.model, "steps": args.steps, "feedback": args.feedback, "adapter": args.adapter,
                       "rows": rows,
                       "mean_first": first, "mean_final": final, "lm_calls": calls}, f, indent=2)


if __name__ == "__main__":
    main()
