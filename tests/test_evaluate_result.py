"""Evaluate returns DSPy's EvaluationResult, saves CSV/JSON, and makes a collapsed program visible."""

from __future__ import annotations

import csv
import inspect
import json
import logging

import pytest

import textgrad_like as dspy
from textgrad_like.evaluate import CompleteAndGrounded, EvaluationResult, SemanticF1, answer_exact_match
from textgrad_like.evaluate.metrics import answer_passage_match
from textgrad_like.utils import DummyLM


def devset(labels: list[str]) -> list[dspy.Example]:
    return [dspy.Example(text=f"t{i}", label=label).with_inputs("text") for i, label in enumerate(labels)]


def label_match(example, pred, trace=None):
    return example.label == pred.label


def test_result_is_a_prediction_with_score_and_results() -> None:
    dspy.configure(lm=DummyLM({"t": {"label": "a"}}))
    result = dspy.Evaluate(devset=devset(["a", "b", "a", "b"]), metric=label_match)(dspy.Predict("text -> label"))
    assert isinstance(result, EvaluationResult) and isinstance(result, dspy.Prediction)
    assert result.score == 50.0 and result["score"] == 50.0 and float(result) == 50.0
    assert len(result.results) == 4
    example, pred, score = result.results[0]
    assert example.text == "t0" and pred.label == "a" and score == 1.0
    assert set(result.keys()) == {"score", "results"}
    assert repr(result) == "EvaluationResult(score=50.0, results=<list of 4 results>)"


def test_label_distribution_is_reported() -> None:
    dspy.configure(lm=DummyLM({"t0": {"label": "b"}, "t": {"label": "a"}}))
    result = dspy.Evaluate(devset=devset(["a", "b", "a"]), metric=label_match)(dspy.Predict("text -> label"))
    assert result.label_field == "label" and result.label_distribution == {"a": 2, "b": 1}
    assert not result.collapsed


def test_chain_of_thought_counts_the_answer_not_the_reasoning() -> None:
    dspy.configure(lm=DummyLM({"t": {"reasoning": "because", "label": "a"}}))
    result = dspy.Evaluate(devset=devset(["a", "b"]), metric=label_match)(dspy.ChainOfThought("text -> label"))
    assert result.label_field == "label" and result.label_distribution == {"a": 2}


def test_a_constant_program_is_flagged(caplog) -> None:
    labels = ["a"] * 6 + ["b"] * 4
    dspy.configure(lm=DummyLM({"t": {"label": "a"}}))
    with caplog.at_level(logging.WARNING, logger="textgrad_like.evaluate.evaluate"):
        result = dspy.Evaluate(devset=devset(labels), metric=label_match)(dspy.Predict("text -> label"))
    assert result.score == 60.0 and result.collapsed and result.label_distribution == {"a": 10}
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "label='a' for 10 of 10" in warning and "60.0% of this devset" in warning


def test_no_warning_below_ten_examples_or_below_the_share(caplog) -> None:
    dspy.configure(lm=DummyLM({"t0": {"label": "b"}, "t1": {"label": "b"}, "t": {"label": "a"}}))
    with caplog.at_level(logging.WARNING):
        few = dspy.Evaluate(devset=devset(["a"] * 5), metric=label_match)(dspy.Predict("text -> label"))
        mixed = dspy.Evaluate(devset=devset(["a"] * 12), metric=label_match)(dspy.Predict("text -> label"))
    assert not few.collapsed and not mixed.collapsed  # 10 of 12 answers are "a": 83% < 90%
    assert not [r for r in caplog.records if "answered" in r.getMessage()]


def test_label_field_can_be_chosen() -> None:
    dspy.configure(lm=DummyLM({"t": {"label": "a", "note": "x"}}))
    result = dspy.Evaluate(devset=devset(["a"]), metric=label_match, label_field="note")(
        dspy.Predict("text -> label, note"))
    assert result.label_field == "note" and result.label_distribution == {"x": 1}


def test_failed_rows_get_failure_score_and_are_not_counted_as_labels() -> None:
    dspy.configure(lm=DummyLM({"t": {"label": "a"}}))

    def metric(example, pred, trace=None):
        if example.text == "t1":
            raise ValueError("boom")
        return 1.0

    result = dspy.Evaluate(devset=devset(["a", "a", "a"]), metric=metric, failure_score=0.5, max_errors=5)(
        dspy.Predict("text -> label"))
    assert [r[2] for r in result.results] == [1.0, 0.5, 1.0] and result.failures == 1
    assert result.label_distribution == {"a": 2}


def test_save_as_csv_and_json(tmp_path) -> None:
    dspy.configure(lm=DummyLM({"t": {"label": "a"}}))
    csv_path, json_path = tmp_path / "r.csv", tmp_path / "r.json"
    dspy.Evaluate(devset=devset(["a", "b"]), metric=label_match, save_as_csv=str(csv_path))(
        dspy.Predict("text -> label"), save_as_json=str(json_path))
    rows = list(csv.DictReader(csv_path.open()))
    assert rows[0]["text"] == "t0" and rows[0]["example_label"] == "a" and rows[0]["pred_label"] == "a"
    assert rows[0]["label_match"] == "True" or float(rows[0]["label_match"]) == 1.0
    data = json.loads(json_path.read_text())
    assert data[1]["example_label"] == "b" and data[1]["pred_label"] == "a" and data[1]["label_match"] == 0.0


def test_display_table_shows_dspy_columns(capsys) -> None:
    dspy.configure(lm=DummyLM({"t": {"label": "a"}}))
    dspy.Evaluate(devset=devset(["a", "b", "a"]), metric=label_match, display_table=1)(dspy.Predict("text -> label"))
    out = capsys.readouterr().out
    assert "example_label" in out and "pred_label" in out and "label_match" in out
    assert "2 more rows not displayed" in out


def test_return_outputs_is_refused_with_a_pointer() -> None:
    with pytest.raises(dspy.errors.EvaluationError, match="results"):
        dspy.Evaluate(devset=devset(["a"]), metric=label_match, return_outputs=True)


def test_metric_signatures_are_dspys() -> None:
    assert list(inspect.signature(answer_exact_match).parameters) == ["example", "pred", "trace", "frac"]
    assert list(inspect.signature(answer_passage_match).parameters) == ["example", "pred", "trace"]


def test_semantic_f1_and_complete_and_grounded_return_predictions() -> None:
    dspy.configure(lm=DummyLM([
        {"reasoning": "r", "recall": "1.0", "precision": "0.5"},
        {"reasoning": "r", "recall": "1.0", "precision": "0.5"},
    ]))
    example = dspy.Example(question="q", response="gold")
    pred = dspy.Prediction(response="answer", context=["passage"])
    out = SemanticF1()(example, pred)
    assert isinstance(out, dspy.Prediction) and out.score == pytest.approx(2 / 3)
    assert SemanticF1(threshold=0.5)(example, pred, trace=[]).score is True

    dspy.configure(lm=DummyLM([
        {"reasoning": "r", "ground_truth_key_ideas": "1", "system_response_key_ideas": "1", "discussion": "d",
         "completeness": "1.0"},
        {"reasoning": "r", "system_response_claims": "c", "discussion": "d", "groundedness": "1.0"},
    ]))
    graded = CompleteAndGrounded()(example, pred)
    assert isinstance(graded, dspy.Prediction) and graded.score == pytest.approx(1.0)


def test_population_metric_scores_the_whole_devset() -> None:
    dspy.configure(lm=DummyLM({"t0": {"label": "a"}, "t": {"label": "b"}}))
    labels = ["a", "b", "b"]

    def macro_recall(examples, predictions):
        per_label = {}
        for ex, pred in zip(examples, predictions, strict=True):
            per_label.setdefault(ex.label, []).append(ex.label == pred.label)
        return round(sum(sum(v) / len(v) for v in per_label.values()) / len(per_label), 2)

    only = dspy.Evaluate(devset=devset(labels), population_metric=macro_recall)(dspy.Predict("text -> label"))
    assert only.score == 1.0 and [r[2] for r in only.results] == [None, None, None]
    both = dspy.Evaluate(devset=devset(labels), metric=label_match, population_metric=lambda e, p: 42.0)(
        dspy.Predict("text -> label"))
    assert both.score == 42.0 and [r[2] for r in both.results] == [1.0, 1.0, 1.0]


def test_tool_call_exact_match() -> None:
    from textgrad_like.evaluate import tool_call_exact_match

    def calls(*items):
        return dspy.ToolCalls.from_dict_list(list(items))

    gold = dspy.Example(tool_calls=calls({"name": "search", "args": {"q": "x", "k": 5}}, {"name": "get", "args": {}}))
    assert tool_call_exact_match(gold, dspy.Prediction(
        tool_calls=calls({"name": "get", "args": {}}, {"name": "search", "args": {"k": 5, "q": "x"}})))
    assert not tool_call_exact_match(gold, dspy.Prediction(tool_calls=calls({"name": "get", "args": {}})))
    assert not tool_call_exact_match(dspy.Example(tool_calls=calls({"name": "s", "args": {"k": 5}})),
                                     dspy.Prediction(tool_calls=calls({"name": "s", "args": {"k": "5"}})))
    provider = dspy.Example(tool_calls=[{"id": "c1", "type": "function",
                                         "function": {"name": "get", "arguments": "{}"}}])
    assert tool_call_exact_match(provider, dspy.Prediction(tool_calls=calls({"name": "get", "args": {}})))
