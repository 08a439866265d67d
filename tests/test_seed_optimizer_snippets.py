"""The seed's "Getting Started III" snippets, unchanged apart from the LM and the retriever URL, against
local dataset fixtures and a scripted LM; plus the LM-judged metrics SemanticF1 and CompleteAndGrounded."""

from __future__ import annotations

from pathlib import Path

import pytest

import textgrad_like as dspy
from textgrad_like.datasets.multihop import load_wiki_abstracts
from textgrad_like.retrievers import BM25Retriever
from textgrad_like.retrievers.server import RetrieverServer
from textgrad_like.utils import DummyLM

from .test_faults import TaskLM

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"


@pytest.fixture
def local_data(monkeypatch):
    monkeypatch.setenv("TEXTGRAD_LIKE_DATA_DIR", str(FIXTURES))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_react_with_mipro_light_on_hotpotqa_fixture(local_data):
    corpus = [f"{d['title']} | {d['text']}" for d in load_wiki_abstracts()]
    with RetrieverServer(BM25Retriever(corpus)) as server:
        # --- the seed snippet (LM and URL swapped for local stand-ins) ---
        import textgrad_like as dspy  # noqa: F811 - as the snippet does
        from textgrad_like.datasets import HotPotQA

        dspy.configure(lm=TaskLM())

        def search_wikipedia(query: str) -> list[str]:
            results = dspy.ColBERTv2(url=server.url)(query, k=3)
            return [x["text"] for x in results]

        trainset = [x.with_inputs('question') for x in HotPotQA(train_seed=2024, train_size=500).train]
        react = dspy.ReAct("question -> answer", tools=[search_wikipedia])

        tp = dspy.MIPROv2(metric=dspy.evaluate.answer_exact_match, auto="light", num_threads=24)
        optimized_react = tp.compile(react, trainset=trainset)
        # --- end of snippet ---
    assert trainset and all(set(x.inputs().keys()) == {"question"} for x in trainset)
    assert isinstance(optimized_react, dspy.ReAct)
    assert [n for n, _ in optimized_react.named_predictors()] == ["react", "extract.predict"]
    assert tp.state_dict(), "MIPROv2 exposes its search state"


def test_semantic_f1_metric():
    example = dspy.Example(question="Why is the sky blue?", response="Rayleigh scattering of sunlight.")
    pred = dspy.Prediction(response="Because air scatters blue light more.")
    dspy.configure(lm=DummyLM([{"reasoning": "partly", "recall": 0.5, "precision": 1.0},
                               {"reasoning": "r", "ground_truth_key_ideas": "1. scattering",
                                "system_response_key_ideas": "1. scattering", "discussion": "match",
                                "recall": 1.0, "precision": 1.0}]))
    metric = dspy.evaluate.SemanticF1()
    assert metric(example, pred).score == pytest.approx(2 / 3)  # a Prediction, as DSPy's
    decomposed = dspy.evaluate.SemanticF1(decompositional=True, threshold=0.9)
    assert decomposed(example, pred, trace=[]).score is True
    assert "ground_truth_key_ideas" in dspy.settings.lm.history[-1]["messages"][0]["content"]


def test_complete_and_grounded_metric():
    example = dspy.Example(question="Who wrote Hamlet?", response="William Shakespeare wrote Hamlet.")
    pred = dspy.Prediction(response="Shakespeare.", context=["Hamlet is a tragedy by William Shakespeare."])
    dspy.configure(lm=DummyLM([
        {"reasoning": "r", "ground_truth_key_ideas": "1", "system_response_key_ideas": "1", "discussion": "d",
         "completeness": 0.8},
        {"reasoning": "r", "system_response_claims": "1", "discussion": "d", "groundedness": 1.0},
    ]))
    score = dspy.evaluate.CompleteAndGrounded()(example, pred).score
    assert score == pytest.approx(2 * 0.8 / 1.8)
    assert "Hamlet is a tragedy" in dspy.settings.lm.history[-1]["messages"][-1]["content"]


def test_semantic_f1_as_optimizer_metric():
    """The RAG snippet's metric plugs into an optimizer (scripted judge: always a perfect match)."""
    dspy.configure(lm=TaskLM())
    trainset = [dspy.Example(question=f"q{i}", response=f"r{i}").with_inputs("question") for i in range(4)]
    judge = dspy.evaluate.SemanticF1(decompositional=True)
    program = dspy.ChainOfThought("question -> response")
    optimized = dspy.BootstrapFewShot(metric=judge, max_bootstrapped_demos=2).compile(program, trainset=trainset)
    assert isinstance(optimized, dspy.ChainOfThought)
