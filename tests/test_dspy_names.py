"""DSPy's public names and submodule paths (issue 17): each path imports and re-exports the same object
as the top level; History, ToolCalls, asyncify, syncify and Embedder behave as DSPy documents."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
import types

import pytest

import textgrad_like as dspy
from textgrad_like.utils import DummyLM

# DSPy 3.x path -> names it exposes there that we provide (read from DSPy 3.4.1's source)
PATHS: dict[str, list[str]] = {
    "teleprompt": ["BetterTogether", "BootstrapFewShot", "BootstrapFinetune", "COPRO", "Ensemble", "GEPA",
                   "KNNFewShot", "MIPROv2", "BootstrapFewShotWithRandomSearch", "LabeledFewShot", "SIMBA"],
    "teleprompt.bootstrap": ["BootstrapFewShot"],
    "teleprompt.bettertogether": ["BetterTogether"],
    "teleprompt.bootstrap_finetune": ["BootstrapFinetune"],
    "teleprompt.copro_optimizer": ["COPRO"],
    "teleprompt.ensemble": ["Ensemble"],
    "teleprompt.gepa": ["GEPA"],
    "teleprompt.gepa.gepa": ["GEPA", "DspyGEPAResult"],
    "teleprompt.knn_fewshot": ["KNNFewShot"],
    "teleprompt.mipro_optimizer_v2": ["MIPROv2"],
    "teleprompt.random_search": ["BootstrapFewShotWithRandomSearch"],
    "teleprompt.simba": ["SIMBA"],
    "teleprompt.teleprompt": ["Teleprompter"],
    "teleprompt.vanilla": ["LabeledFewShot"],
    "predict": ["majority", "BestOfN", "ChainOfThought", "MultiChainComparison", "Predict", "ProgramOfThought",
                "ReAct", "Refine", "Parallel"],
    "predict.aggregation": ["majority", "default_normalize"],
    "predict.best_of_n": ["BestOfN"],
    "predict.chain_of_thought": ["ChainOfThought"],
    "predict.multi_chain_comparison": ["MultiChainComparison"],
    "predict.parallel": ["Parallel"],
    "predict.predict": ["Predict"],
    "predict.program_of_thought": ["ProgramOfThought"],
    "predict.react": ["ReAct"],
    "predict.refine": ["Refine"],
    "evaluate": ["EM", "normalize_text", "answer_exact_match", "answer_passage_match", "Evaluate", "SemanticF1",
                 "CompleteAndGrounded", "EvaluationResult"],
    "evaluate.evaluate": ["Evaluate", "EvaluationResult"],
    "evaluate.metrics": ["EM", "F1", "normalize_text", "em_score", "f1_score", "precision_score",
                         "answer_exact_match", "answer_passage_match"],
    "evaluate.auto_evaluation": ["SemanticRecallPrecision", "DecompositionalSemanticRecallPrecision", "f1_score",
                                 "SemanticF1", "AnswerCompleteness", "AnswerGroundedness", "CompleteAndGrounded"],
    "adapters": ["Adapter", "ChatAdapter", "JSONAdapter", "History", "ToolCalls"],
    "adapters.base": ["Adapter"],
    "adapters.chat_adapter": ["ChatAdapter"],
    "adapters.json_adapter": ["JSONAdapter"],
    "adapters.types": ["History", "ToolCalls"],
    "clients": ["BaseLM", "LM", "inspect_history", "Embedder", "configure_cache"],
    "clients.base_lm": ["BaseLM", "inspect_history"],
    "clients.lm": ["LM"],
    "clients.cache": ["Cache"],
    "clients.embedding": ["Embedder"],
    "primitives": ["Completions", "Example", "Prediction"],
    "primitives.example": ["Example"],
    "primitives.prediction": ["Prediction", "Completions"],
    "primitives.module": ["Module"],
    "primitives.python_interpreter": ["PythonInterpreter"],
    "signatures": ["InputField", "OutputField", "SignatureMeta", "Signature", "ensure_signature", "make_signature"],
    "signatures.field": ["InputField", "OutputField"],
    "signatures.signature": ["SignatureMeta", "Signature", "ensure_signature", "make_signature"],
    "streaming": ["StatusMessage", "StatusMessageProvider", "streamify", "StreamListener", "StreamResponse",
                  "streaming_response", "apply_sync_streaming"],
    "streaming.messages": ["StreamResponse", "StatusMessage", "StatusMessageProvider"],
    "streaming.streamify": ["streamify", "apply_sync_streaming", "streaming_response"],
    "streaming.streaming_listener": ["StreamListener", "find_predictor_for_stream_listeners"],
    "utils": ["BaseCallback", "with_callbacks", "DummyLM", "StatusMessage", "StatusMessageProvider"],
    "utils.asyncify": ["asyncify", "get_async_max_workers"],
    "utils.syncify": ["syncify", "run_async"],
    "utils.callback": ["BaseCallback", "with_callbacks"],
    "utils.dummies": ["DummyLM"],
    "utils.exceptions": ["AdapterParseError", "ContextWindowExceededError", "LMError"],
    "utils.parallelizer": ["ParallelExecutor"],
    "utils.saving": ["load"],
    "utils.usage_tracker": ["UsageTracker", "track_usage"],
}

TOP_LEVEL_NEW = ["History", "ToolCalls", "asyncify", "syncify", "Embedder", "SignatureMeta", "LMError",
                 "ContextWindowExceededError"]


@pytest.mark.parametrize("path", sorted(PATHS))
def test_dspy_paths_import_with_their_names(path: str) -> None:
    module = importlib.import_module(f"textgrad_like.{path}")
    for name in PATHS[path]:
        value = getattr(module, name)
        if hasattr(dspy, name):
            assert value is getattr(dspy, name), f"{path}.{name} is not dspy.{name}"


def test_the_issue_example_imports() -> None:
    from textgrad_like.teleprompt.ensemble import Ensemble

    assert Ensemble is dspy.Ensemble and dspy.teleprompt.Ensemble is Ensemble
    assert dspy.clients.LM is dspy.LM and dspy.teleprompt.gepa.gepa.DspyGEPAResult is not None


def test_top_level_lists_one_set_of_names() -> None:
    names = set(dspy.__all__)
    assert len(names) == len(dspy.__all__)
    assert set(dspy._PUBLIC) <= names and set(TOP_LEVEL_NEW) <= names
    for name in dspy.__all__:
        assert getattr(dspy, name) is not None
    assert set(dspy.__all__) <= set(dir(dspy))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        dspy.Nope  # noqa: B018


def test_import_stays_light() -> None:
    code = ("import sys, textgrad_like as d; d.Example; d.History; d.Embedder; d.clients; "
            "assert 'torch' not in sys.modules and 'litellm' not in sys.modules, sorted(sys.modules)")
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True)


# --- History / ToolCalls ---------------------------------------------------------------------------------
def test_history_and_tool_calls_are_dspys_types() -> None:
    history = dspy.History(messages=[{"question": "2+2?", "answer": "4"}])
    assert history.messages[0]["answer"] == "4"
    calls = dspy.ToolCalls.from_dict_list([{"name": "search", "args": {"q": "x"}}])
    assert calls.tool_calls[0].name == "search" and calls.tool_calls[0].args == {"q": "x"}


# --- asyncify / syncify ----------------------------------------------------------------------------------
def test_asyncify_runs_a_program_off_the_loop_with_the_callers_settings() -> None:
    program = dspy.Predict("question -> answer")
    lm = DummyLM([{"answer": "4"}])

    async def main():
        with dspy.context(lm=lm):
            return await dspy.asyncify(program)(question="2+2?")

    assert asyncio.run(main()).answer == "4"


def test_syncify_turns_aforward_into_forward_in_and_out_of_a_loop() -> None:
    class Async(dspy.Module):
        async def aforward(self, x: int):
            await asyncio.sleep(0)
            return dspy.Prediction(y=x + 1)

    program = Async()
    copy = dspy.syncify(program, in_place=False)
    assert copy is not program and copy(x=1).y == 2
    assert dspy.syncify(program) is program and program(x=2).y == 3

    async def inside_a_loop():
        return program(x=5).y

    assert asyncio.run(inside_a_loop()) == 6


# --- Embedder --------------------------------------------------------------------------------------------
def test_embedder_with_a_local_function_batches_and_shapes() -> None:
    seen: list[list[str]] = []

    def embed(texts, scale=1.0):
        seen.append(list(texts))
        return [[len(t) * scale, 1.0] for t in texts]

    embedder = dspy.Embedder(embed, batch_size=2, scale=2.0)
    matrix = embedder(["a", "bb", "ccc"])
    assert matrix.shape == (3, 2) and matrix[2, 0] == 6.0 and seen == [["a", "bb"], ["ccc"]]
    vector = embedder("dddd")
    assert vector.shape == (2,) and vector[0] == 8.0
    assert asyncio.run(embedder.acall(["ee"])).shape == (1, 2)


def test_embedder_with_a_litellm_model_calls_litellm_and_caches(monkeypatch, tmp_path) -> None:
    calls: list[dict] = []

    def embedding(model, input, **kwargs):  # noqa: A002 - litellm's argument name
        calls.append({"model": model, "input": list(input), **kwargs})
        return types.SimpleNamespace(data=[{"embedding": [float(len(t)), 0.5]} for t in input])

    fake = types.ModuleType("litellm")
    fake.embedding = embedding
    monkeypatch.setitem(sys.modules, "litellm", fake)
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    embedder = dspy.Embedder("openai/text-embedding-3-small", batch_size=10, dimensions=2)
    first = embedder(["hi", "there"])
    second = embedder(["hi", "there"])
    assert first.tolist() == second.tolist() == [[2.0, 0.5], [5.0, 0.5]]
    assert calls == [{"model": "openai/text-embedding-3-small", "input": ["hi", "there"], "dimensions": 2}]
    embedder(["hi", "there"], caching=False)
    assert len(calls) == 2


def test_embedder_refuses_bad_input() -> None:
    with pytest.raises(dspy.errors.ConfigurationError):
        dspy.Embedder(42)
    with pytest.raises(dspy.errors.InputError):
        dspy.Embedder(lambda t: [[0.0] for _ in t])([1, 2])
    with pytest.raises(dspy.errors.LMError, match="one vector per string"):
        dspy.Embedder(lambda t: [[0.0]])(["a", "b"])


def test_dspy_signatures_of_metrics_and_helpers() -> None:
    assert list(inspect.signature(dspy.Embedder.__init__).parameters)[:4] == ["self", "model", "batch_size",
                                                                               "caching"]
    assert list(inspect.signature(dspy.syncify).parameters) == ["program", "in_place"]


def test_embedder_is_a_knn_fewshot_vectorizer() -> None:
    def embed(texts):
        return [[float("cat" in t), float("dog" in t)] for t in texts]

    trainset = [dspy.Example(question=q, answer=a).with_inputs("question")
                for q, a in (("a cat", "meow"), ("a dog", "woof"), ("big dog", "woof"))]
    knn = dspy.KNNFewShot(k=1, trainset=trainset, vectorizer=dspy.Embedder(embed))
    assert [ex.answer for ex in knn.KNN(question="my cat")] == ["meow"]
