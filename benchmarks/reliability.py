"""Reliability figures: fault injection, kill -9 and resume, fuzzing, thread isolation.

Run from the repository root: ``python benchmarks/reliability.py`` (about a minute on 2 cores).
Prints four lines:

    faults:  injected N / survived M runs (K typed failures reported, 0 bare exceptions)
    resume:  R resumes / 0 repeated calls (...)
    fuzz:    F cases / 0 untyped errors
    threads: 32 threads / 0 cross-talk
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TEXTGRAD_LIKE_DISK_CACHE", "0")
os.environ.setdefault("TQDM_DISABLE", "1")


def faults() -> str:
    import textgrad_like as dspy
    from tests.test_faults import OPTIMIZERS, TaskLM, data, exact
    from textgrad_like.errors import TextgradLikeError
    from textgrad_like.utils.faults import FaultyLM

    injected = survived = runs = typed = bare = 0
    names = ["Evaluate", *sorted(OPTIMIZERS)]
    for name in names:
        for seed in (0, 1):
            lm = FaultyLM(TaskLM(), failure_rate=0.2, seed=seed)
            runs += 1
            try:
                with dspy.context(lm=lm, num_threads=2):
                    if name == "Evaluate":
                        result = dspy.Evaluate(devset=data(0, 40), metric=exact, num_threads=2, max_errors=100)(
                            dspy.ChainOfThought("question -> answer"))
                        typed += result.failures
                    else:
                        OPTIMIZERS[name](1000)
                survived += 1
            except TextgradLikeError:
                typed += 1
            except Exception as exc:  # a bare exception is what this benchmark looks for
                bare += 1
                print(f"  {name} (seed {seed}): bare {type(exc).__name__}: {exc}")
            except BaseException as exc:  # pytest.skip of an optimizer that is not there
                print(f"  {name}: skipped ({exc})")
                runs -= 1
            injected += lm.failures
    return (f"faults:  injected {injected} / survived {survived} of {runs} runs "
            f"(Evaluate: {typed} failed examples reported with tracebacks; {bare} bare exceptions)")


def resume() -> str:
    from tests.test_resume import kill_resume_loop

    kills = repeated = paid = 0
    equal = True
    for name, seed in (("MIPROv2", 0), ("BootstrapRS", 1), ("GEPA", 2)):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                figures = kill_resume_loop(name, Path(tmp), kills=3, seed=seed)
            except Exception as exc:
                print(f"  {name}: {type(exc).__name__}: {exc}")
                equal = False
                continue
        kills += figures["kills"]
        repeated += figures["repeated_calls"]
        paid += figures["paid_calls"]
        equal = equal and figures["same_result"] and figures["same_prompts"]
    return (f"resume:  {kills} resumes / {repeated} repeated calls ({paid} paid calls, "
            f"results {'equal' if equal else 'DIFFERENT'} to uninterrupted runs)")


def fuzz() -> str:
    import pytest

    counter = _CaseCounter()
    code = pytest.main(["-q", "-p", "no:cacheprovider", "--no-header", "-o", "console_output_style=classic",
                        str(ROOT / "tests" / "test_fuzz.py")], plugins=[counter])
    return f"fuzz:    {counter.cases} cases / {counter.untyped} untyped errors (pytest exit {int(code)})"


class _CaseCounter:
    """Counts hypothesis test cases (and failures) while pytest runs the fuzz tests."""

    def __init__(self) -> None:
        self.cases = 0
        self.untyped = 0

    def pytest_runtest_call(self, item: Any) -> None:
        inner = getattr(item.obj, "hypothesis", None)
        if inner is not None:
            original = inner.inner_test

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.cases += 1
                return original(*args, **kwargs)

            inner.inner_test = counted
        else:
            self.cases += 1

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == "call" and report.failed:
            self.untyped += 1


def threads() -> str:
    from tests.test_thread_isolation import N_THREADS, worker

    barrier = threading.Barrier(N_THREADS)
    out: dict[int, Any] = {}
    pool = [threading.Thread(target=worker, args=(i, barrier, out)) for i in range(N_THREADS)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=300)
    cross = errors = 0
    for index, report in out.items():
        tag, lm = report["tag"], report["lm"]
        errors += "error" in report
        cross += len(lm.foreign)
        cross += sum(1 for a in report.get("eval_outputs", []) if not (a.startswith(f"{tag}-") or a == "wrong"))
        cross += sum(1 for d in report.get("demos", []) if not d["question"].startswith(f"{tag}-"))
        cross += sum(1 for e in lm.history
                     if f"{tag}-" not in json.dumps(e["messages"]) or
                     any(f"t{j}-" in json.dumps(e["messages"]) for j in range(N_THREADS) if j != index))
        cross += int(report.get("tracker", {}).get("dummy", {}).get("calls") != lm.usage.calls)
    return f"threads: {len(out)} threads / {cross} cross-talk ({errors} thread errors)"


def main() -> None:
    import logging

    logging.disable(logging.CRITICAL)  # the fault runs log every injected failure; keep the figures readable
    lines = []
    for part in (faults, resume, threads, fuzz):
        start = time.time()
        line = part()
        lines.append(f"{line}  [{time.time() - start:.1f}s]")
        print(lines[-1], flush=True)
    print("\n".join(["", "summary:", *lines]))


if __name__ == "__main__":
    main()
