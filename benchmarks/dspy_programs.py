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

import sys

import dspy

print("IMPL", dspy.__name__, file=sys.stderr)


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
        self.last_kwargs = {}

    def forward(self, prompt=None, messages=None, **kwargs):
        messages = messages or [{"role": "user", "content": prompt}]
        fields = output_fields(messages)
        last = text_of(messages[-1])
        values = self.answer(fields, last) if callable(self.answer) else dict(self.answer)
        values = {name: values.get(name, name + " text") for name in fields}
        values = {name: value for name, value in values.items() if value is not ...}  # ... = leave it out
        self.last_kwargs = kwargs
        closing = last.strip().split("\\n\\n")[-1]  # the adapter's closing request says which format
        if kwargs.get("response_format") or "JSON object" in closing:
            content = json.dumps(values)
        else:
            blocks = []
            for name, value in values.items():
                shown = value if isinstance(value, str) else json.dumps(value)
                blocks.append(f"[[ ## {name} ## ]]\\n{shown}")
            content = "\\n\\n".join(blocks + ["[[ ## completed ## ]]"])
        self.calls += 1
        message = SimpleNamespace(content=content, tool_calls=None)
        count = int(kwargs.get("n") or 1)
        return SimpleNamespace(
            choices=[SimpleNamespace(index=i, message=message, finish_reason="stop") for i in range(count)],
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


program("optional_output_omitted")('''
class Guess(dspy.Signature):
    """Answer, with an optional caveat."""
    question: str = dspy.InputField()
    answer: str = dspy.OutputField()
    caveat: str | None = dspy.OutputField()

lm = ScriptedLM(lambda fields, text: {"answer": "Paris", "caveat": ...})
dspy.configure(lm=lm)
pred = dspy.Predict(Guess)(question="What is the capital of France?")
assert pred.answer == "Paris" and pred.caveat is None, pred
assert lm.calls == 1, lm.calls
print("PASS")
''')

program("input_mistakes_warn_or_raise")('''
lm = ScriptedLM(capital_answer)
dspy.configure(lm=lm)
qa = dspy.Predict("question -> answer")
try:
    qa("What is the capital of France?")
except Exception as error:
    assert "keyword" in str(error).lower() or "positional" in str(error).lower(), error
else:
    raise AssertionError("positional arguments should raise")
pred = qa(question="What is the capital of France?", answer="Paris", source="atlas")
assert pred.answer == "Paris"
pred = qa(query="What is the capital of France?")
assert lm.calls == 2
print("PASS")
''')

program("custom_lm_not_cached")('''
lm = ScriptedLM(capital_answer)
dspy.configure(lm=lm)
qa = dspy.Predict("question -> answer")
qa(question="What is the capital of Spain?")
qa(question="What is the capital of Spain?")
assert lm.calls == 2, lm.calls
outputs = lm("Say the capital of Peru.")
assert isinstance(outputs, list) and isinstance(outputs[0], str)
outputs = lm(messages=[{"role": "user", "content": "hello"}])
assert isinstance(outputs, list) and len(outputs) == 1
print("PASS")
''')

program("predict_config_kwargs")('''
lm = ScriptedLM(capital_answer)
dspy.configure(lm=lm)
qa = dspy.Predict("question -> answer", temperature=0.3)
qa(question="What is the capital of Italy?")
assert lm.last_kwargs.get("temperature") == 0.3, lm.last_kwargs
qa(question="What is the capital of Italy?", config={"temperature": 0.9, "max_tokens": 50})
assert lm.last_kwargs.get("temperature") == 0.9 and lm.last_kwargs.get("max_tokens") == 50, lm.last_kwargs
print("PASS")
''')

program("callbacks")('''
from dspy.utils.callback import BaseCallback

class Recorder(BaseCallback):
    def __init__(self):
        self.events = []

    def on_module_start(self, call_id, instance, inputs):
        self.events.append(("module_start", type(instance).__name__))

    def on_module_end(self, call_id, outputs, exception):
        self.events.append(("module_end", exception is None))

    def on_lm_start(self, call_id, instance, inputs):
        self.events.append(("lm_start", instance.model))

    def on_lm_end(self, call_id, outputs, exception):
        self.events.append(("lm_end", exception is None))

recorder = Recorder()
dspy.configure(lm=ScriptedLM(capital_answer), callbacks=[recorder])
dspy.ChainOfThought("question -> answer")(question="What is the capital of Japan?")
kinds = [kind for kind, _ in recorder.events]
assert "module_start" in kinds and "lm_start" in kinds and "lm_end" in kinds, recorder.events
assert ("lm_start", "scripted/mock") in recorder.events
print("PASS")
''')

program("async_module_aforward")('''
import asyncio

class AsyncScriptedLM(ScriptedLM):
    async def aforward(self, prompt=None, messages=None, **kwargs):
        return self.forward(prompt=prompt, messages=messages, **kwargs)

class TwoHop(dspy.Module):
    def __init__(self):
        super().__init__()
        self.first = dspy.Predict("question -> answer")
        self.second = dspy.ChainOfThought("question -> answer")

    async def aforward(self, question):
        draft = await self.first.acall(question=question)
        return await self.second.acall(question=question + " Draft: " + draft.answer)

    def forward(self, question):
        draft = self.first(question=question)
        return self.second(question=question + " Draft: " + draft.answer)

dspy.configure(lm=AsyncScriptedLM(capital_answer))
program = TwoHop()
assert asyncio.run(program.acall(question="What is the capital of Chile?")).answer == "Santiago"
assert program(question="What is the capital of Chile?").answer == "Santiago"
print("PASS")
''')

program("semantic_f1_metric")('''
from dspy.evaluate import SemanticF1

def answer(fields, text):
    return {"reasoning": "overlap", "recall": "1.0", "precision": "0.5",
            "ground_truth_key_ideas": "Paris", "system_response_key_ideas": "Paris",
            "discussion": "same city"}

dspy.configure(lm=ScriptedLM(answer))
metric = SemanticF1(decompositional=True)
example = dspy.Example(question="Capital of France?", response="Paris").with_inputs("question")
score = metric(example, dspy.Prediction(response="Paris, the capital."))
assert abs(float(score) - 2 * 0.5 * 1.0 / 1.5) < 1e-6, score
print("PASS")
''')

program("module_state_and_copies")('''
dspy.configure(lm=ScriptedLM(capital_answer))
qa = dspy.LabeledFewShot(k=2).compile(dspy.ChainOfThought("question -> answer"), trainset=capital_examples())
state = qa.dump_state()
assert isinstance(state, dict)
copy = qa.deepcopy()
assert len(copy.predictors()[0].demos) == 2
fresh = qa.reset_copy()
assert len(fresh.predictors()[0].demos) == 0
other = dspy.ChainOfThought("question -> answer")
other.load_state(state)
assert len(other.predictors()[0].demos) == 2
assert other(question="What is the capital of Peru?").answer == "Lima"
print("PASS")
''')

program("settings_and_adapter_context")('''
lm = ScriptedLM(capital_answer)
dspy.configure(lm=lm, adapter=dspy.ChatAdapter())
assert dspy.settings.lm is lm
assert isinstance(dspy.settings.adapter, dspy.ChatAdapter)
qa = dspy.Predict("question -> answer")
with dspy.context(adapter=dspy.JSONAdapter()):
    assert qa(question="What is the capital of Egypt?").answer == "Cairo"
    assert lm.history[-1]["outputs"][0].lstrip().startswith("{")
assert qa(question="What is the capital of Egypt?").answer == "Cairo"
assert "[[ ## answer ## ]]" in lm.history[-1]["outputs"][0]
print("PASS")
''')

program("refine")('''
dspy.configure(lm=ScriptedLM(capital_answer))

def reward(args, pred):
    return 1.0 if len(pred.answer) < 10 else 0.0

refine = dspy.Refine(module=dspy.ChainOfThought("question -> answer"), N=2, reward_fn=reward, threshold=1.0)
assert refine(question="What is the capital of Kenya?").answer == "Nairobi"
print("PASS")
''')

program("parallel_inside_module")('''
class Fanout(dspy.Module):
    def __init__(self):
        super().__init__()
        self.qa = dspy.Predict("question -> answer")
        self.parallel = dspy.Parallel(num_threads=3)

    def forward(self, questions: list[str]):
        preds = self.parallel([(self.qa, {"question": q}) for q in questions])
        return dspy.Prediction(answers=[p.answer for p in preds])

dspy.configure(lm=ScriptedLM(capital_answer))
out = Fanout()(questions=["Capital of France?", "Capital of Japan?", "Capital of Peru?"])
assert out.answers == ["Paris", "Tokyo", "Lima"]
print("PASS")
''')

program("load_dspy_saved_program")('''
# program.json was written by the real DSPy (see TRANSFER in the runner).
qa = dspy.ChainOfThought("question -> answer")
qa.load("program.json")
demos = qa.predictors()[0].demos
assert len(demos) == 2, demos
assert demos[0]["question"].startswith("What is the capital of")
dspy.configure(lm=ScriptedLM(capital_answer))
assert qa(question="What is the capital of Chile?").answer == "Santiago"
print("PASS")
''')

program("multiple_completions")('''
dspy.configure(lm=ScriptedLM(capital_answer))
cot = dspy.ChainOfThought("question -> answer", n=3)
pred = cot(question="What is the capital of Spain?")
assert len(pred.completions) == 3, len(pred.completions)
assert list(pred.completions.answer) == ["Madrid"] * 3
assert dspy.majority(pred.completions).answer == "Madrid"
print("PASS")
''')

program("enum_and_constrained_fields")('''
from enum import Enum

class Color(Enum):
    RED = "red"
    BLUE = "blue"

class Rate(dspy.Signature):
    """Name the colour of the object and rate how sure you are."""
    thing: str = dspy.InputField()
    color: Color = dspy.OutputField()
    sureness: int = dspy.OutputField(ge=1, le=5)

dspy.configure(lm=ScriptedLM(lambda fields, text: {"color": "blue", "sureness": "4"}))
pred = dspy.Predict(Rate)(thing="the sky")
assert pred.color == Color.BLUE, pred.color
assert pred.sureness == 4
print("PASS")
''')

program("native_tool_calls")('''
def weather(city: str) -> str:
    """Current weather in a city."""
    return f"sunny in {city}"

class Plan(dspy.Signature):
    """Pick the tool calls that answer the question."""
    question: str = dspy.InputField()
    tools: list[dspy.Tool] = dspy.InputField()
    outputs: dspy.ToolCalls = dspy.OutputField()

def answer(fields, text):
    return {"outputs": {"tool_calls": [{"name": "weather", "args": {"city": "Lima"}}]}}

dspy.configure(lm=ScriptedLM(answer))
pred = dspy.Predict(Plan)(question="Weather in Lima?", tools=[dspy.Tool(weather)])
calls = pred.outputs.tool_calls
assert len(calls) == 1 and calls[0].name == "weather" and calls[0].args == {"city": "Lima"}
assert calls[0].execute(functions=[dspy.Tool(weather)]) == "sunny in Lima"
print("PASS")
''')

program("embeddings_retriever_rag")('''
import numpy as np

def embed(texts):
    vocab = ["paris", "tokyo", "rome", "capital", "france", "japan", "italy"]
    return np.array([[float(w in t.lower()) for w in vocab] + [0.01] for t in texts])

corpus = ["Paris is the capital of France.", "Tokyo is the capital of Japan.", "Rome is the capital of Italy."]
search = dspy.retrievers.Embeddings(corpus=corpus, embedder=dspy.Embedder(embed), k=1)

class RAG(dspy.Module):
    def __init__(self):
        super().__init__()
        self.respond = dspy.ChainOfThought("context, question -> response")

    def forward(self, question):
        context = search(question).passages
        return self.respond(context=context, question=question)

def answer(fields, text):
    city = next((c for c in ("Paris", "Tokyo", "Rome") if c + " is the capital" in text), "none")
    return {"reasoning": "from context", "response": city}

dspy.configure(lm=ScriptedLM(answer))
assert search("capital of Japan").passages == ["Tokyo is the capital of Japan."]
assert RAG()(question="What is the capital of Japan?").response == "Tokyo"
print("PASS")
''')

program("image_input")('''
class Describe(dspy.Signature):
    """Describe the picture."""
    picture: dspy.Image = dspy.InputField()
    caption: str = dspy.OutputField()

dspy.configure(lm=ScriptedLM(lambda fields, text: {"caption": "a red square"}))
image = dspy.Image(url="https://example.com/square.png")
pred = dspy.Predict(Describe)(picture=image)
assert pred.caption == "a red square"
print("PASS")
''')

program("dummy_lm_from_utils")('''
from dspy.utils.dummies import DummyLM
dspy.configure(lm=DummyLM([{"reasoning": "known", "answer": "Paris"}]))
pred = dspy.ChainOfThought("question -> answer")(question="What is the capital of France?")
assert pred.answer == "Paris"
print("PASS")
''')

program("evaluate_failures_and_save")('''
import json, os

class Flaky(dspy.Module):
    def __init__(self):
        super().__init__()
        self.qa = dspy.Predict("question -> answer")

    def forward(self, question):
        if "Peru" in question:
            raise RuntimeError("flaky step")
        return self.qa(question=question)

dspy.configure(lm=ScriptedLM(capital_answer))
devset = capital_examples()

def metric(example, pred, trace=None):
    return float(example.answer == pred.answer)

evaluate = dspy.Evaluate(devset=devset, metric=metric, display_progress=False, max_errors=5,
                         failure_score=0.0, save_as_json="results.json")
result = evaluate(Flaky())
assert result.score == 87.5, result.score
assert os.path.exists("results.json") and len(json.load(open("results.json"))) == len(devset)
print("PASS")
''')

program("teacher_settings_and_manual_demos")('''
from dspy.teleprompt import BootstrapFewShot
student_lm = ScriptedLM(capital_answer, model="scripted/student")
teacher_lm = ScriptedLM(capital_answer, model="scripted/teacher")
dspy.configure(lm=student_lm)

def metric(example, pred, trace=None):
    ok = example.answer == pred.answer
    return ok if trace is None else ok and len(pred.answer) > 1

optimizer = BootstrapFewShot(metric=metric, max_bootstrapped_demos=2, max_labeled_demos=0,
                             teacher_settings=dict(lm=teacher_lm))
compiled = optimizer.compile(dspy.Predict("question -> answer"), trainset=capital_examples())
assert teacher_lm.calls >= 2, teacher_lm.calls
assert len(compiled.demos) == 2
manual = dspy.Predict("question -> answer")
manual.demos = [dspy.Example(question="What is the capital of Egypt?", answer="Cairo")]
assert manual(question="What is the capital of Peru?").answer == "Lima"
print("PASS")
''')

program("copro_optimizer")('''
from dspy.teleprompt import COPRO
dspy.configure(lm=ScriptedLM(capital_answer))

def metric(example, pred, trace=None):
    return example.answer == pred.answer

copro = COPRO(metric=metric, breadth=2, depth=1, init_temperature=1.0)
compiled = copro.compile(dspy.ChainOfThought("question -> answer"), trainset=capital_examples(),
                         eval_kwargs=dict(num_threads=1, display_progress=False))
assert compiled(question="What is the capital of Italy?").answer == "Rome"
print("PASS")
''')

program("simba_optimizer")('''
dspy.configure(lm=ScriptedLM(capital_answer))

def metric(example, pred, trace=None):
    return float(example.answer == pred.answer)

simba = dspy.SIMBA(metric=metric, max_steps=1, bsize=4, num_candidates=2, num_threads=1)
compiled = simba.compile(dspy.ChainOfThought("question -> answer"), trainset=capital_examples())
assert compiled(question="What is the capital of Italy?").answer == "Rome"
print("PASS")
''')

program("gepa_feedback_metric")('''
dspy.configure(lm=ScriptedLM(capital_answer))
reflection_lm = ScriptedLM(lambda fields, text: {"new_instruction": "Answer with the capital city only."},
                           model="scripted/reflect")

def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
    ok = gold.answer == pred.answer
    return dspy.Prediction(score=float(ok), feedback="correct" if ok else f"expected {gold.answer}")

data = capital_examples()
gepa = dspy.GEPA(metric=metric, max_metric_calls=30, reflection_lm=reflection_lm, num_threads=1)
compiled = gepa.compile(dspy.ChainOfThought("question -> answer"), trainset=data[:4], valset=data[4:])
assert compiled(question="What is the capital of Italy?").answer == "Rome"
print("PASS")
''')

program("configure_cache_and_old_settings")('''
dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
lm = ScriptedLM(capital_answer)
dspy.settings.configure(lm=lm)
assert dspy.settings.lm is lm
assert dspy.Predict("question -> answer")(question="What is the capital of Peru?").answer == "Lima"
sig = dspy.Signature("question -> answer").with_updated_fields("answer", desc="a city name")
assert sig.output_fields["answer"].json_schema_extra["desc"] == "a city name"
print("PASS")
''')

program("pickle_save_and_lm_object")('''
dspy.configure(lm=ScriptedLM(capital_answer))
qa = dspy.LabeledFewShot(k=2).compile(dspy.Predict("question -> answer"), trainset=capital_examples())
qa.save("qa.pkl")
fresh = dspy.Predict("question -> answer")
fresh.load("qa.pkl", allow_pickle=True)
assert len(fresh.demos) == 2
lm = dspy.LM("openai/gpt-4o-mini", temperature=0.2, max_tokens=300)
assert lm.model == "openai/gpt-4o-mini" and lm.kwargs["temperature"] == 0.2
warmer = lm.copy(temperature=0.7)
assert warmer.kwargs["temperature"] == 0.7 and lm.kwargs["temperature"] == 0.2
print("PASS")
''')

program("track_usage_context")('''
dspy.configure(lm=ScriptedLM(capital_answer), track_usage=True)
qa = dspy.ChainOfThought("question -> answer")
with dspy.track_usage() as tracker:
    qa(question="What is the capital of France?")
    qa(question="What is the capital of Japan?")
totals = tracker.get_total_tokens()
assert totals["scripted/mock"]["prompt_tokens"] == 24, totals
assert totals["scripted/mock"]["total_tokens"] == 32, totals
print("PASS")
''')

program("batch_with_failures")('''
class Picky(dspy.Module):
    def __init__(self):
        super().__init__()
        self.qa = dspy.Predict("question -> answer")

    def forward(self, question):
        if "Peru" in question:
            raise ValueError("no Peru today")
        return self.qa(question=question)

dspy.configure(lm=ScriptedLM(capital_answer))
examples = capital_examples()
results, failed, errors = Picky().batch(examples, num_threads=2, return_failed_examples=True, max_errors=3)
assert len(failed) == 1 and "Peru" in failed[0].question, failed
assert len(errors) == 1 and "no Peru" in str(errors[0])
assert sum(r is not None for r in results) == len(examples) - 1
print("PASS")
''')

program("react_max_iters_and_named_tool")('''
def lookup(term: str) -> str:
    return "nothing found"

tool = dspy.Tool(lookup, name="search_notes", desc="Search the notes for a term.")

def answer(fields, text):
    if "next_tool_name" in fields:
        return {"next_thought": "keep looking", "next_tool_name": "search_notes", "next_tool_args": {"term": "x"}}
    return {"reasoning": "gave up", "answer": "unknown"}

lm = ScriptedLM(answer)
dspy.configure(lm=lm)
agent = dspy.ReAct("question -> answer", tools=[tool], max_iters=2)
pred = agent(question="Where is the key?")
assert pred.answer == "unknown"
assert lm.calls == 3, lm.calls
assert "search_notes" in str(pred.trajectory) and "nothing found" in str(pred.trajectory)
print("PASS")
''')

program("multi_chain_comparison")('''
dspy.configure(lm=ScriptedLM(capital_answer))
cot = dspy.ChainOfThought("question -> answer", n=3)
question = "What is the capital of Italy?"
completions = cot(question=question).completions
compare = dspy.MultiChainComparison("question -> answer", M=3)
final = compare(completions=completions, question=question)
assert final.answer == "Rome"
print("PASS")
''')

program("example_and_prediction_details")('''
example = dspy.Example({"question": "Capital of Spain?", "answer": "Madrid"}).with_inputs("question")
assert "question" in example and len(example) == 2
assert example.get("missing", "fallback") == "fallback"
assert example.without("answer").toDict() == {"question": "Capital of Spain?"}
assert example.copy(answer="MADRID").answer == "MADRID" and example.answer == "Madrid"
assert dict(example.items()) == {"question": "Capital of Spain?", "answer": "Madrid"}
score = dspy.Prediction(score=0.75, feedback="close")
assert float(score) == 0.75 and score + 0.25 == 1.0
print("PASS")
''')

program("signature_prefix_desc_and_state")('''
class Summarize(dspy.Signature):
    """Summarize the text in one sentence."""
    text: str = dspy.InputField(desc="the text", prefix="Text:")
    summary: str = dspy.OutputField(desc="one sentence")

dspy.configure(lm=ScriptedLM(lambda fields, text: {"summary": "Short."}))
summarize = dspy.Predict(Summarize)
assert summarize(text="A long text.").summary == "Short."
state = summarize.dump_state()
assert set(state) >= {"demos", "signature"}, state.keys()
assert state["signature"]["instructions"] == "Summarize the text in one sentence."
summarize.reset()
assert summarize.demos == []
names = [name for name, _ in dspy.Module.named_sub_modules(summarize)]
assert names and names[0] == "self", names
print("PASS")
''')

program("list_of_predictors_save_load")('''
class Chain(dspy.Module):
    def __init__(self):
        super().__init__()
        self.steps = [dspy.Predict("question -> answer") for _ in range(2)]

    def forward(self, question):
        pred = None
        for step in self.steps:
            pred = step(question=question)
        return pred

dspy.configure(lm=ScriptedLM(capital_answer))
chain = Chain()
names = [name for name, _ in chain.named_predictors()]
assert names == ["steps[0]", "steps[1]"], names
chain.steps[1].demos = [dspy.Example(question="What is the capital of Peru?", answer="Lima")]
chain.save("chain.json")
fresh = Chain()
fresh.load("chain.json")
assert len(fresh.steps[1].demos) == 1 and len(fresh.steps[0].demos) == 0
assert fresh(question="What is the capital of France?").answer == "Paris"
print("PASS")
''')

program("code_type_output")('''
class WriteCode(dspy.Signature):
    """Write a Python function for the task."""
    task: str = dspy.InputField()
    code: dspy.Code["python"] = dspy.OutputField()

dspy.configure(lm=ScriptedLM(lambda fields, text: {"code": "def add(a, b):\\n    return a + b"}))
pred = dspy.Predict(WriteCode)(task="add two numbers")
assert "return a + b" in pred.code.code
print("PASS")
''')

program("async_tool_react")('''
import asyncio

class AsyncScriptedLM(ScriptedLM):
    async def aforward(self, prompt=None, messages=None, **kwargs):
        return self.forward(prompt=prompt, messages=messages, **kwargs)

async def fetch_height(name: str) -> str:
    """Height of a mountain."""
    await asyncio.sleep(0)
    return {"Everest": "8849 m"}.get(name, "unknown")

def answer(fields, text):
    if "next_tool_name" in fields:
        if "8849 m" in text:
            return {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}}
        return {"next_thought": "ask", "next_tool_name": "fetch_height", "next_tool_args": {"name": "Everest"}}
    return {"reasoning": "tool", "answer": "8849 m"}

dspy.configure(lm=AsyncScriptedLM(answer))
agent = dspy.ReAct("question -> answer", tools=[fetch_height], max_iters=3)
pred = asyncio.run(agent.acall(question="How tall is Everest?"))
assert pred.answer == "8849 m"
tool = dspy.Tool(fetch_height)
assert asyncio.run(tool.acall(name="Everest")) == "8849 m"
print("PASS")
''')

program("history_with_json_adapter")('''
class Chat(dspy.Signature):
    """Continue the conversation."""
    history: dspy.History = dspy.InputField()
    question: str = dspy.InputField()
    answer: str = dspy.OutputField()

def answer(fields, text):
    return {"answer": "Tokyo" if "Japan" in text else "yes"}

dspy.configure(lm=ScriptedLM(answer), adapter=dspy.JSONAdapter())
chat = dspy.Predict(Chat)
history = dspy.History(messages=[{"question": "Name a country.", "answer": "Japan"}])
pred = chat(history=history, question="What is the capital of Japan?")
assert pred.answer == "Tokyo"
print("PASS")
''')

program("save_bootstrapped_program")('''
from dspy.teleprompt import BootstrapFewShot
dspy.configure(lm=ScriptedLM(capital_answer))

class QA(dspy.Module):
    def __init__(self):
        super().__init__()
        self.draft = dspy.Predict("question -> answer")
        self.final = dspy.ChainOfThought("question, draft -> answer")

    def forward(self, question):
        draft = self.draft(question=question).answer
        return self.final(question=question, draft=draft)

def metric(example, pred, trace=None):
    return example.answer == pred.answer

compiled = BootstrapFewShot(metric=metric, max_bootstrapped_demos=2, max_labeled_demos=1).compile(
    QA(), trainset=capital_examples())
compiled.save("boot.json")
print("PASS")
''')

program("load_dspy_bootstrapped_program")('''
# boot.json was written by the real DSPy after BootstrapFewShot (see TRANSFER in the runner).
class QA(dspy.Module):
    def __init__(self):
        super().__init__()
        self.draft = dspy.Predict("question -> answer")
        self.final = dspy.ChainOfThought("question, draft -> answer")

    def forward(self, question):
        draft = self.draft(question=question).answer
        return self.final(question=question, draft=draft)

program = QA()
program.load("boot.json")
demos = program.final.predictors()[0].demos
assert len(demos) == 2, len(demos)
augmented = [d for d in demos if d.get("augmented")]
assert len(augmented) == 2 and all(d["reasoning"] == "Recall the capital." for d in augmented), demos
assert len(program.draft.demos) == 2
dspy.configure(lm=ScriptedLM(capital_answer))
assert program(question="What is the capital of Egypt?").answer == "Cairo"
print("PASS")
''')

program("custom_lm_dict_response")('''
class DictLM(dspy.BaseLM):
    """A custom LM whose forward returns the OpenAI response as plain dicts."""

    def forward(self, prompt=None, messages=None, **kwargs):
        fields = output_fields(messages)
        content = "\\n\\n".join(f"[[ ## {name} ## ]]\\nRome" for name in fields) + "\\n\\n[[ ## completed ## ]]"
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
                "model": self.model}

dspy.configure(lm=DictLM(model="dict/mock"))
assert dspy.Predict("question -> answer")(question="What is the capital of Italy?").answer == "Rome"
print("PASS")
''')

program("custom_lm_litellm_model_response")('''
from litellm import ModelResponse

class LiteLM(dspy.BaseLM):
    def forward(self, prompt=None, messages=None, **kwargs):
        fields = output_fields(messages)
        content = "\\n\\n".join(f"[[ ## {name} ## ]]\\nLima" for name in fields) + "\\n\\n[[ ## completed ## ]]"
        return ModelResponse(model=self.model, choices=[{"message": {"role": "assistant", "content": content}}],
                             usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4})

dspy.configure(lm=LiteLM(model="lite/mock"), track_usage=True)
pred = dspy.Predict("question -> answer")(question="What is the capital of Peru?")
assert pred.answer == "Lima"
assert pred.get_lm_usage()["lite/mock"]["total_tokens"] == 4
print("PASS")
''')

program("untyped_class_fields_and_float")('''
from typing import Literal

LABELS = ("sports", "politics", "science")

class Topic(dspy.Signature):
    """Pick the topic of the headline."""
    headline = dspy.InputField()
    topic: Literal[LABELS] = dspy.OutputField()

def answer(fields, text):
    if "topic" in fields:
        return {"topic": "science"}
    return {"reasoning": "3 * 2.5", "answer": "7.5"}

dspy.configure(lm=ScriptedLM(answer))
assert dspy.Predict(Topic)(headline="New comet found").topic == "science"
assert dspy.ChainOfThought("question -> answer: float")(question="3 * 2.5?").answer == 7.5
print("PASS")
''')

program("streamify_status_messages")('''
import asyncio

class Provider(dspy.streaming.StatusMessageProvider):
    def module_start_status_message(self, instance, inputs):
        return f"starting {type(instance).__name__}"

class Pipeline(dspy.Module):
    def __init__(self):
        super().__init__()
        self.qa = dspy.ChainOfThought("question -> answer")

    def forward(self, question):
        return self.qa(question=question)

dspy.configure(lm=ScriptedLM(capital_answer))
streaming = dspy.streamify(Pipeline(), status_message_provider=Provider())

async def collect():
    return [chunk async for chunk in streaming(question="What is the capital of Japan?")]

chunks = asyncio.run(collect())
statuses = [c.message for c in chunks if isinstance(c, dspy.streaming.StatusMessage)]
assert any(s.startswith("starting") for s in statuses), chunks
assert chunks[-1].answer == "Tokyo"
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


# program -> program run first, always with the real DSPy, in the same folder (a file DSPy wrote)
TRANSFER: dict[str, str] = {"load_dspy_saved_program": "save_load_json",
                            "load_dspy_bootstrapped_program": "save_bootstrapped_program"}


def source_of(name: str) -> str:
    return PRELUDE + "\n" + PROGRAMS[name]


def run_program(name: str, *, python: str, alias: bool, timeout: float = 240.0,
                baseline_python: str = str(DEFAULT_BASELINE_PYTHON)) -> tuple[bool, str, float]:
    """Run one program in a fresh subprocess and folder; return (passed, tail of its output, seconds)."""
    with tempfile.TemporaryDirectory(prefix=f"dspy_prog_{name}_") as folder:
        if name in TRANSFER:
            first = _run_in(folder, TRANSFER[name], python=baseline_python, alias=False, timeout=timeout)
            if not first[0]:
                return False, "the real DSPy could not write the file: " + first[1], first[2]
        return _run_in(folder, name, python=python, alias=alias, timeout=timeout)


def _run_in(folder: str, name: str, *, python: str, alias: bool, timeout: float) -> tuple[bool, str, float]:
    """Run one program in ``folder`` (its working directory)."""
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
