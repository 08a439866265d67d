"""examples/stronger_proposer.py runs offline: a scripted stand-in writes the proposals, the task LM runs the task."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from textgrad_like.utils import DummyLM

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "stronger_proposer.py"


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("stronger_proposer", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


class Recording(DummyLM):
    """A task LM that answers one label and records what it was asked."""

    def __init__(self) -> None:
        super().__init__({"": {"label": "lost_card"}})
        self.seen: list[str] = []

    def _next_answer(self, messages):  # type: ignore[override]
        self.seen.append(str(messages[-1]["content"]))
        return super()._next_answer(messages)


def test_stand_in_proposer_writes_the_proposals_and_the_task_lm_runs_the_task(monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    task = Recording()
    results = _example().main(task_lm=task, n_train=6, n_dev=4, n_test=4)
    assert "scripted stand-in" in capsys.readouterr().out
    for name in ("COPRO", "MIPROv2"):
        assert results[name]["proposals"]["tried"] >= 1 and results[name]["proposals"]["accepted"] >= 1
    assert task.seen and not any(k in text for text in task.seen
                                 for k in ("<basic_instruction>", "<tip>", "<prior_notes>", "<program_code>"))


@pytest.mark.integration
def test_stronger_proposer_example_with_the_embedded_model(embedded_lm, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    results = _example().main(task_lm=embedded_lm, n_train=4, n_dev=4, n_test=4)
    assert 0.0 <= results["start"] <= 100.0
    for name in ("COPRO", "MIPROv2"):
        assert results[name]["proposals"]["accepted"] >= 1
        assert isinstance(results[name]["instruction_improved"], bool)
