"""Fault injection: with 20% of LM calls failing (provider errors, timeouts, malformed replies),
Evaluate and every optimizer finish, count and report the failures with tracebacks, respect
``max_errors`` and never let a non-textgrad_like exception escape."""

from __future__ import annotations

import hashlib
import importlib
import logging
import re
from typing import Any

import pytest

import textgrad_like as dspy
from textgrad_like.errors import EvaluationError, LMError, TextgradLikeError
from textgrad_like.utils.dummies import DummyLM
from textgrad_like.utils.faults import FaultyLM, InjectedFault, InjectedProviderError, InjectedTimeoutError

# --- a scripted LM that answers any signature --------------------------------------------------------------

_FIELD = re.compile(r"^\d+\. `(\w+)` \(([^)\n]*)\)", re.M)
_PROPOSALS = {"proposed_instruction", "new_instruction", "improved_value", "instruction"}


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def output_fields(system: str) -> list[tuple[str, str]]:
    """``[(name, type name)]`` of the output fields listed in an adapter's system message."""
    part = system.split("You must produce these output fields:\n", 1)
    if len(part) < 2:
        return [("answer", "str")]
    return _FIELD.findall(part[1].split("\n\n", 1)[0])


class TaskLM(DummyLM):
    """Deterministic answers for any signature. The task field ``answer`` is right (``a<n>`` for
    question ``q<n>``) when the instruction says "carefully" or n is not a multiple of 3; proposal
    fields ("proposed_instruction", "new_instruction", ...) say "carefully" for half of the hashes;
    other fields get a valid placeholder of their declared type."""

    def _next_answer(self, messages: list[dict[str, Any]]) -> dict[str, Any]:  # type: ignore[override]
        system, last = str(messages[0].get("content", "")), str(messages[-1].get("content", ""))
        out: dict[str, Any] = {}
        for name, type_text in output_fields(system):
            h = _h(last + name)
            if name == "answer":
                m = re.search(r"<question>\s*q(\d+)", last) or re.search(r'"question":\s*"q(\d+)', last)
                n = int(m.group(1)) if m else 0
                out[name] = f"a{n}" if ("carefully" in system or n % 3) else "wrong"
            elif name in _PROPOSALS:
                out[name] = f"Answer {'carefully' if int(h, 16) % 2 else 'quickly'} (variant {h})."
            elif type_text.startswith("Literal["):
                out[name] = re.findall(r"'([^']*)'", type_text)[0]
            elif type_text == "float":
                out[name] = 0.5
            elif type_text == "int":
                out[name] = 1
            elif type_text == "bool":
                out[name] = True
            elif type_text.startswith("dict"):
                out[name] = {}
            elif type_text.startswith("list"):
                out[name] = []
            else:
                out[name] = f"{name} {h}"
        return out


def data(lo: int, hi: int) -> list[dspy.Example]:
    return [dspy.Example(question=f"q{i}", answer=f"a{i}").with_inputs("question") for i in range(lo, hi)]


def exact(example: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> float:
    return float(example.answer == getattr(pred, "answer", None))


# --- FaultyLM itself ----------------------------------------------------------------------------------------

def test_faulty_lm_injects_about_the_rate_with_typed_errors():
    lm = FaultyLM(TaskLM(), failure_rate=0.2, seed=1)
    kinds: dict[str, int] = {"ok": 0, "error": 0, "timeout": 0, "malformed": 0}
    for i in range(400):
        before = lm.failures
        try:
            lm(messages=[{"role": "user", "content": f"message {i}"}])
        except InjectedTimeoutError as exc:
            assert isinstance(exc, LMError) and isinstance(exc, TimeoutError)
            kinds["timeout"] += 1
        except InjectedProviderError as exc:
            assert isinstance(exc, LMError)
            kinds["error"] += 1
        else:
            kinds["malformed" if lm.failures > before else "ok"] += 1
    assert lm.calls == 400
    assert 50 <= lm.failures <= 110  # about 20% of 400
    assert kinds["error"] == lm.injected["error"] and kinds["timeout"] == lm.injected["timeout"]
    assert kinds["malformed"] == lm.injected["malformed"]
    assert all(lm.injected[k] > 0 for k in ("error", "timeout", "malformed"))


def test_faulty_lm_is_deterministic_and_retries_can_succeed():
    def run() -> list[str]:
        lm = FaultyLM(TaskLM(), failure_rate=0.5, kinds=("error",), seed=7)
        out = []
        for i in range(30):
            for _attempt in range(20):
                try:
                    lm(messages=[{"role": "user", "content": f"m{i}"}])
                    out.append(f"{i}:ok")
                    break
                except InjectedFault:
                    out.append(f"{i}:fail")
        return out

    first = run()
    assert first == run()
    assert "fail" in " ".join(first) and all(f"{i}:ok" in first for i in range(30))


def test_faulty_lm_rejects_bad_arguments():
    with pytest.raises(dspy.errors.ConfigurationError):
        FaultyLM("not an lm")  # type: ignore[arg-type]
    with pytest.raises(dspy.errors.ConfigurationError):
        FaultyLM(TaskLM(), failure_rate=1.5)
    with pytest.raises(dspy.errors.ConfigurationError):
        FaultyLM(TaskLM(), kinds=("segfault",))


# --- Evaluate -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("adapter", [None, "json"])
def test_evaluate_survives_and_reports_failures(caplog, adapter):
    lm = FaultyLM(TaskLM(), failure_rate=0.2, seed=3)
    dspy.configure(lm=lm, adapter=dspy.JSONAdapter() if adapter else None)
    program = dspy.ChainOfThought("question -> answer")
    devset = data(0, 40)
    with caplog.at_level(logging.ERROR):
        result = dspy.Evaluate(devset=devset, metric=exact, num_threads=4, max_errors=100,
                               provide_traceback=True)(program)
    assert lm.failures > 0
    assert len(result.results) == len(devset)
    assert 0 < result.failures < len(devset)
    for err in result.errors:
        assert isinstance(err.exception, TextgradLikeError), err
        assert "Traceback" in err.traceback
    # every failure was logged with its traceback
    assert sum("Traceback" in r.getMessage() for r in caplog.records) == result.failures
    # failed rows score the failure score; the others are scored normally
    failed = {e.index for e in result.errors}
    assert all(score == 0.0 for i, (_, _, score) in enumerate(result.results) if i in failed)


def test_evaluate_respects_max_errors():
    lm = FaultyLM(TaskLM(), failure_rate=0.6, kinds=("error", "timeout"), seed=0)
    dspy.configure(lm=lm)
    with pytest.raises(EvaluationError, match="max_errors=2"):
        dspy.Evaluate(devset=data(0, 30), metric=exact, num_threads=1, max_errors=2)(dspy.Predict("question -> answer"))
    assert lm.failures == 3  # stopped at the third failure (num_threads=1: nothing in flight)


# --- optimizers ---------------------------------------------------------------------------------------------------

def _optional(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        pytest.skip(f"{module}.{name} is not available yet ({exc})")


def run_bootstrap_fewshot(max_errors: int | None) -> Any:
    cls = _optional("textgrad_like.optim.bootstrap", "BootstrapFewShot")
    opt = cls(metric=exact, max_bootstrapped_demos=8, max_labeled_demos=8, max_rounds=2, max_errors=max_errors)
    return opt, opt.compile(dspy.Predict("question -> answer"), trainset=data(0, 16), num_threads=2,
                            disable_progress=True)


def run_bootstrap_rs(max_errors: int | None) -> Any:
    cls = _optional("textgrad_like.optim.random_search", "BootstrapFewShotWithRandomSearch")
    opt = cls(metric=exact, max_bootstrapped_demos=2, max_labeled_demos=3, num_candidate_programs=2, num_threads=2,
              max_errors=max_errors)
    return opt, opt.compile(dspy.Predict("question -> answer"), trainset=data(0, 10), valset=data(10, 18))


def run_mipro(max_errors: int | None) -> Any:
    cls = _optional("textgrad_like.optim.mipro", "MIPROv2")
    opt = cls(metric=exact, auto=None, num_candidates=3, max_bootstrapped_demos=2, max_labeled_demos=2,
              num_threads=2, max_errors=max_errors, seed=1)
    return opt, opt.compile(dspy.Predict("question -> answer"), trainset=data(0, 10), valset=data(10, 20),
                            num_trials=4, minibatch=False)


def run_gepa(max_errors: int | None) -> Any:
    cls = _optional("textgrad_like.optim.gepa", "GEPA")
    opt = cls(exact, max_metric_calls=60, num_threads=2, reflection_minibatch_size=2, seed=0)
    return opt, opt.compile(dspy.Predict("question -> answer"), trainset=data(0, 8), valset=data(8, 14))


def run_simba(max_errors: int | None) -> Any:
    cls = _optional("textgrad_like.optim.simba", "SIMBA")
    opt = cls(metric=exact, bsize=4, num_candidates=2, max_steps=2, max_demos=2, num_threads=2)
    return opt, opt.compile(dspy.Predict("question -> answer"), trainset=data(0, 10), seed=0)


def run_copro(max_errors: int | None) -> Any:
    cls = _optional("textgrad_like.optim.copro", "COPRO")
    opt = cls(metric=exact, breadth=3, depth=2)
    eval_kwargs = {"num_threads": 2, "display_progress": False}
    if max_errors is not None:
        eval_kwargs["max_errors"] = max_errors
    return opt, opt.compile(dspy.Predict("question -> answer"), trainset=data(0, 10), eval_kwargs=eval_kwargs)


def run_tgd(max_errors: int | None) -> Any:
    from textgrad_like.autograd import MetricLoss
    from textgrad_like.optim import TGD

    program = dspy.Predict("question -> answer")
    opt = TGD(program.parameters())
    loss_fn = MetricLoss(exact)
    failures = 0
    for step in range(3):
        batch = data(step * 4, step * 4 + 4)
        preds, kept = [], []
        for ex in batch:
            try:
                preds.append(program(**ex.inputs()))
                kept.append(ex)
            except TextgradLikeError:
                failures += 1
        opt.zero_grad()
        if preds:
            loss = loss_fn(preds, kept)
            try:
                loss.backward()
            except TextgradLikeError:
                failures += 1
            opt.step()
    return opt, program


OPTIMIZERS = {
    "BootstrapFewShot": run_bootstrap_fewshot,
    "BootstrapRS": run_bootstrap_rs,
    "MIPROv2": run_mipro,
    "GEPA": run_gepa,
    "SIMBA": run_simba,
    "COPRO": run_copro,
    "TGD": run_tgd,
}


def run_with_faults(name: str, failure_rate: float = 0.2, max_errors: int | None = 1000, seed: int = 0,
                    threads: int = 2) -> tuple[FaultyLM, Any, Any]:
    lm = FaultyLM(TaskLM(), failure_rate=failure_rate, seed=seed)
    dspy.configure(lm=lm, num_threads=threads)
    opt, program = OPTIMIZERS[name](max_errors)
    return lm, opt, program


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_finishes_under_20_percent_faults(name, seed, caplog):
    with caplog.at_level(logging.WARNING):
        try:
            lm, opt, program = run_with_faults(name, seed=seed)
        except TextgradLikeError as exc:  # a typed stop is allowed only when max_errors says so
            pytest.fail(f"{name} stopped with {type(exc).__name__}: {exc}")
    assert lm.failures > 0, "no fault was injected: the test exercises nothing"
    assert isinstance(program, dspy.Module)
    assert program.named_predictors()
    # the failures were seen: logged (errors/warnings with the exception type) by the executor or optimizer
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "Injected" in logged or "injected" in logged or "failed" in logged


@pytest.mark.parametrize("name", ["BootstrapFewShot", "BootstrapRS", "MIPROv2", "COPRO"])
def test_optimizer_respects_max_errors(name):
    # a high failure rate and max_errors=0: the run must stop with a typed error, never a bare one
    with pytest.raises(TextgradLikeError) as info:
        run_with_faults(name, failure_rate=0.7, max_errors=0, threads=1)
    # EvaluationError, or (BootstrapFewShot, as in DSPy) the failure itself, noted with the limit it passed
    error = info.value
    assert isinstance(error, EvaluationError) or any("max_errors" in note for note in getattr(error, "__notes__", [])), \
        repr(error)
