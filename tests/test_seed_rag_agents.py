"""The seed's RAG and Agents examples against a local ColBERTv2-protocol server (BM25 over the bundled
corpus), scripted and on the embedded model; and one real textual-gradient step on the embedded model."""

from __future__ import annotations

import pytest

import textgrad_like as dspy
from textgrad_like.autograd import MetricLoss
from textgrad_like.datasets.multihop import load_wiki_abstracts
from textgrad_like.optim import TextualGradientDescent
from textgrad_like.retrievers import BM25Retriever
from textgrad_like.retrievers.server import RetrieverServer
from textgrad_like.utils import DummyLM


@pytest.fixture(scope="module")
def wiki_server():
    corpus = [f"{d['title']} | {d['text']}" for d in load_wiki_abstracts()]
    with RetrieverServer(BM25Retriever(corpus)) as server:
        yield server


def make_search(url):
    def search_wikipedia(query: str) -> list[str]:
        results = dspy.ColBERTv2(url=url)(query, k=3)
        return [x["text"] for x in results]

    return search_wikipedia


def test_rag_seed_example_scripted(wiki_server):
    search_wikipedia = make_search(wiki_server.url)
    dspy.configure(lm=DummyLM([{"reasoning": "The context says so.", "response": "Kinnairdy Castle"}]))
    rag = dspy.ChainOfThought("context, question -> response")
    question = "What's the name of the castle that David Gregory inherited?"
    context = search_wikipedia(question)
    assert any("Kinnairdy" in c for c in context)
    pred = rag(context=context, question=question)
    assert pred.response == "Kinnairdy Castle"
    sent = dspy.settings.lm.history[-1]["messages"][-1]["content"]
    assert "Kinnairdy" in sent  # the retrieved passages reached the prompt


@pytest.mark.integration
def test_rag_seed_example_on_embedded_model(wiki_server, embedded_lm):
    search_wikipedia = make_search(wiki_server.url)
    dspy.configure(lm=embedded_lm)
    rag = dspy.ChainOfThought("context, question -> response")
    question = "What's the name of the castle that David Gregory inherited?"
    pred = rag(context=search_wikipedia(question), question=question)
    assert isinstance(pred.response, str) and pred.response.strip()
    assert isinstance(pred.reasoning, str)


@pytest.mark.integration
def test_agents_seed_example_on_embedded_model(wiki_server, embedded_lm):
    search_wikipedia = make_search(wiki_server.url)
    interpreter = dspy.PythonInterpreter({})

    def evaluate_math(expression: str):
        return interpreter.execute(expression)

    try:
        dspy.configure(lm=embedded_lm)
        react = dspy.ReAct("question -> answer: float", tools=[evaluate_math, search_wikipedia], max_iters=2)
        pred = react(question="What is 9362158 divided by the year of birth of David Gregory of Kinnairdy castle?")
    finally:
        interpreter.shutdown()
    assert isinstance(pred.answer, float)  # the typed output always parses under constrained decoding
    assert "thought_0" in pred.trajectory and "tool_name_0" in pred.trajectory


@pytest.mark.integration
def test_one_real_textual_gradient_step_on_embedded_model(embedded_lm):
    dspy.configure(lm=embedded_lm, backward_lm=embedded_lm)
    program = dspy.Predict("question -> answer")
    example = dspy.Example(question="What is the capital of France?", answer="Paris").with_inputs("question")
    pred = program(**example.inputs())
    loss = MetricLoss(dspy.evaluate.answer_exact_match)(pred, example)
    loss.backward()
    grads = program.instruction.grad
    assert grads and all(isinstance(g.feedback, str) and g.feedback for g in grads)
    before = program.instruction.value
    opt = TextualGradientDescent(program.parameters(kind="instruction"))
    opt.step()
    state = opt.state_dict()["state"][0]
    # either the instruction was rewritten, or the reason it was kept is recorded
    assert program.instruction.value != before or state.get("last_error")
    assert program.state_dict()["instruction"] == program.instruction.value
