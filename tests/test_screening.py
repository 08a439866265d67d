"""Proposed instructions are screened before they are evaluated (issue: instruction search with a weak proposer)."""

from __future__ import annotations

from typing import Literal

import pytest

import textgrad_like as dspy
from textgrad_like.optim.screening import InstructionScreen


def _screen() -> InstructionScreen:
    sig = dspy.make_signature("text -> label", "Classify.").with_updated_fields(
        "label", type_=Literal["lost_card", "check_balance"])
    examples = [dspy.Example(text="I lost my card on the bus yesterday", label="lost_card").with_inputs("text"),
                dspy.Example(text="What is the balance of my account?", label="check_balance").with_inputs("text")]
    return InstructionScreen(sig, examples)


@pytest.mark.parametrize(("text", "why"), [
    ("", "empty"), ("   ", "empty"), (None, "empty"), ("<>", "empty"),
    ("lost_card", "a label name"), ("Check Balance.", "a label name"), ("`lost_card`", "a label name"),
    ("<text>", "a field name"), ("label:", "a field name"),
    ("Bank Transfer", "too short"),
    ("I lost my card on the bus yesterday", "a copy of an input"),
    ("what is the balance of my account", "a copy of an input"),
])
def test_unusable_proposals_are_rejected_with_a_reason(text, why):
    assert _screen().reason(text) == why


def test_a_real_instruction_passes_and_counts_are_kept():
    screen = _screen()
    assert screen("Read the customer's message and pick the intent that matches what they ask for.") is None
    assert screen("lost_card") == "a label name"
    assert screen("") == "empty"
    assert screen.stats() == {"tried": 3, "accepted": 1, "rejected": {"a label name": 1, "empty": 1}}
    assert "1 of 3 proposed instructions passed screening" in screen.summary("COPRO")


def test_min_words_is_validated():
    with pytest.raises(ValueError, match="min_words"):
        InstructionScreen(min_words=0)
