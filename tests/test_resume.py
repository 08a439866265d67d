"""Crash and resume with real process deaths: an optimizer runs in a subprocess with a scripted LM
that appends one line per paid call (each real ``_generate``) to a file; the process is killed with
SIGKILL at a seeded random call, resumed from ``checkpoint_dir``/``log_dir``, killed again, ... and
finally left to finish. The result must equal an uninterrupted run's and no call may be paid twice.

The kill comes from inside the process (``os.kill(getpid(), SIGKILL)``) at the start of the chosen
call, so it lands at a known point (nothing paid for that call yet) and the test is deterministic;
SIGKILL runs no ``finally`` block and flushes nothing, as ``kill -9`` from outside would.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


# --- the child process ---------------------------------------------------------------------------------------------

def _paying_lm(calls_path: str, kill_at: int) -> Any:
    from tests.test_faults import TaskLM

    class PayingLM(TaskLM):
        """TaskLM that records each paid call and dies (SIGKILL) at the start of call ``kill_at``."""

        def __init__(self) -> None:
            super().__init__()
            self.paid = 0

        def _generate(self, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
            self.paid += 1
            if kill_at and self.paid == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            response = super()._generate(messages, **kwargs)
            line = json.dumps([messages, sorted(kwargs.items())], sort_keys=True, default=str)
            with open(calls_path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
            return response

    return PayingLM()


def _run_mipro(ckpt: str) -> Any:
    import textgrad_like as dspy
    from tests.test_faults import data, exact
    from textgrad_like.optim.mipro import MIPROv2

    opt = MIPROv2(metric=exact, auto=None, num_candidates=3, max_bootstrapped_demos=2, max_labeled_demos=2,
                  num_threads=1, seed=3)
    return opt.compile(dspy.Predict("question -> answer"), trainset=data(0, 8), valset=data(8, 16), num_trials=4,
                       minibatch=True, minibatch_size=4, minibatch_full_eval_steps=2, checkpoint_dir=ckpt)


def _run_bootstrap_rs(ckpt: str) -> Any:
    import textgrad_like as dspy
    from tests.test_faults import data, exact
    from textgrad_like.optim.random_search import BootstrapRS

    opt = BootstrapRS(metric=exact, max_bootstrapped_demos=2, max_labeled_demos=3, num_candidate_programs=3,
                      num_threads=1)
    return opt.compile(dspy.Predict("question -> answer"), trainset=data(0, 8), valset=data(8, 14),
                       checkpoint_dir=ckpt)


def _run_gepa(ckpt: str) -> Any:
    import textgrad_like as dspy
    from tests.test_faults import data, exact
    from textgrad_like.optim.gepa import GEPA

    opt = GEPA(exact, max_metric_calls=50, num_threads=1, reflection_minibatch_size=2, seed=0, log_dir=ckpt)
    return opt.compile(dspy.Predict("question -> answer"), trainset=data(0, 6), valset=data(6, 10))


RUNNERS = {"MIPROv2": _run_mipro, "BootstrapRS": _run_bootstrap_rs, "GEPA": _run_gepa}


def child_main(name: str, ckpt: str, calls_path: str, result_path: str, kill_at: int) -> None:
    import textgrad_like as dspy

    dspy.configure(lm=_paying_lm(calls_path, kill_at), num_threads=1)
    best = RUNNERS[name](ckpt)
    Path(result_path).write_text(json.dumps({"state_dict": best.state_dict(),
                                             "score": getattr(best, "score", None)}, sort_keys=True, default=str))


# --- the parent ------------------------------------------------------------------------------------------------------

def run_child(name: str, ckpt: Path, calls: Path, result: Path, kill_at: int = 0, timeout: float = 120) -> int:
    env = {**os.environ, "TEXTGRAD_LIKE_DISK_CACHE": "0", "PYTHONPATH": str(ROOT)}
    code = ("import sys; from tests.test_resume import child_main; "
            "child_main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))")
    proc = subprocess.run([sys.executable, "-c", code, name, str(ckpt), str(calls), str(result), str(kill_at)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.returncode


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def kill_resume_loop(name: str, workdir: Path, kills: int = 3, seed: int = 0) -> dict[str, Any]:
    """Reference run, then a run killed ``kills`` times at seeded random calls and resumed each time.
    Returns the figures: reference calls, calls paid in the killed run, repeats, kills done, equal result."""
    ref_calls, ref_result = workdir / "ref_calls.txt", workdir / "ref_result.json"
    assert run_child(name, workdir / "ref_ckpt", ref_calls, ref_result) == 0
    reference = lines(ref_calls)
    calls, result, ckpt = workdir / "calls.txt", workdir / "result.json", workdir / "ckpt"
    rng = random.Random(seed)
    done_kills = 0
    for _ in range(kills):
        remaining = len(reference) - len(lines(calls))
        if remaining < 2:
            break
        kill_at = rng.randint(1, remaining - 1)
        rc = run_child(name, ckpt, calls, result, kill_at=kill_at)
        assert rc == -signal.SIGKILL, f"the run was expected to die at paid call {kill_at} (rc {rc})"
        assert not result.exists()
        done_kills += 1
    assert run_child(name, ckpt, calls, result) == 0
    paid = lines(calls)
    return {
        "reference_calls": len(reference),
        "paid_calls": len(paid),
        "repeated_calls": len(paid) - len(set(paid)),
        "kills": done_kills,
        "same_prompts": set(paid) == set(reference),
        "same_result": json.loads(result.read_text()) == json.loads(ref_result.read_text()),
    }


def _available(name: str) -> None:
    module = {"MIPROv2": "textgrad_like.optim.mipro", "BootstrapRS": "textgrad_like.optim.random_search",
              "GEPA": "textgrad_like.optim.gepa"}[name]
    try:
        getattr(__import__(module, fromlist=["x"]), name)
    except (ImportError, AttributeError) as exc:
        pytest.skip(f"{name} is not available ({exc})")


@pytest.mark.parametrize(("name", "seed"), [("MIPROv2", 0), ("BootstrapRS", 1), ("GEPA", 2)])
def test_kill_9_and_resume_pays_each_call_once(tmp_path, name, seed):
    _available(name)
    figures = kill_resume_loop(name, tmp_path, kills=3, seed=seed)
    assert figures["kills"] >= 2, figures
    assert figures["repeated_calls"] == 0, figures
    assert figures["paid_calls"] == figures["reference_calls"], figures
    assert figures["same_prompts"], figures
    assert figures["same_result"], figures


def test_bootstrap_finetune_resume():
    import inspect

    try:
        from textgrad_like.optim.finetune import BootstrapFinetune
    except ImportError as exc:
        pytest.skip(f"BootstrapFinetune is not available ({exc})")
    params = inspect.signature(BootstrapFinetune.compile).parameters
    if "checkpoint_dir" not in params and "log_dir" not in params:
        pytest.skip("BootstrapFinetune.compile takes no checkpoint_dir/log_dir yet: nothing to resume from")
    pytest.skip("BootstrapFinetune trains LoRA weights on the local model (torch); not run in this CPU-only loop")
