"""DSPy-parity fixes (issue 17): LM state class marker, Image inputs, adapter choice per call,
DummyLM exhaustion, ``dspy.utils.exceptions``, ``Predict.reset`` and the text-completion key."""

from __future__ import annotations

import logging
from unittest import mock

import pydantic
import pytest

import textgrad_like as dspy
from textgrad_like.clients.base_lm import LM_CLASS_STATE_KEY
from textgrad_like.errors import StateDictError
from textgrad_like.utils.dummies import DummyLM


class StatefulLM(dspy.BaseLM):
    """A custom LM with an extra constructor argument and its own load_state."""

    def __init__(self, model: str, *, region: str, **kwargs):
        super().__init__(model=model, **kwargs)
        self.region = region

    def forward(self, prompt=None, messages=None, **kwargs):
        return {"choices": [{"message": {"content": "[[ ## answer ## ]]\nok"}}], "usage": {}, "model": self.model}

    def dump_state(self):
        return {**super().dump_state(), "region": self.region}

    @classmethod
    def load_state(cls, state):
        state = dict(state)
        state.pop(LM_CLASS_STATE_KEY, None)
        return cls(**state)


class Holder:
    class NestedLM(dspy.BaseLM):
        pass


# --- LM state: class marker -------------------------------------------------------------------------
def test_lm_dump_state_has_dspy_class_marker_and_keys():
    lm = dspy.LM("openai/gpt-4o-mini", temperature=1, max_tokens=100, num_retries=10)
    assert lm.dump_state() == {
        LM_CLASS_STATE_KEY: "dspy.clients.lm.LM", "model": "openai/gpt-4o-mini", "model_type": "chat",
        "temperature": 1, "max_tokens": 100, "num_retries": 10, "cache": True, "finetuning_model": None,
        "launch_kwargs": {}, "train_kwargs": {},
    }


def test_custom_lm_marker_is_its_class_and_ignores_a_kwarg_of_that_name():
    lm = StatefulLM("m", region="eu", **{LM_CLASS_STATE_KEY: "evil.module.LM"})
    assert lm.dump_state()[LM_CLASS_STATE_KEY] == f"{__name__}.StatefulLM"


def test_fine_tuning_bookkeeping_is_not_sent_to_the_provider():
    lm = dspy.LM("openai/x", finetuning_model="ft", launch_kwargs={"a": 1}, train_kwargs={"b": 2})
    args = lm._litellm_args([{"role": "user", "content": "hi"}], dict(lm.kwargs))
    assert not {"finetuning_model", "launch_kwargs", "train_kwargs"} & set(args)
    assert lm.dump_state()["launch_kwargs"] == {"a": 1}


def test_state_without_marker_loads_as_lm_and_round_trips():
    program = dspy.Predict("q -> a")
    program.lm = dspy.LM("openai/gpt-4o-mini", temperature=1)
    state = program.dump_state()
    state["lm"].pop(LM_CLASS_STATE_KEY)
    loaded = dspy.Predict("q -> a").load_state(state)
    assert type(loaded.lm) is dspy.LM and loaded.lm.model == "openai/gpt-4o-mini"
    assert loaded.lm.dump_state()[LM_CLASS_STATE_KEY] == "dspy.clients.lm.LM"


def test_custom_lm_class_is_imported_only_with_the_opt_in():
    program = dspy.Predict("q -> a")
    program.lm = StatefulLM("custom", region="eu")
    state = program.dump_state()
    fresh = dspy.Predict("q -> a")
    with pytest.raises(ValueError, match="Refusing to import custom serialized LM class") as err:
        fresh.load_state(state)
    assert isinstance(err.value, StateDictError) and "allow_unsafe_lm_state=True" in str(err.value)
    assert fresh.lm is None  # all or nothing: nothing changed
    loaded = dspy.Predict("q -> a").load_state(state, allow_unsafe_lm_state=True)
    assert isinstance(loaded.lm, StatefulLM) and loaded.lm.region == "eu" and loaded.lm.model == "custom"


def test_nested_custom_class_loads_with_the_opt_in_and_same_class_is_kept_without():
    program = dspy.Predict("q -> a")
    program.lm = Holder.NestedLM("nested")
    state = program.dump_state()
    loaded = dspy.Predict("q -> a").load_state(state, allow_unsafe_lm_state=True)
    assert isinstance(loaded.lm, Holder.NestedLM) and loaded.lm.model == "nested"
    mine = Holder.NestedLM("mine")
    keeper = dspy.Predict("q -> a")
    keeper.lm = mine
    assert keeper.load_state(state).lm is mine  # no import needed: the predictor keeps its own LM


def test_saved_class_must_be_a_base_lm():
    state = {LM_CLASS_STATE_KEY: "collections.OrderedDict", "model": "x"}
    with pytest.raises(StateDictError, match="not a subclass of BaseLM"):
        dspy.BaseLM.load_state(state, allow_custom_lm_class=True)


# --- Image ------------------------------------------------------------------------------------------
def test_image_repr_hides_base64_data():
    image = dspy.Image(url="data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
    assert repr(image) == "Image(url=data:image/gif;base64,<IMAGE_BASE_64_ENCODED(56)>)"
    assert repr(dspy.Example(img=image)).startswith("Example({'img': Image(url=data:image/gif;base64,<IMAGE")
    assert dspy.Image("https://x/a.png").url == "https://x/a.png"
    assert dspy.Image(b"\x89PNG").url.startswith("data:image/png;base64,")


def test_image_anywhere_in_an_input_becomes_an_image_url_part():
    class Album(pydantic.BaseModel):
        images: list[dspy.Image]
        tag: str

    class Describe(dspy.Signature):
        album: Album = dspy.InputField()
        cover: dspy.Image = dspy.InputField()
        text: str = dspy.OutputField()

    album = Album(images=[dspy.Image("https://x/1.jpg"), dspy.Image("https://x/2.jpg")], tag="t")
    for adapter in (dspy.ChatAdapter(), dspy.JSONAdapter()):
        messages = adapter.format(Describe, [], {"album": album, "cover": dspy.Image("https://x/c.jpg")})
        content = messages[-1]["content"]
        assert isinstance(content, list)
        urls = [p["image_url"]["url"] for p in content if p["type"] == "image_url"]
        assert urls == ["https://x/1.jpg", "https://x/2.jpg", "https://x/c.jpg"]
        assert all("textgrad_like.image" not in p.get("text", "") for p in content)
    assert album.model_dump(mode="json")["images"][0] == {"url": "https://x/1.jpg"}  # saving is unchanged


def test_image_in_a_string_signature_and_type_mismatch_warning(caplog):
    lm = DummyLM([{"answer": "a dog"}, {"answer": "?"}])
    program = dspy.Predict("question: dspy.Image -> answer")
    with dspy.context(lm=lm), caplog.at_level(logging.WARNING):
        assert program(question=dspy.Image("https://x/dog.jpg")).answer == "a dog"
        assert "Type mismatch" not in caplog.text
        program(question="dog_image")
    assert "Type mismatch for field 'question': expected Image" in caplog.text


# --- small names and DummyLM --------------------------------------------------------------------------
def test_utils_exceptions_is_an_attribute():
    assert dspy.utils.exceptions.AdapterParseError is dspy.errors.AdapterParseError


def test_dummy_lm_replies_no_more_responses_when_used_up(caplog):
    program = dspy.Predict("q -> answer")
    with dspy.context(lm=DummyLM([{"answer": "1"}])), caplog.at_level(logging.WARNING):
        assert program(q="a").answer == "1"
        assert program(q="b").answer == "No more responses"
    assert "ran out of scripted answers" in caplog.text


# --- adapter choice -------------------------------------------------------------------------------------
class SpyAdapter(dspy.ChatAdapter):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __call__(self, *args, **kwargs):
        self.calls.append(kwargs.get("inputs"))
        return super().__call__(*args, **kwargs)


def test_adapter_precedence_and_explicit_none():
    lm = DummyLM([{"output": "x"}] * 4)
    in_settings, own, per_call = SpyAdapter(), SpyAdapter(), SpyAdapter()
    with dspy.context(lm=lm, adapter=in_settings):
        program = dspy.Predict("input -> output")
        program(input="q")
        program.adapter = own
        program(input="q")
        program(input="q", adapter=per_call)
        program(input="q", adapter=None)  # explicit None: skip the predictor's own adapter
    assert (len(in_settings.calls), len(own.calls), len(per_call.calls)) == (2, 1, 1)
    assert per_call.calls == [{"input": "q"}]  # called with keywords; ``adapter`` is not an input


def test_reset_clears_lm_adapter_and_dspy_lists():
    program = dspy.Predict("q -> a")
    program.lm, program.adapter, program.traces, program.train = DummyLM([]), SpyAdapter(), ["t"], ["e"]
    program.demos = [{"q": "1", "a": "2"}]
    program.reset()
    assert (program.lm, program.adapter, program.traces, program.train, list(program.demos)) == (None, None, [], [], [])


# --- text completions read <provider>_API_KEY as DSPy ----------------------------------------------------
def test_text_model_takes_key_and_base_from_provider_env(monkeypatch):
    monkeypatch.setenv("openai_API_KEY", "sk-from-env")
    monkeypatch.delenv("openai_API_BASE", raising=False)
    lm = dspy.LM("openai/gpt-3.5-turbo-instruct", model_type="text", cache=False)
    with mock.patch("litellm.text_completion", return_value={"choices": [{"text": "hi"}], "usage": {}}) as call:
        assert lm(prompt="hello") == ["hi"]
    assert call.call_args.kwargs["api_key"] == "sk-from-env"
    assert call.call_args.kwargs["api_base"] is None
    assert all(e.get("kwargs", {}).get("api_key") is None for e in lm.history)


# --- dspy.Type and Code ---------------------------------------------------------------------------------
def test_code_keeps_only_the_fenced_code():
    assert dspy.Code(code="```python\nprint('hi')```").code == "print('hi')"
    assert dspy.Code(code="The code is:\n```python\nprint(1)\n```\nIt prints 1.").code == "print(1)"
    assert dspy.Code(code="x = 1").code == "x = 1"


def test_custom_type_docstring_stays_out_of_the_schema_and_format_is_used():
    class Temperature(dspy.Type):
        """Developer notes that must not reach the LM."""

        celsius: float

        def format(self):
            return f"{self.celsius} °C"

    class Explicit(dspy.Type):
        """Developer notes."""

        model_config = pydantic.ConfigDict(json_schema_extra={"description": "shown to the LM"})
        value: str

    assert "description" not in pydantic.TypeAdapter(Temperature).json_schema()
    assert pydantic.TypeAdapter(Explicit).json_schema()["description"] == "shown to the LM"

    class Report(dspy.Signature):
        reading: Temperature = dspy.InputField()
        advice: str = dspy.OutputField()

    content = dspy.ChatAdapter().format(Report, [], {"reading": Temperature(celsius=21.5)})[-1]["content"]
    assert "21.5 °C" in content
