"""A small user program, type-checked with ``mypy --strict`` by tests/test_typing.py.

It uses the public API the way a user does; ``assert_type`` makes mypy fail when a public name
comes out as ``Any`` (or with a wrong type) instead of its real type.
"""

from __future__ import annotations

from typing import assert_type

import textgrad_like as dspy
from textgrad_like import (
    LM,
    BaseLM,
    BootstrapFewShot,
    ChainOfThought,
    Example,
    InputField,
    LabeledFewShot,
    Module,
    OutputField,
    Predict,
    Prediction,
    Signature,
)


class QA(Signature):
    """Answer the question in one word."""

    question: str = InputField()
    answer: str = OutputField(desc="one word")


class Pipeline(Module):
    def __init__(self) -> None:
        super().__init__()
        self.draft = ChainOfThought(QA)
        self.check = Predict("question, draft -> answer")

    def forward(self, question: str) -> Prediction:
        draft = self.draft(question=question)
        assert_type(draft, Prediction)
        return self.check(question=question, draft=draft.answer)


def exact(example: Example, prediction: Prediction, trace: object = None) -> bool:
    return bool(example.answer == prediction.answer)


def main() -> None:
    lm = LM("openai/gpt-4o-mini", temperature=0.0, max_tokens=100)
    assert_type(lm, LM)
    assert isinstance(lm, BaseLM)
    dspy.configure(lm=lm)
    replies = lm("Say hi")
    assert_type(replies, list[str])

    qa = Predict(QA)
    assert_type(qa, Predict)
    pred = qa(question="Capital of France?")
    assert_type(pred, Prediction)
    assert_type(Predict("question -> answer")(question="q"), Prediction)
    cot = ChainOfThought("question -> answer")
    assert_type(cot(question="q"), Prediction)

    program = Pipeline()
    out = program(question="q")
    assert_type(out, Prediction)  # Pipeline.forward's return type
    trainset = [Example(question="q", answer="a").with_inputs("question")]
    assert_type(trainset[0], Example)

    compiled = BootstrapFewShot(metric=exact, max_bootstrapped_demos=2).compile(program, trainset=trainset)
    assert_type(compiled, Pipeline)
    labeled = LabeledFewShot(k=2).compile(qa, trainset=trainset)
    assert_type(labeled, Predict)
    assert_type(program.named_predictors(), list[tuple[str, Module]])
    assert_type(QA.instructions, str)
    program.save("program.json")
    program.load("program.json")
