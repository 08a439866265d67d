"""DSPy user programs: short programs written the way DSPy 3.x's documentation teaches, run twice.

    python benchmarks/dspy_programs.py [--only NAME,NAME] [--no-baseline] [--baseline-python PY]

Each program below is plain DSPy code (``import dspy``) driven by a custom LM written as DSPy
documents one: a ``dspy.BaseLM`` subclass that implements only ``forward(prompt, messages, **kwargs)``
and returns an OpenAI-style response. The LM is a scripted responder: it reads the output fields
listed in the system message and answers them as ``[[ ## field ## ]]`` blocks (DSPy's chat format),
or as one JSON object when the adapter asks for JSON.

Every program runs in its own subprocess, once with the real DSPy (``/work/dspy-venv/bin/python``
by default) and once with ``import dspy`` resolving to ``textgrad_like`` (the import alias of
``benchmarks/dspy_parity.py``). A program passes when it exits 0 and prints ``PASS``. Only
programs that pass on DSPy itself are counted. The programs, the LM and the prose are our own.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BASELINE_PYTHON = Path("/work/dspy-venv/bin/python")

# The custom LM every program uses (prepended to each program's source).
PRELUDE = '''
import json
import re
from types import SimpleNamespace

import dspy


def output_fields(messages):
    """Names of the output fields the system message lists (numbered `name` lines after 'output fields')."""
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    if not isinstance(system, str):
        system = " ".join(part.get("text", "") for part in system if isinstance(part, dict))
    at = system.lower().find("output fields")
    names, expected = [], 1
    for line in system[at:].splitlines()[1:] if at >= 0 else []:
        match = re.match(r"\\s*(\\d+)\\.\\s+`(\\w+)`", line)
        if match and int(match.group(1)) == expected:
            names.append(match.group(2))
            expected += 1
        elif names and re.match(r"(All interactions|Write your reply|Reply with|In adhering|Your task)", line):
            break
    return names


def text_of(message):
    content = message["content"]
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content if isinstance(part, dict))


class ScriptedLM(dspy.BaseLM):
    """A custom LM as DSPy documents one: only forward(), returning an OpenAI-style response.

    ``answer(fields, last_user_text)`` returns a dict of output values; fields it leaves out get a
    placeholder text.
    """

    def __init__(self, answer, model="scripted/mock", **kwargs):
        super().__init__(model=model, **kwargs)
        self.answer = answer
        self.calls = 0

    def forward(self, prompt=None, messages=None, **kwargs):
        messages = messages or [{"role": "user", "content": prompt}]
        fields = output_fields(messages)
        last = text_of(messages[-1])
        values = self.answer(fields, last) if callable(self.answer) else dict(self.answer)
        values = {name: values.get(name, name + " text") for name in fields}
        system = text_of(messages[0]) if messages[0]["role"] == "system" else ""
        if kwargs.get("response_format") or "JSON object" in system:
            content = json.dumps(values)
        else:
            blocks = []
            for name, value in values.items():
                shown = value if isinstance(value, str) else json.dumps(value)
                blocks.append(f"[[ ## {name} ## ]]\\n{shown}")
            content = "\\n\\n".join(blocks + ["[[ ## completed ## ]]"])
        self.calls += 1
        message = SimpleNamespace(content=content, tool_calls=None)
        return SimpleNamespace(
            choices=[SimpleNamespace(index=0, message=message, finish_reason="stop")],
            usage={"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
            model=self.model,
        )


CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Spain": "Madrid", "Peru": "Lima",
            "Kenya": "Nairobi", "Chile": "Santiago", "Egypt": "Cairo"}


def capital_answer(fields, text):
    """Answers 'capital of X' questions (and reasons first when asked to)."""
    country = next((c for c in CAPITALS if c in text), None)
    return {"reasoning": "Recall the capital.", "answer": CAPITALS.get(country, "unknown")}


def capital_examples():
    return [dspy.Example(question=f"What is the capital of {c}?", answer=a).with_inputs("question")
            for c, a in CAPITALS.items()]
'''

PROGRAMS: dict[str, str] = {}


def program(name: str):
    def register(source: str) -> str:
        PROGRAMS[name] = textwrap.dedent(source)
        return source
    return register


program("predict_string_signature")('''
lm = ScriptedLM(capital_answer)
dspy.configure(lm=lm)
qa = dspy.Predict("question -> answer")
pred = qa(question="What is the capital of France?")
assert pred.answer == "Paris", pred
assert lm.calls == 1
print("PASS")
''')

program("chain_of_thought")('''
dspy.configure(lm=ScriptedLM(capital_answer))
cot = dspy.ChainOfThought("question -> answer")
pred = cot(question="What is the capital of Japan?")
assert pred.answer == "Tokyo" and pred.reasoning == "Recall the capital."
print("PASS")
''')

program("class_signature_literal_float")('''
from typing import Literal

class Sentiment(dspy.Signature):
    """Classify the sentiment of a product review."""
    review: str = dspy.InputField(desc="one customer review")
    sentiment: Literal["positive", "negative", "neutral"] = dspy.OutputField()
    confidence: float = dspy.OutputField(desc="between 0 and 1")

def answer(fields, text):
    return {"sentiment": "negative" if "broke" in text else "positive", "confidence": "0.9"}

dspy.configure(lm=ScriptedLM(answer))
classify = dspy.Predict(Sentiment)
pred = classify(review="It broke after two days.")
assert pred.sentiment == "negative"
assert isinstance(pred.confidence, float) and pred.confidence == 0.9
assert Sentiment.instructions.startswith("Classify")
assert list(Sentiment.input_fields) == ["review"]
assert list(Sentiment.output_fields) == ["sentiment", "confidence"]
print("PASS")
''')

program("pydantic_output")('''
import pydantic

class Person(pydantic.BaseModel):
    name: str
    age: int

class Extract(dspy.Signature):
    """Extract the person mentioned in the text."""
    text: str = dspy.InputField()
    person: Person = dspy.OutputField()

dspy.configure(lm=ScriptedLM(lambda fields, text: {"person": {"name": "Ada", "age": 36}}))
pred = dspy.Predict(Extract)(text="Ada, 36, wrote the first program.")
assert isinstance(pred.person, Person), type(pred.person)
assert pred.person.name == "Ada" and pred.person.age == 36
print("PASS")
''')

program("list_and_dict_fields")('''
def answer(fields, text):
    return {"entities": ["Paris", "Seine"], "counts": {"Paris": 1, "Seine": 1}}

dspy.configure(lm=ScriptedLM(answer))
extract = dspy.Predict("text: str, hints: list[str] -> entities: list[str], counts: dict[str, int]")
pred = extract(text="Paris lies on the Seine.", hints=["places"])
assert pred.entities == ["Paris", "Seine"]
assert pred.counts == {"Paris": 1, "Seine": 1}
print("PASS")
''')

program("custom_module_pipeline")('''
class SearchAndAnswer(dspy.Module):
    def __init__(self):
        super().__init__()
        self.make_query = dspy.Predict("question -> query")
        self.answer = dspy.ChainOfThought("context: list[str], question -> answer")

    def forward(self, question):
        query = self.make_query(question=question).query
        context = [f"notes about {query}"]
        return self.answer(context=context, question=question)

def answer(fields, text):
    if "query" in fields:
        return {"query": "capital cities"}
    return capital_answer(fields, text)

dspy.configure(lm=ScriptedLM(answer))
rag = SearchAndAnswer()
pred = rag(question="What is the capital of Italy?")
assert pred.answer == "Rome"
names = [name for name, _ in rag.named_predictors()]
assert len(names) == 2 and len(rag.predictors()) == 2, names
print("PASS")
''')

program("react_with_tools")('''
def population(city: str) -> str:
    """Look up the population of a city."""
    return {"Paris": "2.1 million"}.get(city, "unknown")

def answer(fields, text):
    if "next_tool_name" in fields:
        if "2.1 million" in text:
            return {"next_thought": "I have it.", "next_tool_name": "finish", "next_tool_args": {}}
        return {"next_thought": "Look it up.", "next_tool_name": "population", "next_tool_args": {"city": "Paris"}}
    return {"reasoning": "The tool said so.", "answer": "2.1 million"}

dspy.configure(lm=ScriptedLM(answer))
agent = dspy.ReAct("question -> answer", tools=[population], max_iters=4)
pred = agent(question="How many people live in Paris?")
assert pred.answer == "2.1 million", pred
assert "population" in str(pred.trajectory)
print("PASS")
''')

program("react_tool_class")('''
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b

tool = dspy.Tool(add)
assert tool.name == "add" and "a" in tool.args
assert tool(a=2, b=3) == 5

def answer(fields, text):
    if "next_tool_name" in fields:
        if "Observation" in text or "observation" in text:
            return {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}}
        return {"next_thought": "add", "next_tool_name": "add", "next_tool_args": {"a": 2, "b": 3}}
    return {"reasoning": "2+3", "total": "5"}

dspy.configure(lm=ScriptedLM(answer))
agent = dspy.ReAct("question -> total: int", tools=[tool], max_iters=3)
pred = agent(question="What is 2 + 3?")
assert pred.total == 5
print("PASS")
''')

program("history_multi_turn")('''
class Chat(dspy.Signature):
    """Answer the question, using the conversation so far."""
    question: str = dspy.InputField()
    history: dspy.History = dspy.InputField()
    answer: str = dspy.OutputField()

def answer(fields, text):
    return {"answer": "Rome" if "Italy" in text else "It is also its largest city."}

dspy.configure(lm=ScriptedLM(answer))
chat = dspy.Predict(Chat)
history = dspy.History(messages=[])
first = chat(question="What is the capital of Italy?", history=history)
assert first.answer == "Rome"
history.messages.append({"question": "What is the capital of Italy?", **first})
second = chat(question="Is it large?", history=history)
assert second.answer == "It is also its largest city."
assert len(history.messages) == 1
print("PASS")
''')

program("evaluate_metric_table")('''
dspy.configure(lm=ScriptedLM(capital_answer))
devset = capital_examples()

def exact(example, pred, trace=None):
    return example.answer.lower() == pred.answer.lower()

evaluate = dspy.Evaluate(devset=devset, metric=exact, num_threads=2, display_progress=False, display_table=3)
result = evaluate(dspy.Predict("question -> answer"))
assert result.score == 100.0, result.score
assert len(result.results) == len(devset)
example, pred, score = result.results[0]
assert score is True or score == 1
print("PASS")
''')

program("builtin_metric_exact_match")('''
from dspy.evaluate import answer_exact_match
dspy.configure(lm=ScriptedLM(capital_answer))
devset = capital_examples()
evaluate = dspy.Evaluate(devset=devset, metric=answer_exact_match, display_progress=False)
score = evaluate(dspy.ChainOfThought("question -> answer")).score
assert score == 100.0, score
print("PASS")
''')

program("bootstrap_fewshot")('''
from dspy.teleprompt import BootstrapFewShot
dspy.configure(lm=ScriptedLM(capital_answer))
trainset = capital_examples()

def metric(example, pred, trace=None):
    return example.answer == pred.answer

optimizer = BootstrapFewShot(metric=metric, max_bootstrapped_demos=2, max_labeled_demos=2)
compiled = optimizer.compile(dspy.ChainOfThought("question -> answer"), trainset=trainset)
demos = compiled.predictors()[0].demos
assert 1 <= len(demos) <= 4, len(demos)
assert compiled(question="What is the capital of Peru?").answer == "Lima"
print("PASS")
''')

program("labeled_fewshot")('''
dspy.configure(lm=ScriptedLM(capital_answer))
compiled = dspy.LabeledFewShot(k=3).compile(dspy.Predict("question -> answer"), trainset=capital_examples())
assert len(compiled.predictors()[0].demos) == 3
assert compiled(question="What is the capital of Chile?").answer == "Santiago"
print("PASS")
''')

program("bootstrap_random_search")('''
from dspy.teleprompt import BootstrapFewShotWithRandomSearch
dspy.configure(lm=ScriptedLM(capital_answer))
data = capital_examples()

def metric(example, pred, trace=None):
    return example.answer == pred.answer

optimizer = BootstrapFewShotWithRandomSearch(metric=metric, max_bootstrapped_demos=2, max_labeled_demos=2,
                                             num_candidate_programs=2, num_threads=1)
compiled = optimizer.compile(dspy.Predict("question -> answer"), trainset=data[:5], valset=data[5:])
assert compiled(question="What is the capital of Egypt?").answer == "Cairo"
print("PASS")
''')

program("mipro_light")('''
dspy.configure(lm=ScriptedLM(capital_answer))
data = capital_examples() * 3

def metric(example, pred, trace=None):
    return example.answer == pred.answer

optimizer = dspy.MIPROv2(metric=metric, auto="light", num_threads=1, verbose=False)
compiled = optimizer.compile(dspy.ChainOfThought("question -> answer"), trainset=data[:12], valset=data[12:])
assert compiled(question="What is the capital of Kenya?").answer == "Nairobi"
print("PASS")
''')

program("knn_fewshot")('''
import numpy as np

def embed(texts):
    return np.array([[float(len(t)), float(t.count("a")), 1.0] for t in texts])

dspy.configure(lm=ScriptedLM(capital_answer))
knn = dspy.KNNFewShot(k=2, trainset=capital_examples(), vectorizer=dspy.Embedder(embed))
compiled = knn.compile(dspy.Predict("question -> answer"))
assert compiled(question="What is the capital of Spain?").answer == "Madrid"
print("PASS")
''')

program("ensemble")('''
from dspy.teleprompt import Ensemble
dspy.configure(lm=ScriptedLM(capital_answer))
programs = [dspy.Predict("question -> answer") for _ in range(3)]
ensemble = Ensemble(reduce_fn=dspy.majority).compile(programs)
pred = ensemble(question="What is the capital of France?")
assert pred.answer == "Paris", pred
print("PASS")
''')

program("save_load_json")('''
dspy.configure(lm=ScriptedLM(capital_answer))
program = dspy.ChainOfThought("question -> answer")
program = dspy.LabeledFewShot(k=2).compile(program, trainset=capital_examples())
program.save("program.json")
fresh = dspy.ChainOfThought("question -> answer")
fresh.load("program.json")
assert len(fresh.predictors()[0].demos) == 2
assert fresh.predictors()[0].demos[0]["answer"] == program.predictors()[0].demos[0]["answer"]
assert fresh(question="What is the capital of Japan?").answer == "Tokyo"
print("PASS")
''')

program("save_whole_program")('''
class QA(dspy.Module):
    def __init__(self):
        super().__init__()
        self.respond = dspy.Predict("question -> answer")

    def forward(self, question):
        return self.respond(question=question)

dspy.configure(lm=ScriptedLM(capital_answer))
program = dspy.LabeledFewShot(k=1).compile(QA(), trainset=capital_examples())
program.save("saved_qa/", save_program=True)
loaded = dspy.load("saved_qa/", allow_pickle=True)
assert len(loaded.respond.demos) == 1
assert loaded(question="What is the capital of Italy?").answer == "Rome"
print("PASS")
''')

program("json_adapter")('''
dspy.configure(lm=ScriptedLM(capital_answer), adapter=dspy.JSONAdapter())
pred = dspy.ChainOfThought("question -> answer")(question="What is the capital of Peru?")
assert pred.answer == "Lima"
print("PASS")
''')

program("context_override")('''
main = ScriptedLM(capital_answer)
other = ScriptedLM(lambda fields, text: {"answer": "from the other LM"}, model="scripted/other")
dspy.configure(lm=main)
qa = dspy.Predict("question -> answer")
with dspy.context(lm=other):
    assert qa(question="What is the capital of Spain?").answer == "from the other LM"
assert qa(question="What is the capital of Spain?").answer == "Madrid"
assert (main.calls, other.calls) == (1, 1)
qa.set_lm(other)
assert qa.get_lm() is other
print("PASS")
''')

program("parallel_and_batch")('''
dspy.configure(lm=ScriptedLM(capital_answer))
qa = dspy.Predict("question -> answer")
examples = capital_examples()
preds = qa.batch(examples, num_threads=2)
assert [p.answer for p in preds] == [e.answer for e in examples]
parallel = dspy.Parallel(num_threads=2)
results = parallel([(qa, e) for e in examples[:3]])
assert [r.answer for r in results] == [e.answer for e in examples[:3]]
print("PASS")
''')

program("asyncify_and_acall")('''
import asyncio

class AsyncScriptedLM(ScriptedLM):
    async def aforward(self, prompt=None, messages=None, **kwargs):
        return self.forward(prompt=prompt, messages=messages, **kwargs)

dspy.configure(lm=AsyncScriptedLM(capital_answer))
qa = dspy.ChainOfThought("question -> answer")
async_qa = dspy.asyncify(qa)

async def main():
    first = await async_qa(question="What is the capital of France?")
    second = await qa.acall(question="What is the capital of Japan?")
    return first.answer, second.answer

assert asyncio.run(main()) == ("Paris", "Tokyo")
print("PASS")
''')

program("track_usage")('''
dspy.configure(lm=ScriptedLM(capital_answer), track_usage=True)
pred = dspy.Predict("question -> answer")(question="What is the capital of Chile?")
usage = pred.get_lm_usage()
assert "scripted/mock" in usage, usage
assert usage["scripted/mock"]["prompt_tokens"] == 12
assert usage["scripted/mock"]["completion_tokens"] == 4
print("PASS")
''')

program("streamify_final_prediction")('''
import asyncio
dspy.configure(lm=ScriptedLM(capital_answer))
streaming = dspy.streamify(dspy.Predict("question -> answer"))

async def collect():
    return [chunk async for chunk in streaming(question="What is the capital of Egypt?")]

chunks = asyncio.run(collect())
final = chunks[-1]
assert isinstance(final, dspy.Prediction) and final.answer == "Cairo"
print("PASS")
''')

program("inspect_history")('''
import contextlib
import io
lm = ScriptedLM(capital_answer)
dspy.configure(lm=lm)
dspy.Predict("question -> answer")(question="What is the capital of Kenya?")
buffer = io.StringIO()
with contextlib.redirect_stdout(buffer):
    returned = dspy.inspect_history(n=1)
assert returned is None
shown = buffer.getvalue()
assert "Nairobi" in shown and "Kenya" in shown
entry = lm.history[-1]
assert entry["messages"] and entry["outputs"] and entry["model"] == "scripted/mock"
print("PASS")
''')

program("example_and_prediction")('''
example = dspy.Example(question="What is the capital of Peru?", answer="Lima").with_inputs("question")
assert example.inputs().toDict() == {"question": "What is the capital of Peru?"}
assert example.labels().answer == "Lima"
dspy.configure(lm=ScriptedLM(capital_answer))
qa = dspy.Predict("question -> answer")
pred = qa(**example.inputs())
assert isinstance(pred, dspy.Prediction) and pred["answer"] == "Lima"
assert pred.toDict() == {"answer": "Lima"}
print("PASS")
''')

program("signature_instructions_and_fields")('''
QA = dspy.Signature("question -> answer", "Answer with a city name only.")
assert QA.instructions == "Answer with a city name only."
Shorter = QA.with_instructions("Answer tersely.")
assert Shorter.instructions == "Answer tersely." and QA.instructions == "Answer with a city name only."
WithNote = QA.append("note", dspy.OutputField(desc="a short remark"), type_=str)
assert list(WithNote.output_fields) == ["answer", "note"]
Fewer = WithNote.delete("note")
assert list(Fewer.output_fields) == ["answer"]
dspy.configure(lm=ScriptedLM(lambda fields, text: {"answer": "Paris", "note": "easy"}))
pred = dspy.Predict(WithNote)(question="Capital of France?")
assert (pred.answer, pred.note) == ("Paris", "easy")
print("PASS")
''')

program("best_of_n")('''
dspy.configure(lm=ScriptedLM(capital_answer))

def reward(args, pred):
    return 1.0 if pred.answer == "Rome" else 0.0

best = dspy.BestOfN(module=dspy.ChainOfThought("question -> answer"), N=3, reward_fn=reward, threshold=1.0)
assert best(question="What is the capital of Italy?").answer == "Rome"
print("PASS")
''')

program("optional_output_and_extra_inputs")('''
class Guess(dspy.Signature):
    """Answer, with an optional caveat."""
    question: str = dspy.InputField()
    answer: str = dspy.OutputField()
    caveat: str | None = dspy.OutputField()

dspy.configure(lm=ScriptedLM(capital_answer))
example = capital_examples()[0]
pred = dspy.Predict(Guess)(**example)
assert pred.answer == "Paris"
print("PASS")
''')


# --------------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------------
_ALIAS_BOOT = '''
import importlib.util, runpy, sys
spec = importlib.util.spec_from_file_location("_dspy_parity_harness", {parity!r})
harness = importlib.util.module_from_spec(spec)
spec.loader.exec_module(harness)
harness.install_alias("dspy", "textgrad_like")
sys.argv = [{path!r}]
runpy.run_path({path!r}, run_name="__main__")
'''


def source_of(name: str) -> str:
    return PRELUDE + "\n" + PROGRAMS[name]


def run_program(name: str, *, python: str, alias: bool, timeout: float = 240.0) -> tuple[bool, str, float]:
    """Run one program in a fresh subprocess and folder; return (passed, tail of its output, seconds)."""
    with tempfile.TemporaryDirectory(prefix=f"dspy_prog_{name}_") as folder:
        path = os.path.join(folder, f"{name}.py")
        Path(path).write_text(source_of(name))
        if alias:
            boot = _ALIAS_BOOT.format(parity=str(REPO / "benchmarks" / "dspy_parity.py"), path=path)
            command = [python, "-c", boot]
        else:
            command = [python, path]
        env = dict(os.environ)
        env.setdefault("OPENAI_API_KEY", "sk-dummy-for-offline-tests")
        env["PYTHONPATH"] = str(REPO) if alias else ""
        env["DSP_CACHEDIR"] = os.path.join(folder, "cache")
        env["DSPY_CACHEDIR"] = os.path.join(folder, "cache")
        env["TEXTGRAD_LIKE_CACHE_DIR"] = os.path.join(folder, "cache")
        started = time.monotonic()
        try:
            done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return False, f"timed out after {timeout:.0f} s", time.monotonic() - started
        output = (done.stdout + done.stderr).strip()
        passed = done.returncode == 0 and "PASS" in done.stdout.splitlines()[-1:]
        return passed, output[-3000:], time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated program names")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run on real DSPy")
    parser.add_argument("--baseline-python", default=str(DEFAULT_BASELINE_PYTHON))
    parser.add_argument("--verbose", action="store_true", help="print the output tail of each failure")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(PROGRAMS)
    baseline = not args.no_baseline and Path(args.baseline_python).exists()
    counted = ours_pass = dspy_pass = 0
    for name in names:
        real = run_program(name, python=args.baseline_python, alias=False) if baseline else (True, "", 0.0)
        mine = run_program(name, python=sys.executable, alias=True)
        dspy_pass += real[0]
        if real[0]:
            counted += 1
            ours_pass += mine[0]
        status = "pass" if mine[0] else "FAIL"
        note = "" if real[0] else "  (fails on DSPy too: not counted)"
        print(f"{name:36s} dspy={'pass' if real[0] else 'FAIL'} ours={status} ({mine[2]:.1f} s){note}", flush=True)
        if args.verbose and not mine[0]:
            print(textwrap.indent(mine[1][-1500:], "    | "), flush=True)
        if args.verbose and not real[0]:
            print(textwrap.indent(real[1][-1500:], "    dspy| "), flush=True)
    print(f"\nDSPy on itself: {dspy_pass}/{len(names)}   textgrad_like: {ours_pass}/{counted} of the programs DSPy passes")
    return 0 if ours_pass == counted else 1


if __name__ == "__main__":
    sys.exit(main())
