"""Optimize a piece of code against its unit tests, at test time.

The code is a free-text ``Variable``. ``FunctionLoss`` runs the unit tests on it in the sandboxed
``PythonInterpreter`` (Deno + Pyodide: nothing runs in this process) and turns the failures into
feedback; ``loss.backward()`` makes that feedback the code's gradient and ``TextualGradientDescent``
rewrites the code. The loop stops when every test passes::

    python examples/optimize_code.py                       # the bundled local model, 4 steps
    python examples/optimize_code.py --model openai/gpt-4o-mini --steps 6

The sandbox needs a one-time setup (``python -m textgrad_like.tools.python_interpreter --setup``).
Without it the example says so and falls back to a syntax-only check: the tests are NOT run then.
"""

from __future__ import annotations

import argparse
import ast
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from textgrad_like.autograd.text_loss import FunctionLoss
from textgrad_like.nn.parameter import Variable
from textgrad_like.optim.tgd import TextualGradientDescent

Runner = Callable[[str, Sequence[str]], tuple[float, str]]

BUGGY_CODE = '''def is_palindrome(text):
    return text == text[::-1]
'''
TESTS = [
    "assert is_palindrome('racecar')",
    "assert is_palindrome('Racecar'), 'case should be ignored'",
    "assert is_palindrome('A man, a plan, a canal: Panama'), 'spaces and punctuation should be ignored'",
    "assert not is_palindrome('hello')",
]

# Runs inside the sandbox: define the code in a fresh namespace, run each test, report failures.
_HARNESS = '''
_ns = {{}}
_failures = []
try:
    exec({code!r}, _ns)
except Exception as _e:
    _failures.append("the code does not run: " + type(_e).__name__ + ": " + str(_e))
else:
    for _t in {tests!r}:
        try:
            exec(_t, _ns)
        except Exception as _e:
            _failures.append(_t + "  ->  " + type(_e).__name__ + (": " + str(_e) if str(_e) else ""))
_failures
'''


def strip_fences(code: str) -> str:
    match = re.search(r"```(?:python|py)?\s*\n(.*?)```", code, re.S)
    return (match.group(1) if match else code).strip() + "\n"


def sandbox_runner(timeout: float = 10.0) -> Runner:
    """A runner that executes the code and tests in a sandboxed PythonInterpreter. Raises
    ``InterpreterError`` (or ``AttributeError`` when the module is missing) if it is unavailable."""
    from textgrad_like.tools import PythonInterpreter

    interpreter = PythonInterpreter(timeout=timeout)
    interpreter.execute("1 + 1")  # start it now, so a missing setup shows up here

    def run(code: str, tests: Sequence[str]) -> tuple[float, str]:
        from textgrad_like.errors import InterpreterError

        try:
            failures = interpreter.execute(_HARNESS.format(code=strip_fences(code), tests=list(tests)))
        except InterpreterError as exc:  # a timeout or crash of the sandbox
            return 0.0, f"Running the tests failed: {type(exc).__name__}: {exc}"
        failures = list(failures or [])
        if not failures:
            return 1.0, f"All {len(tests)} tests pass."
        score = (len(tests) - len(failures)) / len(tests)
        return score, "Failing tests:\n" + "\n".join(f"- {f}" for f in failures)

    return run


def syntax_runner(code: str, tests: Sequence[str]) -> tuple[float, str]:
    """Fallback without a sandbox: only checks that the code parses. The tests are NOT run."""
    try:
        ast.parse(strip_fences(code))
    except SyntaxError as exc:
        return 0.0, f"SyntaxError: {exc}"
    return 1.0, "The code parses (the unit tests could not be run: no sandbox)."


def default_runner() -> tuple[Runner, bool]:
    """The sandboxed runner, or the syntax-only fallback with a clear message."""
    try:
        return sandbox_runner(), True
    except Exception as exc:  # missing module, missing Deno/Pyodide, failed start
        print(f"The sandboxed PythonInterpreter is not available ({type(exc).__name__}: {exc}).\n"
              "Set it up with `python -m textgrad_like.tools.python_interpreter --setup`.\n"
              "Falling back to a syntax-only check: the unit tests are NOT run in this session.")
        return syntax_runner, False


def optimize(code: str = BUGGY_CODE, tests: Sequence[str] = tuple(TESTS), steps: int = 4, lm: Any = None,
             runner: Runner | None = None, verbose: bool = False) -> dict[str, Any]:
    """Rewrite ``code`` until ``tests`` pass or ``steps`` updates were made."""
    if lm is None:
        from textgrad_like.lm import LM

        lm = LM("local/embedded", temperature=0.0, max_tokens=256)
    if runner is None:
        runner, _ = default_runner()
    tests = list(tests)
    variable = Variable(code, role_description="Python code that must pass the unit tests:\n" + "\n".join(tests))
    loss_fn = FunctionLoss(lambda value: runner(value, tests), description="unit tests of the code")
    optimizer = TextualGradientDescent([variable], lm=lm, constraints=[
        "Reply with the complete Python code only: no explanation, no markdown fences.",
        "Keep the function's name and signature."])
    history: list[dict[str, Any]] = []
    updates = 0
    for step in range(steps + 1):
        loss = loss_fn(variable)
        history.append({"code": variable.value, "score": loss.score, "feedback": loss.feedback[0]})
        if verbose:
            print(f"[step {step}] score {loss.score:.2f}\n{variable.value}\n{loss.feedback[0]}\n")
        if loss.score >= 1.0 or step == steps:
            break
        optimizer.zero_grad()
        loss.backward(backward_lm=lm)
        optimizer.step()
        updates += 1
    final = history[-1]
    return {"code": final["code"], "passed": final["score"] >= 1.0, "score": final["score"], "steps": updates,
            "history": history, "lm_calls": lm.usage.calls + lm.usage.cache_hits if hasattr(lm, "usage") else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--model", default="local/embedded")
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from textgrad_like.lm import LM

    lm = LM(args.model, temperature=0.0, max_tokens=args.max_tokens)
    runner, sandboxed = default_runner()
    began = time.perf_counter()
    result = optimize(steps=args.steps, lm=lm, runner=runner, verbose=True)
    print(f"tests {'pass' if result['passed'] else 'still fail'} after {result['steps']} update(s); "
          f"scores {[round(h['score'], 2) for h in result['history']]}; LM calls {result['lm_calls']}; "
          f"{time.perf_counter() - began:.0f}s{'' if sandboxed else ' (syntax-only fallback: tests NOT run)'}")
    print("final code:\n" + result["code"])


if __name__ == "__main__":
    main()
