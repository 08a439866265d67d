"""ReAct with a scripted DummyLM: the seed agent, tool errors, truncation, async, graph and parameters."""

from __future__ import annotations

import typing
from typing import Any

import pytest

from textgrad_like.adapters import ChatAdapter
from textgrad_like.errors import ConfigurationError, ContextWindowExceededError, LMError
from textgrad_like.lm.base import LMResponse
from textgrad_like.predict.react import ReAct, is_context_window_error
from textgrad_like.settings import settings
from textgrad_like.tools import Tool
from textgrad_like.utils.dummies import DummyLM


def evaluate_math(expression: str) -> float:
    """Evaluate an arithmetic expression."""
    allowed = set("0123456789+-*/(). ")
    if not set(expression) <= allowed:
        raise ValueError(f"unsupported characters in {expression!r}")
    return float(eval(expression, {"__builtins__": {}}))  # test helper on a checked arithmetic string


def search_wikipedia(query: str) -> list[str]:
    """Search Wikipedia abstracts."""
    return [f"Abstract about {query}."]


def step(thought: str, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"next_thought": thought, "next_tool_name": tool, "next_tool_args": args}


def test_seed_agent_runs_with_a_scripted_lm() -> None:
    lm = DummyLM([
        step("Look it up first.", "search_wikipedia", {"query": "Castle Clinton"}),
        step("Now compute.", "evaluate_math", {"expression": "9362158 / 1000"}),
        step("I have the number.", "finish", {}),
        {"reasoning": "The tool computed it.", "answer": "9362.158"},
    ])
    settings.configure(lm=lm)
    agent = ReAct("question -> answer: float", tools=[evaluate_math, search_wikipedia])

    pred = agent(question="What is 9362158 divided by 1000?")

    assert pred.answer == pytest.approx(9362.158)
    assert pred.reasoning == "The tool computed it."
    traj = pred.trajectory
    assert list(traj) == [f"{k}_{i}" for i in range(3) for k in ("thought", "tool_name", "tool_args", "observation")]
    assert traj["observation_0"] == ["Abstract about Castle Clinton."]
    assert traj["tool_args_1"] == {"expression": "9362158 / 1000"}
    assert traj["observation_1"] == pytest.approx(9362.158)
    assert traj["tool_name_2"] == "finish" and traj["observation_2"] == "Completed."
    assert lm.calls == 4
    # the extract step saw the whole trajectory
    last_prompt = lm.history[-1]["messages"][-1]["content"]
    assert "<observation_1>\n9362.158\n</observation_1>" in last_prompt


def test_signatures_predictors_and_parameters() -> None:
    agent = ReAct("question -> answer: float", tools=[evaluate_math, search_wikipedia], max_iters=5)
    sig = agent.react.signature
    assert list(sig.input_fields) == ["question", "trajectory"]
    assert list(sig.output_fields) == ["next_thought", "next_tool_name", "next_tool_args"]
    assert typing.get_args(sig.output_fields["next_tool_name"].annotation) == (
        "evaluate_math", "search_wikipedia", "finish")
    assert sig.output_fields["next_tool_args"].annotation == dict[str, Any]
    assert "evaluate_math: Evaluate an arithmetic expression." in sig.instructions

    extract_sig = agent.extract.predict.signature
    assert list(extract_sig.input_fields) == ["question", "trajectory"]
    assert list(extract_sig.output_fields) == ["reasoning", "answer"]
    assert extract_sig.output_fields["answer"].annotation is float

    assert [name for name, _ in agent.named_predictors()] == ["react", "extract.predict"]
    names = [name for name, _ in agent.named_parameters()]
    assert {"react.instruction", "react.demos", "extract.predict.instruction", "extract.predict.demos"} <= set(names)
    assert set(agent.tools) == {"evaluate_math", "search_wikipedia", "finish"}


def test_tool_errors_become_observations() -> None:
    lm = DummyLM([
        step("Try it.", "evaluate_math", {"expression": "import os"}),
        step("Wrong arguments.", "evaluate_math", {"expr": "1+1"}),
        step("Give up.", "finish", {}),
        {"reasoning": "No luck.", "answer": "0"},
    ])
    settings.configure(lm=lm)
    agent = ReAct("question -> answer: float", tools=[evaluate_math])
    traj = agent(question="?").trajectory
    # DSPy's format: "Execution error in {tool}: " and at most five frames of the traceback
    assert traj["observation_0"].startswith("Execution error in evaluate_math: \nTraceback (most recent call last):")
    assert traj["observation_0"].endswith("ValueError: unsupported characters in 'import os'")
    assert traj["observation_0"].count('  File "') <= 5
    assert traj["observation_1"].startswith("Execution error in evaluate_math: \nTraceback")
    assert "ToolError: " in traj["observation_1"] and "unknown argument(s) ['expr']" in traj["observation_1"]


def test_max_iters_stops_the_loop_and_still_extracts() -> None:
    lm = DummyLM([
        step("a", "search_wikipedia", {"query": "x"}),
        step("b", "search_wikipedia", {"query": "y"}),
        {"reasoning": "enough", "answer": "1"},
    ])
    settings.configure(lm=lm)
    agent = ReAct("question -> answer: float", tools=[search_wikipedia], max_iters=5)
    pred = agent(question="?", max_iters=2)  # call-time override
    assert pred.answer == 1.0
    assert "thought_1" in pred.trajectory and "thought_2" not in pred.trajectory
    assert lm.calls == 3


def test_invalid_tool_choice_ends_the_trajectory() -> None:
    settings.configure(adapter=ChatAdapter(use_json_adapter_fallback=False))
    lm = DummyLM([
        step("ok", "search_wikipedia", {"query": "x"}),
        step("hmm", "send_email", {}),
        {"reasoning": "stopped", "answer": "2"},
    ])
    settings.configure(lm=lm)
    pred = ReAct("question -> answer: float", tools=[search_wikipedia])(question="?")
    assert pred.answer == 2.0
    assert list(pred.trajectory) == ["thought_0", "tool_name_0", "tool_args_0", "observation_0"]


class SmallContextLM(DummyLM):
    single_step_limit = False

    """Fails like a provider whose context window is too small once the prompt holds steps 0 and 1."""

    def _generate(self, messages: list[dict[str, Any]], **kwargs: Any) -> LMResponse:
        prompt = str(messages[-1]["content"])
        if "<thought_0>" in prompt and ("<thought_1>" in prompt or self.single_step_limit):
            raise LMError("openai/x: the provider call failed (ContextWindowExceededError: This model's maximum "
                          "context length is 8 tokens).")
        return super()._generate(messages, **kwargs)


def test_context_window_errors_truncate_the_oldest_step() -> None:
    lm = SmallContextLM([
        step("first", "search_wikipedia", {"query": "a"}),
        step("second", "search_wikipedia", {"query": "b"}),
        step("done", "finish", {}),
        {"reasoning": "r", "answer": "3"},
    ])
    settings.configure(lm=lm)
    pred = ReAct("question -> answer: float", tools=[search_wikipedia])(question="?")
    assert pred.answer == 3.0
    assert "thought_0" not in pred.trajectory
    assert [pred.trajectory[f"thought_{i}"] for i in (1, 2)] == ["second", "done"]


def test_context_window_with_one_step_left_ends_the_loop() -> None:
    lm = SmallContextLM([step("first", "search_wikipedia", {"query": "a"})])
    lm.single_step_limit = True
    settings.configure(lm=lm)
    with pytest.raises(ContextWindowExceededError, match="cannot be truncated"):  # as DSPy's
        ReAct("question -> answer", tools=[search_wikipedia])(question="?")


def test_max_trajectory_chars_drops_old_steps_before_calling() -> None:
    lm = DummyLM([
        step("first", "search_wikipedia", {"query": "a"}),
        step("second", "search_wikipedia", {"query": "b"}),
        step("third", "finish", {}),
        {"reasoning": "r", "answer": "ok"},
    ])
    settings.configure(lm=lm)
    agent = ReAct("question -> answer", tools=[search_wikipedia], max_trajectory_chars=200)
    pred = agent(question="?")
    assert pred.answer == "ok"
    assert len(agent._format_trajectory(pred.trajectory)) <= 200 or len(agent._steps(pred.trajectory)) == 1
    for entry in lm.history:
        trajectory_block = entry["messages"][-1]["content"].split("<trajectory>")[1]
        assert len(trajectory_block) < 300
    assert "<thought_0>" not in lm.history[-1]["messages"][-1]["content"]


def test_truncate_trajectory_drops_one_whole_step() -> None:
    agent = ReAct("question -> answer", tools=[search_wikipedia])
    traj = {f"{k}_{i}": i for i in range(3) for k in ("thought", "tool_name", "tool_args", "observation")}
    agent.truncate_trajectory(traj)
    assert list(traj)[0] == "thought_1" and len(traj) == 8


def test_is_context_window_error() -> None:
    assert is_context_window_error(LMError("maximum context length exceeded"))
    try:
        try:
            raise RuntimeError("context_length_exceeded")
        except RuntimeError as inner:
            raise LMError("provider failed") from inner
    except LMError as outer:
        assert is_context_window_error(outer)
    assert not is_context_window_error(LMError("rate limited"))


def test_bad_tool_names_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="finish"):
        ReAct("q -> a", tools=[Tool(search_wikipedia, name="finish")])
    with pytest.raises(ConfigurationError, match="Two tools"):
        ReAct("q -> a", tools=[search_wikipedia, Tool(evaluate_math, name="search_wikipedia")])


def test_graph_records_every_step_in_training_mode() -> None:
    lm = DummyLM([
        step("look", "search_wikipedia", {"query": "x"}),
        step("done", "finish", {}),
        {"reasoning": "r", "answer": "5"},
    ])
    settings.configure(lm=lm)
    agent = ReAct("question -> answer: float", tools=[search_wikipedia])
    pred = agent(question="?")
    graph = pred.graph
    assert graph is not None and len(graph) == 3
    assert [n.module for n in graph.nodes] == [agent.react, agent.react, agent.extract.predict]
    assert agent.react.instruction in graph.parameters()
    assert graph.nodes[2].parents  # the extract step depends on the earlier steps' outputs


async def test_async_agent_with_async_tool() -> None:
    async def lookup(key: str) -> str:
        """Look a key up."""
        return f"value of {key}"

    lm = DummyLM([
        step("look", "lookup", {"key": "k"}),
        step("done", "finish", {}),
        {"reasoning": "r", "answer": "value of k"},
    ])
    settings.configure(lm=lm)
    pred = await ReAct("question -> answer", tools=[lookup]).acall(question="?")
    assert pred.answer == "value of k"
    assert pred.trajectory["observation_0"] == "value of k"


def test_agent_copies_and_state_dict_round_trip() -> None:
    agent = ReAct("question -> answer", tools=[search_wikipedia])
    agent.react.instruction.value = "Be brief."
    clone = agent.deepcopy()
    assert clone.react is not agent.react and clone.tools["search_wikipedia"](query="q") == ["Abstract about q."]
    fresh = ReAct("question -> answer", tools=[search_wikipedia])
    fresh.load_state_dict(agent.state_dict())
    assert fresh.react.instruction.value == "Be brief."


def test_best_of_n_over_an_agent() -> None:
    from textgrad_like.predict.best_of_n import BestOfN

    lm = DummyLM([step("done", "finish", {}), {"reasoning": "r", "answer": "yes"}])
    settings.configure(lm=lm)
    agent = ReAct("question -> answer", tools=[search_wikipedia])
    pred = BestOfN(agent, N=2, reward_fn=lambda a, p: float(p.answer == "yes"), threshold=1.0)(question="?")
    assert pred.answer == "yes" and pred.trajectory["tool_name_0"] == "finish"
    assert [n.module for n in pred.graph.nodes] == [agent.react, agent.extract.predict]


class LateOverflowLM(DummyLM):
    """The final extraction overflows whenever its prompt holds the fifth step, however many older
    steps are dropped."""

    def _generate(self, messages: list[dict[str, Any]], **kwargs: Any) -> LMResponse:
        extracting = "`next_thought`" not in str(messages[0]["content"])
        if extracting and "<thought_4>" in str(messages[-1]["content"]):
            raise LMError("openai/x: the provider call failed (ContextWindowExceededError: too long).")
        return super()._generate(messages, **kwargs)


@pytest.mark.parametrize("use_async", [False, True])
def test_context_window_still_exceeded_after_three_truncations(use_async: bool) -> None:
    import asyncio

    lm = LateOverflowLM([step(f"s{i}", "search_wikipedia", {"query": str(i)}) for i in range(5)])
    settings.configure(lm=lm)
    agent = ReAct("question -> answer", tools=[search_wikipedia], max_iters=5)
    with pytest.raises(LMError, match="after dropping the 3 oldest steps") as info:
        if use_async:
            asyncio.run(agent.acall(question="?"))
        else:
            agent(question="?")
    assert "ContextWindowExceededError" in str(info.value.__cause__)


async def test_async_agent_matches_sync_agent_step_for_step() -> None:
    """forward and aforward share one agent loop: the same script gives the same trajectory, tool errors
    included, and a context overflow is truncated the same way."""

    def script() -> DummyLM:
        return DummyLM([
            step("Try it.", "evaluate_math", {"expression": "import os"}),
            step("Look it up.", "search_wikipedia", {"query": "castle"}),
            step("Done.", "finish", {}),
            {"reasoning": "ok", "answer": "1"},
        ])

    settings.configure(lm=script())
    sync = ReAct("question -> answer", tools=[evaluate_math, search_wikipedia])(question="?")
    settings.configure(lm=script())
    agent = ReAct("question -> answer", tools=[evaluate_math, search_wikipedia])
    asynced = await agent.acall(question="?")
    assert list(sync.trajectory) == list(asynced.trajectory)
    for key, value in sync.trajectory.items():
        if key == "observation_0":  # tracebacks name the sync / async call path
            assert value.startswith("Execution error in evaluate_math:") and asynced.trajectory[key].startswith(
                "Execution error in evaluate_math:")
            assert asynced.trajectory[key].endswith("ValueError: unsupported characters in 'import os'")
        else:
            assert asynced.trajectory[key] == value
    assert sync.answer == asynced.answer == "1"
