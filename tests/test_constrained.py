"""Constrained decoding: schema handling, and a tiny random-weight model that must still emit valid output.

A random model is the hardest case for a constraint: nothing but the mask makes its output valid.
The tiny model (a 2-layer Llama with a byte-level BPE tokenizer trained here) is built once per module.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Literal

import pydantic
import pytest

from textgrad_like.errors import ConfigurationError
from textgrad_like.lm.constrained import cap_schema, schema_from_response_format

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    '{"label": "positive", "score": 0.5, "ok": true, "items": [1, 2, 3], "name": "abc"}',
    '{"a": {"b": [false, null, -1.25e3]}, "text": "hello world"}',
    "The quick brown fox jumps over the lazy dog. yes no maybe 2024-01-31 0123456789",
    "positive negative neutral red green blue true false null",
]


def build_tiny_model_dir(path: str, max_positions: int = 256, seed: int = 0) -> str:
    """Save a random 2-layer Llama and a small byte-level BPE tokenizer (with a chat template) to ``path``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<|im_start|>", "<|im_end|>"]
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    raw.train_from_iterator(CORPUS * 5, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<pad>",
                                        bos_token="<|im_start|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id)
    model = LlamaForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from textgrad_like.lm import LM

    path = build_tiny_model_dir(str(tmp_path_factory.mktemp("tiny-llama")))
    return LM(f"local/{path}", temperature=1.0, max_tokens=300, cache=False, max_string_length=8)


class Review(pydantic.BaseModel):
    label: Literal["positive", "negative", "neutral"]
    score: float
    ok: bool
    tags: list[str] = pydantic.Field(max_length=3)
    note: str


class Outer(pydantic.BaseModel):
    review: Review
    count: int


# -- response_format handling ---------------------------------------------------------------------------
def test_schema_from_pydantic_class_and_openai_dict():
    schema = schema_from_response_format(Review)
    assert schema["properties"]["label"]["enum"] == ["positive", "negative", "neutral"]
    wrapped = {"type": "json_schema", "json_schema": {"name": "Review", "schema": schema}}
    assert schema_from_response_format(wrapped) == schema
    assert schema_from_response_format({"type": "json_object"}) == "json_object"
    assert schema_from_response_format({"type": "text"}) is None
    assert schema_from_response_format(None) is None
    assert schema_from_response_format({"type": "object", "properties": {"a": {"type": "integer"}}})["type"] == "object"


@pytest.mark.parametrize("bad", [{"type": "json_schema"}, {"foo": 1}, 42, int, "not json"])
def test_bad_response_format_raises_configuration_error(bad):
    with pytest.raises(ConfigurationError):
        schema_from_response_format(bad)


def test_cap_schema_caps_free_text_only_and_leaves_input_unchanged():
    schema = Review.model_json_schema()
    capped = cap_schema(schema, max_string_length=12, max_items=5)
    assert capped["properties"]["note"]["maxLength"] == 12
    assert capped["properties"]["tags"]["maxItems"] == 3  # the schema's own bound is kept
    assert cap_schema({"type": "array"}, max_items=5)["maxItems"] == 5
    assert capped["properties"]["tags"]["items"]["maxLength"] == 12
    assert "maxLength" not in capped["properties"]["label"]  # enums are already bounded
    assert "maxLength" not in schema["properties"]["note"]
    explicit = cap_schema({"type": "string", "maxLength": 3}, max_string_length=12)
    assert explicit["maxLength"] == 3


# -- a random model under constraints -------------------------------------------------------------------
def test_random_model_json_schema_output_always_validates(tiny_lm):
    outputs = tiny_lm("Review this.", response_format=Review, n=6)
    assert len(outputs) == 6
    for text in outputs:
        review = Review.model_validate_json(text)
        assert review.label in ("positive", "negative", "neutral")
        assert len(review.note) <= 8
    assert len(set(outputs)) > 1  # temperature 1.0 really samples


def test_random_model_nested_schema_in_openai_format(tiny_lm):
    fmt = {"type": "json_schema", "json_schema": {"name": "Outer", "schema": Outer.model_json_schema()}}
    for text in tiny_lm("Nested please.", response_format=fmt, n=3):
        outer = Outer.model_validate_json(text)
        assert isinstance(outer.count, int)


def test_random_model_json_object_is_json(tiny_lm):
    lm = tiny_lm.copy(max_tokens=400)
    reasons_seen = []
    for text in lm("Any JSON.", response_format={"type": "json_object"}, n=3):
        reasons_seen.append(text)
        # A random model may ramble until max_tokens inside free JSON; when it closes, it must parse.
        try:
            json.loads(text)
        except json.JSONDecodeError:
            assert lm.history[-1]["usage"]["completion_tokens"] >= 1
            continue
    assert reasons_seen


def test_json_never_contains_control_characters_or_endless_numbers(tiny_lm):
    schema = {"type": "object", "properties": {"x": {"type": "number"}, "s": {"type": "string"}},
              "required": ["x", "s"]}
    for text in tiny_lm("numbers", response_format={"type": "json_schema", "json_schema": {"schema": schema}}, n=6):
        value = json.loads(text)
        assert not any(ord(c) < 0x20 for c in value["s"])
        assert max(len(run) for run in re.findall(r"[0-9]+", text)) <= 20


def test_random_model_choices_and_regex(tiny_lm):
    options = ["yes", "no", "maybe", "no way"]
    for text in tiny_lm("Pick one.", choices=options, n=8):
        assert text in options
    for text in tiny_lm("A date.", regex=r"\d{4}-\d{2}-\d{2}", n=4):
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", text), text


def test_different_constraints_in_one_batch(tiny_lm):
    """Rows with different constraints batched together each keep their own constraint."""
    results: dict[str, list[str]] = {}

    def call(kind: str) -> None:
        if kind == "json":
            results[kind] = tiny_lm("json", response_format=Review, n=2)
        elif kind == "choices":
            results[kind] = tiny_lm("pick", choices=["red", "green", "blue"], n=2)
        else:
            results[kind] = tiny_lm("free text", n=2, max_tokens=5)

    threads = [threading.Thread(target=call, args=(k,)) for k in ("json", "choices", "free")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for text in results["json"]:
        Review.model_validate_json(text)
    assert all(t in ("red", "green", "blue") for t in results["choices"])
    assert len(results["free"]) == 2


def test_only_one_constraint_kind_per_call(tiny_lm):
    with pytest.raises(ConfigurationError, match="only one"):
        tiny_lm("x", regex="a+", choices=["a"])
    with pytest.raises(ConfigurationError):
        tiny_lm("x", choices=[])
    with pytest.raises(ConfigurationError):
        tiny_lm("x", regex="(unclosed")
