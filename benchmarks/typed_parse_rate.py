"""Typed parse rate of the seed's signatures on the embedded model (temperature 0).

    python benchmarks/typed_parse_rate.py [--n 12] [--threads 8] [--adapter json|chat]

For each seed signature — Math (ChainOfThought, float), Classification (Literal + float),
Information Extraction (list[str], list[dict[str, str]]) and Outline (dict[str, list[str]]) — it
runs ``--n`` varied inputs and counts the replies that parse into the declared types. With the
default adapter the local LM decodes under the outputs' JSON schema, so the target is 100%.
``--adapter chat`` shows the rate without constrained decoding, for comparison.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import textgrad_like as dspy  # noqa: E402
from textgrad_like.errors import AdapterParseError  # noqa: E402
from textgrad_like.parallel import ParallelExecutor  # noqa: E402


class Classify(dspy.Signature):
    """Classify sentiment of a given sentence."""

    sentence: str = dspy.InputField()
    sentiment: Literal["positive", "negative", "neutral"] = dspy.OutputField()
    confidence: float = dspy.OutputField()


class ExtractInfo(dspy.Signature):
    """Extract structured information from text."""

    text: str = dspy.InputField()
    title: str = dspy.OutputField()
    headings: list[str] = dspy.OutputField()
    entities: list[dict[str, str]] = dspy.OutputField(desc="a list of entities and their metadata")


class Outline(dspy.Signature):
    """Outline a thorough overview of a topic."""

    topic: str = dspy.InputField()
    title: str = dspy.OutputField()
    sections: list[str] = dspy.OutputField()
    section_subheadings: dict[str, list[str]] = dspy.OutputField(desc="mapping from section headings to subheadings")


MATH = ["Two dice are tossed. What is the probability that the sum equals two?", "What is 17 times 23?",
        "A train travels 120 km in 1.5 hours. What is its average speed in km/h?", "What is the square root of 144?",
        "If a shirt costs $40 and is discounted by 25%, what is the new price?", "What is 3/8 as a decimal?",
        "How many minutes are in 2.5 hours?", "A rectangle is 7 m by 4 m. What is its area?",
        "What is 15% of 80?", "A coin is flipped three times. What is the probability of three heads?",
        "What is 1000 divided by 8?", "If x + 7 = 19, what is x?", "What is 2 to the power of 10?",
        "How many seconds are in one day?"]
SENTENCES = ["This book was super fun to read, though not the last chapter.", "The service was slow and rude.",
             "The package arrived on Tuesday.", "I absolutely love this phone!", "Worst movie I have seen all year.",
             "The meeting is at 3 pm.", "What a delightful surprise party!", "The food was cold and bland.",
             "It is a chair.", "Our team won the championship!", "I regret buying this laptop.",
             "The report has twelve pages.", "Fantastic concert, the band was amazing."]
TEXTS = ["Apple Inc. announced its latest iPhone 14 today. The CEO, Tim Cook, highlighted its new features.",
         "NASA launched the Artemis I mission from Florida, sending the Orion capsule around the Moon.",
         "The city council of Paris approved a new bike lane plan proposed by Mayor Anne Hidalgo.",
         "Serena Williams won her 23rd Grand Slam title at the Australian Open in Melbourne.",
         "Microsoft agreed to acquire Activision Blizzard for 69 billion dollars.",
         "The World Health Organization declared the end of the emergency phase in Geneva.",
         "Toyota unveiled a hydrogen-powered car at the Tokyo Motor Show.",
         "Lionel Messi joined Inter Miami after leaving Paris Saint-Germain.",
         "The European Central Bank raised interest rates, said president Christine Lagarde.",
         "Amazon opened a new warehouse in Ohio, creating 1,000 jobs.",
         "Researchers at Oxford University published a new malaria vaccine study.",
         "Tesla recalled 2 million vehicles in the United States over autopilot concerns."]
TOPICS = ["World Cup 2002", "Photosynthesis", "The French Revolution", "Machine learning", "Coffee", "Volcanoes",
          "The Roman Empire", "Electric cars", "Jazz music", "The human heart", "Renewable energy", "Chess"]


def cases(n: int) -> list[tuple[str, object, dict[str, str]]]:
    math = dspy.ChainOfThought("question -> answer: float")
    classify = dspy.Predict(Classify)
    extract = dspy.Predict(ExtractInfo)
    outline = dspy.ChainOfThought(Outline)
    out = []
    for program, key, inputs in ((math, "question", MATH), (classify, "sentence", SENTENCES),
                                 (extract, "text", TEXTS), (outline, "topic", TOPICS)):
        name = {id(math): "Math (CoT, float)", id(classify): "Classification (Literal + float)",
                id(extract): "Extraction (list / dict)", id(outline): "Outline (dict[str, list[str]])"}[id(program)]
        out += [(name, program, {key: value}) for value in (inputs * 2)[:n]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--adapter", choices=["default", "json", "chat"], default="default")
    parser.add_argument("--max-tokens", type=int, default=700)
    args = parser.parse_args()
    lm = dspy.LM("local/embedded", temperature=0.0, max_tokens=args.max_tokens, cache=False)
    adapter = {"default": None, "json": dspy.JSONAdapter(), "chat": dspy.ChatAdapter(use_json_adapter_fallback=False)}
    dspy.configure(lm=lm, adapter=adapter[args.adapter])
    start = time.perf_counter()
    work = cases(args.n)

    def run(case: tuple[str, object, dict[str, str]]) -> bool:
        _, program, inputs = case
        try:
            with dspy.no_grad():
                program(**inputs)
            return True
        except AdapterParseError:
            return False

    results = ParallelExecutor(num_threads=args.threads, max_errors=len(work)).run(run, work)
    print(f"typed parse rate, embedded SmolLM2-135M, temperature 0, adapter={args.adapter}:")
    for name in dict.fromkeys(c[0] for c in work):
        rows = [r for c, r in zip(work, results, strict=True) if c[0] == name]
        ok = sum(1 for r in rows if r)
        print(f"  {name:<34} {ok}/{len(rows)} ({100 * ok / len(rows):.0f}%)")
    total = sum(1 for r in results if r)
    print(f"  {'all':<34} {total}/{len(results)} ({100 * total / len(results):.0f}%) "
          f"in {time.perf_counter() - start:.0f} s, {lm.usage.total_tokens} tokens")


if __name__ == "__main__":
    main()
