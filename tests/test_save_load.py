"""Saving and loading programs: all-or-nothing loads, typed errors, pickles behind a flag, no credentials
written, and LM state in a file that never redirects calls."""

from __future__ import annotations

import json
import logging
import os

import pytest

import textgrad_like as dspy
from textgrad_like.errors import StateDictError
from textgrad_like.lm import LM
from textgrad_like.nn import IncompatibleKeys


class Pipeline(dspy.Module):
    def __init__(self):
        self.outline = dspy.ChainOfThought("topic -> title")
        self.drafts = [dspy.Predict("title -> content"), dspy.Predict("content -> summary")]

    def forward(self, topic):
        return self.drafts[1](content=self.drafts[0](title=self.outline(topic=topic).title).content)


class Other(dspy.Module):
    def __init__(self):
        self.classify = dspy.Predict("text -> label")

    def forward(self, text):
        return self.classify(text=text)


def _trained() -> Pipeline:
    m = Pipeline()
    m.outline.predict.instruction.value = "Write a catchy title."
    m.drafts[0].demos = [dspy.Example(title="t", content="c")]
    return m


# --- all or nothing (issue 18 item 6) ------------------------------------------------------------
def test_another_programs_state_file_is_refused_naming_the_mismatch(tmp_path):
    path = tmp_path / "pipeline.json"
    _trained().save(path)
    other = Other()
    before = other.state_dict()
    with pytest.raises(StateDictError, match="missing keys") as info:
        other.load(path)
    assert "classify" in info.value.missing_keys and "outline.predict" in info.value.unexpected_keys
    assert other.state_dict() == before
    # parameters outside predictors are checked the same way
    holder = Other()
    holder.note = dspy.nn.Variable("a note")
    holder.save(path)
    with pytest.raises(StateDictError, match="missing keys") as info:
        Other().load(path)
    assert info.value.unexpected_keys == ["note"]


def test_a_load_that_fails_midway_changes_nothing(tmp_path):
    path = tmp_path / "p.json"
    _trained().save(path)
    data = json.loads(path.read_text())
    data["outline.predict"]["signature"]["instructions"] = "HIJACKED"  # comes first, and is valid
    data["drafts[1]"]["demos"] = [{"content": "x"}, 5]  # comes last, and is not
    path.write_text(json.dumps(data))
    m = Pipeline()
    before = m.state_dict()
    with pytest.raises(StateDictError, match="demo"):
        m.load(path)
    assert m.outline.predict.instruction.value != "HIJACKED" and m.state_dict() == before
    # the same through load_state_dict
    bad = {**_trained().state_dict(), "outline.predict.instruction": "HIJACKED", "drafts[1].demos": [{"c": 1}, 5]}
    with pytest.raises(StateDictError, match=r"drafts\[1\]\.demos"):
        m.load_state_dict(bad)
    assert m.state_dict() == before
    state = _trained().dump_state()
    state["outline.predict"]["signature"]["instructions"] = "HIJACKED"
    state["drafts[1]"]["demos"] = "not a list"
    with pytest.raises(StateDictError):
        m.load_state(state)
    assert m.state_dict() == before


def test_a_5000_digit_number_is_a_typed_error(tmp_path):
    path = tmp_path / "big.json"
    path.write_text('{"outline.predict": {"demos": [{"n": ' + "9" * 5000 + "}]}}")
    with pytest.raises(StateDictError, match="invalid JSON"):
        Pipeline().load(path)
    with pytest.raises(StateDictError):
        Pipeline().load(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(StateDictError):
        Pipeline().load(tmp_path / "list.json")


def test_load_state_dict_returns_torchs_incompatible_keys():
    m = _trained()
    state = m.state_dict()
    fresh = Pipeline()
    result = fresh.load_state_dict(state)
    assert result == IncompatibleKeys([], []) and result.missing_keys == [] and result.unexpected_keys == []
    partial = {"outline.predict.instruction": "x", "nope": "y"}
    with pytest.raises(StateDictError) as info:
        fresh.load_state_dict(partial)
    assert info.value.unexpected_keys == ["nope"] and "drafts[0].demos" in info.value.missing_keys
    missing, unexpected = fresh.load_state_dict(partial, strict=False)
    assert unexpected == ["nope"] and "drafts[0].demos" in missing
    assert fresh.outline.predict.instruction.value == "x"


# --- formats (issue 17) ---------------------------------------------------------------------------------
def test_pkl_state_needs_allow_pickle(tmp_path):
    m = _trained()
    path = tmp_path / "p.pkl"
    m.save(path)
    with pytest.raises(StateDictError, match="allow_pickle"):
        Pipeline().load(path)
    loaded = Pipeline().load(path, allow_pickle=True)
    assert loaded.state_dict() == m.state_dict()
    with pytest.raises(StateDictError, match=".json or .pkl"):
        m.save(tmp_path / "p.txt")


def test_save_program_writes_a_directory_as_dspy(tmp_path):
    m = _trained()
    m.save(tmp_path / "prog", save_program=True)
    meta = json.loads((tmp_path / "prog" / "metadata.json").read_text())
    assert "python" in meta["dependency_versions"]
    with pytest.raises(StateDictError, match="allow_pickle"):
        dspy.load(tmp_path / "prog")
    again = dspy.load(tmp_path / "prog", allow_pickle=True)
    assert isinstance(again, Pipeline) and again.state_dict() == m.state_dict()
    with pytest.raises(StateDictError, match="directory"):
        m.save(tmp_path / "prog.json", save_program=True)
    with pytest.raises(StateDictError, match="directory"):
        Pipeline().load(tmp_path / "prog")


# --- LM state in a file (issue 17) and credentials (issue 18 item 4) -------------------------------------
def test_saved_lm_endpoints_and_credentials_never_redirect_calls(tmp_path, caplog):
    m = Other()
    m.classify.lm = LM("openai/gpt-4o-mini", temperature=0.2)
    path = tmp_path / "p.json"
    m.save(path)
    data = json.loads(path.read_text())
    data["classify"]["lm"].update(api_base="https://user:pw123456@evil.invalid/v1", api_key="sk-injected-123456",
                                   client_secret="cs-injected-123456", headers={"Authorization": "Bearer x"})
    path.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING):
        loaded = Other().load(path)
    lm = loaded.classify.lm
    assert lm.kwargs.get("temperature") == 0.2
    assert not {"api_base", "api_key", "client_secret", "headers"} & set(lm.kwargs)
    assert "allow_unsafe_lm_state" in caplog.text
    trusted = Other().load(path, allow_unsafe_lm_state=True).classify.lm
    assert trusted.kwargs["api_base"] == "https://evil.invalid/v1"  # the endpoint, without the credentials
    assert not {"api_key", "client_secret", "headers"} & set(trusted.kwargs)
    # the same LM settings: the predictor keeps its own LM object
    mine = LM("openai/gpt-4o-mini", temperature=0.2)
    keep = Other()
    keep.classify.lm = mine
    keep.load(tmp_path / "p.json")
    assert keep.classify.lm is mine


SECRETS = {"api_key": "sk-secret-AAAAAA", "client_secret": "cs-secret-BBBBBB", "azure_password": "az-secret-CCCCCC",
           "api_token": "tok-secret-DDDDDD", "aws_secret_access_key": "aws-secret-EEEEEE"}


def _files(folder):
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), "rb") as f:
                yield name, f.read()


def test_no_credential_reaches_saved_json_or_pickles(tmp_path):
    m = Other()
    m.classify.lm = LM("openai/gpt-4o-mini", api_base="https://bob:pw-secret-FFFFFF@proxy.invalid/v1", **SECRETS)
    m.classify.config = {"api_key": "sk-config-GGGGGG", "temperature": 0.1}
    m.save(tmp_path / "p.json")
    m.save(tmp_path / "p.pkl")
    m.save(tmp_path / "prog", save_program=True)
    values = [*SECRETS.values(), "pw-secret-FFFFFF", "sk-config-GGGGGG"]
    for name, blob in _files(tmp_path):
        for value in values:
            assert value.encode() not in blob, (name, value)
    # the program still works as before: the live objects keep their credentials
    assert m.classify.lm.kwargs["api_key"] == SECRETS["api_key"] and m.classify.config["api_key"] == "sk-config-GGGGGG"
    loaded = dspy.load(tmp_path / "prog", allow_pickle=True)
    assert "api_key" not in loaded.classify.config and loaded.classify.config["temperature"] == 0.1


def test_a_custom_lm_class_in_a_file_is_never_rebuilt_as_another_lm(tmp_path, caplog):
    from textgrad_like.utils import DummyLM

    m = Other()
    m.classify.lm = DummyLM([{"label": "x"}])
    path = tmp_path / "p.json"
    m.save(path)
    assert json.loads(path.read_text())["classify"]["lm"]["_dspy_lm_class"].endswith("DummyLM")
    fresh = Other()
    with pytest.raises(StateDictError, match="Refusing to import custom serialized LM class"):
        fresh.load(path)  # as DSPy: a custom class is imported only with allow_unsafe_lm_state=True
    assert fresh.classify.lm is None  # all or nothing
    mine = DummyLM([{"label": "y"}])
    own = Other()
    own.classify.lm = mine
    assert own.load(path).classify.lm is mine


def test_a_value_json_cannot_hold_is_a_typed_error_and_leaves_no_file(tmp_path):
    m = Other()
    m.classify.demos = [{"text": {1, 2}, "label": "a set"}]
    with pytest.raises(StateDictError, match=".pkl"):
        m.save(tmp_path / "p.json")
    assert not (tmp_path / "p.json").exists() and os.listdir(tmp_path) == []
    m.save(tmp_path / "p.pkl")
    assert Other().load(tmp_path / "p.pkl", allow_pickle=True).classify.demos[0].text == {1, 2}
