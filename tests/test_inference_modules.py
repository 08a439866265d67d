"""BestOfN, Refine, Parallel, MultiChainComparison, majority, Retrieve and ProgramOfThought with scripted LMs."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from textgrad_like.errors import ConfigurationError, EvaluationError, InputError, InterpreterError
from textgrad_like.nn import Module, no_grad
from textgrad_like.predict import ChainOfThought, Predict
from textgrad_like.predict.aggregation import majority
from textgrad_like.predict.best_of_n import BestOfN
from textgrad_like.predict.multi_chain_comparison import MultiChainComparison
from textgrad_like.predict.parallel import Parallel
from textgrad_like.predict.program_of_thought import ProgramOfThought
from textgrad_like.predict.refine import Refine
from textgrad_like.predict.retrieve import Retrieve
from textgrad_like.primitives import Completions, Example, Prediction
from textgrad_like.settings import settings
from textgrad_like.utils.dummies import DummyLM


def one_word(args: dict[str, Any], pred: Prediction) -> float:
    return 1.0 if len(str(pred.answer).split()) == 1 else 0.0


# --- BestOfN -----------------------------------------------------------------------------------------
def test_best_of_n_stops_at_the_first_attempt_reaching_the_threshold() -> None:
    lm = DummyLM([{"reasoning": "r", "answer": "The city of Brussels"}, {"reasoning": "r", "answer": "Brussels"},
                  {"reasoning": "r", "answer": "never used"}])
    settings.configure(lm=lm)
    qa = ChainOfThought("question -> answer")
    best = BestOfN(module=qa, N=3, reward_fn=one_word, threshold=1.0)
    pred = best(question="Capital of Belgium?")
    assert pred.answer == "Brussels"
    assert lm.calls == 2
    kwargs = [entry["kwargs"] for entry in lm.history]
    assert [k["rollout_id"] for k in kwargs] == [0, 1]
    assert all(k["temperature"] == 1.0 for k in kwargs)
    assert "rollout_id" not in qa.predict.config  # the original module is untouched


def test_best_of_n_returns_the_highest_reward_when_none_reaches_the_threshold() -> None:
    lm = DummyLM([{"answer": "a b c"}, {"answer": "a"}, {"answer": "a b"}])
    settings.configure(lm=lm)

    def shortest(args: dict[str, Any], pred: Prediction) -> float:
        return -len(pred.answer.split())

    pred = BestOfN(Predict("question -> answer"), N=3, reward_fn=shortest, threshold=0.0)(question="?")
    assert pred.answer == "a"
    assert lm.calls == 3


def test_best_of_n_starts_from_an_existing_rollout_id() -> None:
    lm = DummyLM([{"answer": "x"}])
    settings.configure(lm=lm)
    qa = Predict("question -> answer", rollout_id=7)
    BestOfN(qa, N=2, reward_fn=lambda a, p: 1.0, threshold=1.0)(question="?")
    assert lm.history[0]["kwargs"]["rollout_id"] == 7


class Flaky(Module):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.predict = Predict("question -> answer")
        self.failures = failures
        self.calls = 0

    def forward(self, **kwargs: Any) -> Prediction:
        Flaky.counter += 1
        if Flaky.counter <= self.failures:
            raise RuntimeError(f"boom {Flaky.counter}")
        return self.predict(**kwargs)

    counter = 0


def test_best_of_n_tolerates_failures_up_to_fail_count() -> None:
    settings.configure(lm=DummyLM([{"answer": "ok"}]))
    Flaky.counter = 0
    pred = BestOfN(Flaky(failures=2), N=3, reward_fn=lambda a, p: 1.0, threshold=1.0)(question="?")
    assert pred.answer == "ok"

    Flaky.counter = 0
    with pytest.raises(RuntimeError, match="boom 2"):
        BestOfN(Flaky(failures=2), N=3, reward_fn=lambda a, p: 1.0, threshold=1.0, fail_count=1)(question="?")

    Flaky.counter = 0
    with pytest.raises(RuntimeError, match="boom 3"):
        BestOfN(Flaky(failures=5), N=3, reward_fn=lambda a, p: 1.0, threshold=1.0)(question="?")


def test_best_of_n_graph_holds_only_the_chosen_attempt_with_original_parameters() -> None:
    settings.configure(lm=DummyLM([{"answer": "too many words"}, {"answer": "one"}]))
    qa = Predict("question -> answer")
    best = BestOfN(qa, N=2, reward_fn=one_word, threshold=1.0)
    pred = best(question="?")
    assert pred.graph is not None and len(pred.graph) == 1
    node = pred.graph.nodes[0]
    assert node.outputs["answer"] == "one"
    assert qa.instruction in node.params and qa.demos in node.params
    assert node.module is qa  # re-pointed from the attempt's copy to the original predictor
    assert [name for name, _ in best.named_predictors()] == ["module"]


def test_best_of_n_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigurationError, match="N must be"):
        BestOfN(Predict("q -> a"), N=0, reward_fn=one_word, threshold=1.0)
    with pytest.raises(ConfigurationError, match="Module"):
        BestOfN(lambda **kw: None, N=1, reward_fn=one_word, threshold=1.0)  # type: ignore[arg-type]
    settings.configure(lm=DummyLM([{"a": "x"}]))
    with pytest.raises(ConfigurationError, match="reward_fn must return a number"):
        BestOfN(Predict("q -> a"), N=1, reward_fn=lambda a, p: "good", threshold=1.0, fail_count=0)(q="?")


# --- Refine -------------------------------------------------------------------------------------------
def test_refine_feeds_advice_into_the_next_attempt() -> None:
    lm = DummyLM([
        {"reasoning": "r", "answer": "It is Brussels"},
        {"discussion": "predict was wordy", "advice": {"predict": "Answer with exactly one word."}},
        {"reasoning": "r", "answer": "Brussels"},
    ])
    settings.configure(lm=lm)
    qa = ChainOfThought("question -> answer")
    refine = Refine(module=qa, N=3, reward_fn=one_word, threshold=1.0)
    pred = refine(question="Capital of Belgium?")

    assert pred.answer == "Brussels"
    assert lm.calls == 3
    feedback_prompt = lm.history[1]["messages"][-1]["content"]
    assert "It is Brussels" in feedback_prompt and "one_word" in feedback_prompt
    retry_prompt = lm.history[2]["messages"][-1]["content"]
    assert "<hint_>\nAnswer with exactly one word.\n</hint_>" in retry_prompt
    assert lm.history[0]["kwargs"]["rollout_id"] == 0 and lm.history[2]["kwargs"]["rollout_id"] == 1
    assert "rollout_id" not in lm.history[1]["kwargs"]  # the advice call is not a rollout
    assert "hint_" not in qa.predict.signature.input_fields  # the original is untouched
    assert [name for name, _ in refine.named_predictors()] == ["module.predict"]
    assert len(pred.graph) == 1 and qa.predict.instruction in pred.graph.nodes[0].params


def test_refine_returns_the_best_attempt_after_n_tries() -> None:
    lm = DummyLM([
        {"answer": "a b c"},
        {"discussion": "d", "advice": {"self": "shorter"}},
        {"answer": "a b"},
    ])
    settings.configure(lm=lm)

    def short(args: dict[str, Any], pred: Prediction) -> float:
        return 1.0 / len(pred.answer.split())

    pred = Refine(Predict("question -> answer"), N=2, reward_fn=short, threshold=1.0)(question="?")
    assert pred.answer == "a b"
    assert lm.calls == 3  # attempt, advice, attempt (no advice after the last attempt)


def test_refine_survives_an_unparseable_advice_reply() -> None:
    lm = DummyLM([{"answer": "a b"}, {"discussion": "d", "advice": "not a dict"},
                  {"discussion": "d", "advice": "still not"}, {"answer": "a"}])
    settings.configure(lm=lm)
    pred = Refine(Predict("question -> answer"), N=2, reward_fn=one_word, threshold=1.0)(question="?")
    assert pred.answer == "a"


# --- Parallel -----------------------------------------------------------------------------------------
def keyed_lm() -> DummyLM:
    return DummyLM({"alpha": {"answer": "A"}, "beta": {"answer": "B"}, "gamma": {"answer": "C"}})


def test_parallel_runs_pairs_of_every_example_kind_in_order() -> None:
    settings.configure(lm=keyed_lm())
    qa = Predict("question -> answer")
    pairs = [
        (qa, Example(question="alpha", answer="?").with_inputs("question")),
        (qa, {"question": "beta"}),
        (lambda question: Prediction(answer=question.upper()), ("gamma",)),
    ]
    results = Parallel(num_threads=3, disable_progress_bar=True)(pairs)
    assert [r.answer for r in results] == ["A", "B", "GAMMA"]
    assert all(r.graph is not None for r in results[:2])  # each call records its own graph


def test_parallel_returns_failed_examples_and_stops_past_max_errors() -> None:
    settings.configure(lm=keyed_lm())
    qa = Predict("question -> answer")
    bad = {"new_signature": "q -> a"}  # refused with an InputError (unknown inputs only warn, as in DSPy)
    parallel = Parallel(num_threads=2, max_errors=5, return_failed_examples=True, disable_progress_bar=True)
    results, failed, errors = parallel([(qa, {"question": "alpha"}), (qa, bad)])
    assert results[0].answer == "A" and results[1] is None
    assert failed == [bad]
    assert isinstance(errors[0], InputError)

    with pytest.raises(EvaluationError, match="max_errors=0"):
        Parallel(num_threads=1, max_errors=0, disable_progress_bar=True)([(qa, bad)])


def test_parallel_rejects_unknown_example_types() -> None:
    results, failed, errors = Parallel(max_errors=5, return_failed_examples=True, disable_progress_bar=True)(
        [(Predict("q -> a"), 42)])
    assert results == [None] and failed == [42]
    assert "Example, a dict" in str(errors[0])


# --- MultiChainComparison ----------------------------------------------------------------------------
def test_multi_chain_comparison_compares_m_completions() -> None:
    lm = DummyLM([{"rationale": "Both agree on 4.", "answer": "4"}])
    settings.configure(lm=lm)
    mcc = MultiChainComparison("question -> answer", M=3)
    completions = [
        {"reasoning": "2+2 makes 4\nmore text", "answer": "4"},
        Prediction(rationale="adding gives 5", answer="5"),
        {"reasoning": "two and two", "answer": "4"},
    ]
    pred = mcc(completions, question="2+2?")
    assert pred.answer == "4" and pred.rationale == "Both agree on 4."
    sig = mcc.predict.signature
    assert list(sig.input_fields) == ["question", "reasoning_attempt_1", "reasoning_attempt_2", "reasoning_attempt_3"]
    assert list(sig.output_fields) == ["rationale", "answer"]
    prompt = lm.history[0]["messages"][-1]["content"]
    assert "2+2 makes 4" in prompt and "more text" not in prompt and "adding gives 5" in prompt
    assert lm.history[0]["kwargs"]["temperature"] == 0.7
    with pytest.raises(InputError, match="M=3"):
        mcc(completions[:2], question="2+2?")


def test_multi_chain_comparison_accepts_completions_objects() -> None:
    settings.configure(lm=DummyLM([{"rationale": "r", "answer": "x"}]))
    mcc = MultiChainComparison("question -> answer", M=2)
    comps = Completions([{"reasoning": "a", "answer": "x"}, {"reasoning": "b", "answer": "y"}])
    assert mcc(comps, question="?").answer == "x"


# --- majority -----------------------------------------------------------------------------------------
def test_majority_votes_on_normalized_values() -> None:
    comps = [{"answer": "Paris"}, {"answer": "the paris!"}, {"answer": "Lyon"}]
    winner = majority(comps)
    assert isinstance(winner, Prediction) and winner.answer == "Paris"
    assert majority(comps, normalize=None).answer == "Paris"  # tie of three singletons: earliest wins


def test_majority_uses_the_signatures_last_output_and_ignores_none() -> None:
    sig_pred = Predict("question -> reasoning, answer").signature
    comps = Completions([{"reasoning": "x", "answer": "..."}, {"reasoning": "y", "answer": "b"},
                         {"reasoning": "z", "answer": "a"}, {"reasoning": "w", "answer": "b"}], signature=sig_pred)
    pred = Prediction.from_completions([dict(c.items()) for c in comps], signature=sig_pred)
    assert majority(pred).answer == "b"
    assert majority(comps).reasoning == "y"
    assert majority(comps, field="reasoning").reasoning == "x"


def test_majority_rejects_bad_input() -> None:
    with pytest.raises(InputError):
        majority("nope")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="field"):
        majority([{"answer": "a"}], field="missing")


# --- Retrieve -----------------------------------------------------------------------------------------
def test_retrieve_calls_the_configured_rm() -> None:
    calls: list[tuple[str, int]] = []

    def rm(query: str, k: int) -> list[Any]:
        calls.append((query, k))
        return [{"long_text": "first passage", "score": 1.0}, {"text": "second"}, "third"][:k]

    settings.configure(rm=rm)
    assert Retrieve(k=2)("castles").passages == ["first passage", "second"]
    assert Retrieve()("castles", k=3).passages == ["first passage", "second", "third"]
    assert calls == [("castles", 2), ("castles", 3)]


def test_retrieve_without_rm_says_how_to_configure() -> None:
    with pytest.raises(ConfigurationError, match="configure\\(rm="):
        Retrieve()("q")
    assert Retrieve(k=5).dump_state() == {"k": 5}


# --- ProgramOfThought ---------------------------------------------------------------------------------
class ScriptedInterpreter:
    """Stands in for the sandbox: returns or raises scripted results, records the code it got."""

    def __init__(self, results: list[Any]) -> None:
        self.results = list(results)
        self.codes: list[str] = []
        self.shut = False

    def execute(self, code: str) -> Any:
        self.codes.append(code)
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    def shutdown(self) -> None:
        self.shut = True


def test_program_of_thought_regenerates_after_errors() -> None:
    lm = DummyLM([
        {"reasoning": "r", "generated_code": "```python\nx = 1 / 0\n```"},
        {"reasoning": "fix", "generated_code": "```python\nimport math\nresult = math.factorial(5)\n```"},
        {"reasoning": "done", "answer": "120"},
    ])
    settings.configure(lm=lm)
    interp = ScriptedInterpreter([InterpreterError("ZeroDivisionError: division by zero"), 120])
    pot = ProgramOfThought("question -> answer: int", interpreter=interp)
    pred = pot(question="What is 5!?")
    assert pred.answer == 120
    assert interp.codes == ["x = 1 / 0\nx", "import math\nresult = math.factorial(5)\nresult"]
    assert not interp.shut  # a caller-owned interpreter stays open
    regen_prompt = lm.history[1]["messages"][-1]["content"]
    assert "ZeroDivisionError" in regen_prompt and "x = 1 / 0" in regen_prompt
    final_prompt = lm.history[2]["messages"][-1]["content"]
    assert "<code_output>\n120\n</code_output>" in final_prompt
    assert [n for n, _ in pot.named_predictors()] == [
        "code_generate.predict", "code_regenerate.predict", "generate_output.predict"]


def test_program_of_thought_gives_up_after_max_iters() -> None:
    settings.configure(lm=DummyLM([{"reasoning": "r", "generated_code": "1/0"}] * 2))
    interp = ScriptedInterpreter([InterpreterError("boom"), InterpreterError("boom again")])
    with pytest.raises(InterpreterError, match="2 attempt\\(s\\).*boom again"):
        ProgramOfThought("question -> answer", max_iters=2, interpreter=interp)(question="?")


def test_program_of_thought_empty_code_is_an_error_for_the_lm() -> None:
    settings.configure(lm=DummyLM([
        {"reasoning": "r", "generated_code": "```python\n```"},
        {"reasoning": "r", "generated_code": "print(3)"},
        {"reasoning": "r", "answer": "3"},
    ]))
    interp = ScriptedInterpreter(["3\n"])
    pred = ProgramOfThought("question -> answer", interpreter=interp)(question="?")
    assert pred.answer == "3" and interp.codes == ["print(3)"]


def test_program_of_thought_positional_interpreter_and_missing_inputs() -> None:
    settings.configure(lm=DummyLM([{"reasoning": "r", "generated_code": "[1, 2]"}, {"reasoning": "r", "answer": "3"}]))
    pot = ProgramOfThought("question -> answer")
    interp = ScriptedInterpreter([[1, 2]])
    with no_grad():
        assert pot(interp, question="?").answer == "3"
    with pytest.raises(InputError, match="question"):
        pot(interp)


def _sandbox_ready() -> bool:
    if importlib.util.find_spec("textgrad_like.tools.python_interpreter") is None:
        return False
    from textgrad_like.tools import python_interpreter as pi

    return all((pi.pyodide_dir() / name).is_file() for name in ("pyodide.asm.wasm", "python_stdlib.zip"))


@pytest.mark.skipif(not _sandbox_ready(), reason="the sandboxed PythonInterpreter (Deno + Pyodide) is not set up; "
                                                 "run python -m textgrad_like.tools.python_interpreter --setup")
def test_program_of_thought_in_the_real_sandbox() -> None:
    settings.configure(lm=DummyLM([
        {"reasoning": "r", "generated_code": "```python\nimport math\nvalue = math.comb(6, 2)\n```"},
        {"reasoning": "r", "answer": "15"},
    ]))
    pred = ProgramOfThought("question -> answer: int")(question="6 choose 2?")
    assert pred.answer == 15
