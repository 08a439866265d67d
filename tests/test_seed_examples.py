"""The seed's Getting Started II examples, unchanged, with `import textgrad_like as dspy` and a scripted LM."""

from typing import Literal

import textgrad_like as dspy
from textgrad_like.utils import DummyLM


def test_math():
    dspy.configure(lm=DummyLM([{"reasoning": "One outcome (1,1) of 36.", "answer": "1/36"}]))
    math = dspy.ChainOfThought("question -> answer: float")
    pred = math(question="Two dice are tossed. What is the probability that the sum equals two?")
    assert abs(pred.answer - 1 / 36) < 1e-9
    assert pred.reasoning.startswith("One outcome")


def test_classification():
    dspy.configure(lm=DummyLM([{"sentiment": "positive", "confidence": "0.75"}]))

    class Classify(dspy.Signature):
        """Classify sentiment of a given sentence."""

        sentence: str = dspy.InputField()
        sentiment: Literal["positive", "negative", "neutral"] = dspy.OutputField()
        confidence: float = dspy.OutputField()

    classify = dspy.Predict(Classify)
    pred = classify(sentence="This book was super fun to read, though not the last chapter.")
    assert pred.sentiment == "positive" and pred.confidence == 0.75


def test_information_extraction():
    dspy.configure(lm=DummyLM([{
        "title": "Apple Inc. Announces iPhone 14",
        "headings": ["Introduction", "CEO's Statement", "New Features"],
        "entities": [{"name": "Apple Inc.", "type": "Organization"}, {"name": "Tim Cook", "type": "Person"}],
    }]))

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
    assert response.title == "Apple Inc. Announces iPhone 14"
    assert response.headings[1] == "CEO's Statement"
    assert response.entities[1] == {"name": "Tim Cook", "type": "Person"}


def test_multi_stage_pipeline():
    dspy.configure(lm=DummyLM({
        "blocks <reasoning>, <title>, <sections>, <section_subheadings>": {
            "reasoning": "Cover the tournament.", "title": "World Cup 2002", "sections": ["Qualification", "Final"],
            "section_subheadings": {"Qualification": ["UEFA"], "Final": ["Match", "Aftermath"]}},
        "## Qualification": {"reasoning": "r", "content": "## Qualification\n\nText A"},
        "## Final": {"reasoning": "r", "content": "## Final\n\nText B"},
    }))

    class Outline(dspy.Signature):
        """Outline a thorough overview of a topic."""

        topic: str = dspy.InputField()
        title: str = dspy.OutputField()
        sections: list[str] = dspy.OutputField()
        section_subheadings: dict[str, list[str]] = dspy.OutputField(desc="mapping from section headings to subheadings")

    class DraftSection(dspy.Signature):
        """Draft a top-level section of an article."""

        topic: str = dspy.InputField()
        section_heading: str = dspy.InputField()
        section_subheadings: list[str] = dspy.InputField()
        content: str = dspy.OutputField(desc="markdown-formatted section")

    class DraftArticle(dspy.Module):
        def __init__(self):
            self.build_outline = dspy.ChainOfThought(Outline)
            self.draft_section = dspy.ChainOfThought(DraftSection)

        def forward(self, topic):
            outline = self.build_outline(topic=topic)
            sections = []
            for heading, subheadings in outline.section_subheadings.items():
                section, subheadings = f"## {heading}", [f"### {subheading}" for subheading in subheadings]
                section = self.draft_section(topic=outline.title, section_heading=section, section_subheadings=subheadings)
                sections.append(section.content)
            return dspy.Prediction(title=outline.title, sections=sections)

    draft_article = DraftArticle()
    article = draft_article(topic="World Cup 2002")
    assert article.title == "World Cup 2002"
    assert article.sections == ["## Qualification\n\nText A", "## Final\n\nText B"]
    # the recorded graph links each section draft to the outline that fed it
    g = article.graph
    assert len(g) == 3 and all(g.nodes[0] in n.parents for n in g.nodes[1:])
    assert [n for n, _ in draft_article.named_predictors()] == ["build_outline.predict", "draft_section.predict"]


def test_calling_the_lm_directly():
    lm = DummyLM(["This is a test!", "This is a test!"])
    dspy.configure(lm=lm)
    assert lm("Say this is a test!", temperature=0.7) == ["This is a test!"]
    assert lm(messages=[{"role": "user", "content": "Say this is a test!"}]) == ["This is a test!"]
