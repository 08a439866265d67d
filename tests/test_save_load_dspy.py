"""Programs saved by DSPy 3.x load unchanged (fixtures written by DSPy itself: tests/fixtures/dspy_saved/make_fixture.py)."""

from __future__ import annotations

import json
import logging
import os
import shutil

import pytest

import textgrad_like as dspy
from textgrad_like.errors import StateDictError
from textgrad_like.utils import DummyLM

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "dspy_saved")


class QA(dspy.Module):  # the same program as in make_fixture.py, written for textgrad_like
    def __init__(self):
        super().__init__()
        self.rewrite = dspy.Predict("question -> query")
        self.answer = dspy.ChainOfThought("question, context -> answer")
        self.checks = [dspy.Predict("answer -> ok: bool")]

    def forward(self, question):
        query = self.rewrite(question=question).query
        answer = self.answer(question=question, context=query).answer
        return dspy.Prediction(answer=answer, ok=self.checks[0](answer=answer).ok)


def test_a_program_saved_by_dspy_loads_with_its_demos_instructions_and_lm():
    program = QA()
    assert program.load(os.path.join(FIXTURES, "program.json")) is program
    assert program.rewrite.signature.instructions == "Rewrite the question as a search query."
    assert program.rewrite.instruction.value == "Rewrite the question as a search query."
    assert [d.query for d in program.rewrite.demos] == ["Hamlet author"]
    cot = program.answer.predict
    assert cot.signature.instructions == "Answer in one short phrase, using the context."
    assert [d.answer for d in cot.demos] == ["Paris", "4"] and cot.demos[0].reasoning == "Paris is the capital."
    # DSPy's default prefixes and "${name}" descriptions leave our fields as they were
    assert cot.signature.fields["reasoning"].desc == QA().answer.predict.signature.fields["reasoning"].desc
    assert program.rewrite.signature.fields["query"].prefix == QA().rewrite.signature.fields["query"].prefix
    # the saved per-predictor LM is rebuilt (settings only), the others keep theirs
    lm = program.checks[0].lm
    assert lm.model == "openai/gpt-4o-mini" and lm.kwargs["temperature"] == 0.3 and lm.kwargs["max_tokens"] == 50
    assert not {"finetuning_model", "launch_kwargs", "train_kwargs", "_dspy_lm_class"} & set(lm.kwargs)
    assert program.rewrite.lm is None


def test_the_loaded_program_runs():
    program = QA()
    program.load(os.path.join(FIXTURES, "program.json"))
    lm = DummyLM([{"query": "q"}, {"reasoning": "r", "answer": "Paris"}, {"ok": "True"}])
    program.set_lm(lm)
    out = program(question="Capital of France?")
    assert out.answer == "Paris" and out.ok is True
    second_prompt = json.dumps(lm.history[1]["messages"])
    assert "Answer in one short phrase" in second_prompt and "Paris is the capital." in second_prompt


def test_a_single_predictor_saved_by_dspy_loads():
    predict = dspy.Predict("question -> answer")
    predict.load(os.path.join(FIXTURES, "predict.json"))
    assert predict.signature.instructions == "Answer tersely." and predict.demos[0].answer == "2"


def test_api_base_in_a_dspy_file_is_ignored_unless_the_caller_opts_in(caplog):
    path = os.path.join(FIXTURES, "program_with_api_base.json")
    program = QA()
    with caplog.at_level(logging.WARNING):
        program.load(path)
    assert "api_base" not in program.checks[0].lm.kwargs
    assert "allow_unsafe_lm_state=True" in caplog.text
    trusted = QA().load(path, allow_unsafe_lm_state=True)
    assert trusted.checks[0].lm.kwargs["api_base"] == "http://attacker.invalid/v1"


def test_a_dspy_file_for_another_program_is_refused_and_changes_nothing(tmp_path):
    other = dspy.ChainOfThought("topic -> title")
    before = other.dump_state()
    with pytest.raises(StateDictError, match="missing keys") as info:
        other.load(os.path.join(FIXTURES, "program.json"))
    assert "rewrite" in info.value.unexpected_keys
    assert other.dump_state() == before
    # same predictor names, but a signature with other fields
    class Renamed(QA):
        def __init__(self):
            super().__init__()
            self.rewrite = dspy.Predict("question, style -> query")

    renamed = Renamed()
    with pytest.raises(StateDictError, match="fields"):
        renamed.load(os.path.join(FIXTURES, "program.json"))
    assert len(renamed.answer.predict.demos) == 0  # the earlier predictors were not loaded either


def test_our_dump_state_is_readable_by_dspys_loader_layout(tmp_path):
    program = QA()
    program.load(os.path.join(FIXTURES, "program.json"))
    state = program.dump_state()
    # DSPy's Predict.load_state reads these keys; its Signature.load_state reads prefix + description by position
    for entry in state.values():
        assert {"traces", "train", "demos", "signature", "lm"} <= set(entry)
        assert all({"prefix", "description"} <= set(f) for f in entry["signature"]["fields"])
    path = tmp_path / "copy.json"
    shutil.copy(os.path.join(FIXTURES, "program.json"), path)
    again = QA().load(path)
    assert again.state_dict() == program.state_dict()
