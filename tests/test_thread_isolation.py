"""32 threads, each with its own ``context(lm=...)``, run Evaluate, BootstrapFewShot and TGD steps at
the same time: no thread may see another's prompts, outputs, LM history, usage or graph nodes."""

from __future__ import annotations

import re
import threading
from typing import Any

import textgrad_like as dspy
from tests.test_faults import TaskLM
from textgrad_like.lm.usage import track_usage

N_THREADS = 32


class ThreadLM(TaskLM):
    """TaskLM for thread ``tag``: questions are ``<tag>-q<n>``, answers ``<tag>-a<n>``; every text it
    writes carries the tag, and it records any prompt that mentions another thread's tag."""

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag
        self.foreign: list[str] = []

    def _next_answer(self, messages: list[dict[str, Any]]) -> dict[str, Any]:  # type: ignore[override]
        text = " ".join(str(m.get("content", "")) for m in messages)
        others = {t for t in re.findall(r"\bt\d+(?=-)", text) if t != self.tag}
        if others:
            self.foreign.append(f"{sorted(others)} in a prompt to {self.tag}")
        out = super()._next_answer(messages)
        last = str(messages[-1].get("content", ""))
        for name, value in list(out.items()):
            if name == "answer":
                m = re.search(rf"{self.tag}-q(\d+)", last)
                n = int(m.group(1)) if m else -1
                out[name] = f"{self.tag}-a{n}" if n % 2 == 0 or "carefully" in str(messages[0]["content"]) else "wrong"
            elif isinstance(value, str):
                out[name] = f"{self.tag}-{value}"
            elif isinstance(value, dict):
                out[name] = {}
        return out


def thread_data(tag: str, n: int = 6) -> list[dspy.Example]:
    return [dspy.Example(question=f"{tag}-q{i}", answer=f"{tag}-a{i}").with_inputs("question") for i in range(n)]


def exact(example: Any, pred: Any, trace: Any = None) -> bool:
    return example.answer == pred.answer


def worker(index: int, barrier: threading.Barrier, out: dict[int, Any]) -> None:
    from textgrad_like.autograd import MetricLoss
    from textgrad_like.optim import TGD
    from textgrad_like.optim.bootstrap import BootstrapFewShot

    tag = f"t{index}"
    lm = ThreadLM(tag)
    devset = thread_data(tag)
    report: dict[str, Any] = {"tag": tag, "lm": lm}
    try:
        barrier.wait(timeout=60)
        with dspy.context(lm=lm), track_usage() as tracker:
            program = dspy.Predict("question -> answer")
            result = dspy.Evaluate(devset=devset, metric=exact, num_threads=2)(program)
            report["eval_outputs"] = [pred.answer for _, pred, _ in result.results]
            report["eval_score"] = result.score
            compiled = BootstrapFewShot(metric=exact, max_bootstrapped_demos=2, max_labeled_demos=3).compile(
                program, trainset=devset, num_threads=2, disable_progress=True)
            report["demos"] = [d.toDict() for d in compiled.demos]
            # TGD steps: forward with a graph, textual backward, step
            student = dspy.Predict("question -> answer")
            opt = TGD(student.parameters())
            graph_inputs: list[str] = []
            for step in range(2):
                batch = devset[step * 2: step * 2 + 2]
                preds = [student(**ex.inputs()) for ex in batch]
                for pred in preds:
                    graph_inputs.extend(str(v) for node in pred.graph.nodes for v in node.inputs.values())
                opt.zero_grad()
                MetricLoss(exact)(preds, batch).backward()
                opt.step()
            report["graph_inputs"] = graph_inputs
            report["instruction"] = student.signature.instructions
            report["tracker"] = tracker.totals()
    except BaseException as exc:  # reported to the main thread, which fails the test
        report["error"] = repr(exc)
    out[index] = report


def test_32_threads_have_no_cross_talk():
    barrier = threading.Barrier(N_THREADS)
    out: dict[int, Any] = {}
    threads = [threading.Thread(target=worker, args=(i, barrier, out)) for i in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert len(out) == N_THREADS
    for index, report in sorted(out.items()):
        tag, lm = report["tag"], report["lm"]
        assert "error" not in report, report.get("error")
        assert lm.foreign == [], lm.foreign
        # outputs: every answer is this thread's (or this thread's "wrong")
        assert all(a.startswith(f"{tag}-") or a == "wrong" for a in report["eval_outputs"]), report["eval_outputs"]
        assert report["eval_score"] == round(100 * 3 / 6, 2)
        for demo in report["demos"]:
            assert demo["question"].startswith(f"{tag}-"), demo
        assert all(re.fullmatch(rf"{tag}-q\d+", v) or tag in v for v in report["graph_inputs"]), report["graph_inputs"]
        assert report["demos"] and report["graph_inputs"]
        assert report["instruction"].startswith(f"{tag}-"), report["instruction"]  # TGD rewrote it from this thread
        # history: only this thread's prompts; usage equals history and the thread's tracker
        assert lm.history and len(lm.history) == lm.calls == lm.usage.calls
        for entry in lm.history:
            text = " ".join(str(m.get("content", "")) for m in entry["messages"])
            assert f"{tag}-" in text and not re.search(rf"\bt(?!{index}-)\d+-", text)
        assert lm.usage.prompt_tokens == sum(e["usage"]["prompt_tokens"] for e in lm.history)
        assert lm.usage.completion_tokens == sum(e["usage"]["completion_tokens"] for e in lm.history)
        totals = report["tracker"]["dummy"]
        # DSPy's tracker shape: token totals per model (no call count)
        assert totals["prompt_tokens"] == lm.usage.prompt_tokens
        assert totals["completion_tokens"] == lm.usage.completion_tokens
