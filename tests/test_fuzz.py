"""Fuzzing with hypothesis: signature strings, type expressions, adapter parsing of arbitrary
completions, value parsing, ``load_state_dict``/``load_state`` and ``Module.load`` of arbitrary JSON.

The only exceptions allowed out are textgrad_like's typed errors (subclasses of
``TextgradLikeError``); an IndexError/KeyError/TypeError/AttributeError/RecursionError escaping is a bug.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, Literal, Optional

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import textgrad_like as dspy
from textgrad_like.adapters import ChatAdapter, JSONAdapter
from textgrad_like.adapters.values import parse_value
from textgrad_like.errors import TextgradLikeError
from textgrad_like.signatures import make_signature, parse_type

FUZZ = settings(derandomize=True, max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
FEW = settings(FUZZ, max_examples=60)


def only_typed(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; a typed textgrad_like error is fine (returns None), anything else fails the test."""
    try:
        return fn(*args, **kwargs)
    except TextgradLikeError:
        return None


# --- strategies ------------------------------------------------------------------------------------------------

NAMES = st.sampled_from(["a", "question", "answer", "x_1", "Score", "_hidden", "1bad", "class", "instructions",
                         "fields", "é", "a b", ""])
ATOMS = st.sampled_from(["str", "int", "float", "bool", "Any", "None", "datetime", "date", "bytes", "Foo", "list",
                         "dict", "Optional", "Union", "Literal", "'a'", "1", "'abc'", "0", "-1", "str.join",
                         "int.__class__", "()", "[]", "{}", "lambda: 1", "__import__('os')", "x if y else z",
                         "...", "1.5", "b'x'", "not x", "*a", "a[::]"])


def type_exprs() -> st.SearchStrategy[str]:
    return st.recursive(
        ATOMS,
        lambda inner: st.one_of(
            st.builds(lambda b, args: f"{b}[{', '.join(args)}]",
                      st.sampled_from(["list", "dict", "tuple", "set", "Optional", "Union", "Literal", "List",
                                       "Dict", "str", "int", "'abc'", "1", "None", "Any"]),
                      st.lists(inner, min_size=0, max_size=3)),
            st.builds(lambda a, b: f"{a} | {b}", inner, inner),
            st.builds(lambda a, b: f"{a}.{b}", inner, st.sampled_from(["x", "mro", "__name__", "real"])),
            st.builds(lambda a: f"({a},)", inner),
        ),
        max_leaves=6,
    )


def signature_strings() -> st.SearchStrategy[str]:
    field = st.one_of(NAMES, st.builds(lambda n, t: f"{n}: {t}", NAMES, type_exprs()))
    side = st.lists(field, max_size=3).map(", ".join)
    structured = st.builds(lambda a, b, arrow: f"{a} {arrow} {b}", side, side,
                           st.sampled_from(["->", "->", "-> ->", "=>", ""]))
    return st.one_of(structured, st.text(max_size=60),
                     st.text(alphabet="ab:,-> []()|'\"\x00", max_size=40))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


class Item(pydantic.BaseModel):
    name: str
    qty: int = 1


class Color(str, __import__("enum").Enum):
    RED = "red"
    BLUE = "blue"


OUTPUT_TYPES: list[Any] = [str, int, float, bool, Literal["yes", "no", "maybe"], list[str], dict[str, int],
                           Optional[int], list[dict[str, float]], tuple[int, str], Item, list[Item],
                           datetime.date, Any, Color, Optional[Literal["a", "b"]], set[int], bytes]


def signature_with(types: list[Any]) -> Any:
    fields: dict[str, Any] = {"question": (str, dspy.InputField())}
    for i, t in enumerate(types):
        fields[f"out{i}"] = (t, dspy.OutputField())
    return make_signature(fields, "Fuzz the parser.")


def completions(names: list[str]) -> st.SearchStrategy[str]:
    """Arbitrary text, tagged blocks with arbitrary content, and JSON objects with arbitrary values."""
    value = st.one_of(st.text(max_size=40), JSON.map(lambda v: json.dumps(v)),
                      st.sampled_from(["", "null", "1,000", "3/0", "1e999", "-", "[", "{", "```json\n{}\n```", "true",
                                       "yes", "42.0", "4" * 5000, "[" * 2000 + "]" * 2000, "2024-13-45"]))
    tagged = st.lists(st.tuples(st.sampled_from([*names, "other"]), value, st.booleans()), max_size=4).map(
        lambda parts: "\n".join(f"<{n}>\n{v}\n" + (f"</{n}>" if close else "") for n, v, close in parts))
    as_json = st.dictionaries(st.sampled_from([*names, "zzz"]), JSON, max_size=4).map(json.dumps)
    raw_values = st.dictionaries(st.sampled_from(names), value, max_size=4).map(
        lambda d: "{" + ", ".join(f'"{k}": {v}' for k, v in d.items()) + "}")
    return st.one_of(st.text(max_size=120), tagged, as_json, raw_values,
                     st.sampled_from(["[" * 5000, "{" * 300, '{"a": ' * 3000, "<out0>" * 50, "\x00"]))


# --- signatures and types ------------------------------------------------------------------------------------------

@FUZZ
@given(signature_strings())
def test_signature_strings_raise_only_typed_errors(text):
    sig = only_typed(dspy.Signature, text)
    if sig is not None:
        assert sig.output_fields  # a signature that was built has outputs
        only_typed(sig.dump_state)
        repr(sig)


@FUZZ
@given(type_exprs())
def test_type_expressions_raise_only_typed_errors(text):
    only_typed(parse_type, text)
    only_typed(make_signature, f"question -> answer: {text}")


@FEW
@given(st.text(max_size=80))
def test_parse_type_of_random_text(text):
    only_typed(parse_type, text)


def test_pathological_type_expressions():
    for text in ["list[" * 500 + "str" + "]" * 500, "'abc'[5]", "1 | 2", "Union[1]", "str.join[int]", "a\x00b",
                 "Optional[1, 2]", "int[str]", "Literal[]", "(" * 300 + ")" * 300, "str." * 100 + "x"]:
        only_typed(parse_type, text)
        only_typed(make_signature, f"q -> a: {text}")


@FEW
@given(st.lists(st.sampled_from(OUTPUT_TYPES), min_size=1, max_size=3), st.data())
def test_signature_dict_form_with_field_types(types, data):
    sig = signature_with(types)
    for adapter in (ChatAdapter(), JSONAdapter()):
        messages = adapter.format(sig, [], {"question": data.draw(st.text(max_size=20))})
        assert messages[-1]["role"] == "user"


# --- adapters and value parsing ---------------------------------------------------------------------------------------

@FUZZ
@given(st.lists(st.sampled_from(OUTPUT_TYPES), min_size=1, max_size=3), st.data())
def test_adapters_parse_arbitrary_completions(types, data):
    sig = signature_with(types)
    completion = data.draw(completions(list(sig.output_fields)))
    for adapter in (ChatAdapter(), JSONAdapter()):
        parsed = only_typed(adapter.parse, sig, completion)
        if parsed is not None:
            assert set(parsed) == set(sig.output_fields)


@FUZZ
@given(st.sampled_from(OUTPUT_TYPES), st.one_of(st.text(max_size=60), JSON, JSON.map(json.dumps)))
def test_value_parsing_raises_only_typed_errors(annotation, text):
    only_typed(parse_value, text, annotation)


def test_adapter_round_trip_of_valid_outputs():
    sig = signature_with([int, list[str], Literal["yes", "no", "maybe"], Optional[int]])
    outputs = {"out0": 3, "out1": ["a", "b"], "out2": "maybe", "out3": None}
    for adapter in (ChatAdapter(), JSONAdapter()):
        assert adapter.parse(sig, adapter.format_outputs(sig, outputs)) == outputs


# --- state dicts and saved programs ---------------------------------------------------------------------------------------

class Two(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = dspy.Predict("question -> draft")
        self.second = dspy.ChainOfThought("question, draft -> answer: int")

    def forward(self, question: str) -> Any:
        return self.second(question=question, draft=self.first(question=question).draft)


def state_like() -> st.SearchStrategy[Any]:
    keys = st.sampled_from(["first.instruction", "first.demos", "second.predict.instruction", "second.predict.demos",
                            "x", "", "first"])
    demo = st.dictionaries(st.sampled_from(["question", "draft", "answer", "augmented", "_store", "inputs", ""]),
                           JSON, max_size=3)
    value = st.one_of(JSON, st.lists(demo, max_size=3), st.lists(JSON, max_size=3))
    return st.one_of(JSON, st.dictionaries(keys, value, max_size=5))


@FUZZ
@given(state_like(), st.booleans())
def test_load_state_dict_of_arbitrary_json(state, strict):
    program = Two()
    only_typed(program.load_state_dict, state, strict=strict)
    json.dumps(program.state_dict())  # whatever was loaded, the program stays saveable


@FUZZ
@given(st.one_of(JSON, st.dictionaries(st.sampled_from(["first", "second.predict", "self", "x"]),
                                       st.one_of(JSON, st.fixed_dictionaries(
                                           {"demos": st.one_of(JSON, st.lists(JSON, max_size=2))},
                                           optional={"signature": JSON, "lm": JSON})), max_size=3)))
def test_load_state_of_arbitrary_json(state):
    program = Two()
    only_typed(program.load_state, state)


def saved_files() -> st.SearchStrategy[Any]:
    sig_state = st.one_of(JSON, st.fixed_dictionaries({}, optional={
        "instructions": JSON, "fields": st.one_of(JSON, st.lists(st.one_of(JSON, st.fixed_dictionaries(
            {"name": st.one_of(st.sampled_from(["question", "draft", "answer", "reasoning"]), JSON)},
            optional={"desc": JSON, "prefix": JSON})), max_size=3))}))
    good = st.fixed_dictionaries({"format": st.just("textgrad_like.program/1")}, optional={
        "state_dict": state_like(),
        "signatures": st.one_of(JSON, st.dictionaries(st.sampled_from(["first", "second.predict", "x"]), sig_state,
                                                      max_size=3)),
        "lms": JSON, "metadata": JSON})
    return st.one_of(JSON, good)


@FUZZ
@given(saved_files())
def test_module_load_of_arbitrary_json(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "program.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    program = Two()
    only_typed(program.load, str(path))


@pytest.mark.parametrize("raw", [b"", b"\xff\xfe", b"{", b"[1, 2", b"\x00" * 10, b'{"format": "textgrad_like.program/1", '
                                 b'"signatures": {"first": {"fields": 7}}}'])
def test_module_load_of_broken_files(tmp_path, raw):
    path = tmp_path / "p.json"
    path.write_bytes(raw)
    only_typed(Two().load, str(path))


def test_load_of_missing_file_is_typed_or_oserror(tmp_path):
    with pytest.raises((TextgradLikeError, OSError)):
        Two().load(str(tmp_path / "nope.json"))

