"""Datasets: DataLoader, the Dataset base class, HotPotQA/GSM8K/MATH on local fixtures, bundled tasks.

Nothing here touches the network: the hub loaders are pointed at files under tests/fixtures/datasets
(same columns as the real hub datasets), and the hub is switched to offline mode.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from textgrad_like.datasets import (
    DATA_DIR_ENV,
    GSM8K,
    MATH,
    DataLoader,
    Dataset,
    DatasetLoadError,
    HotPotQA,
    bundled_names,
    extract_answer,
    gsm8k_metric,
    load_bundled,
    load_hf_splits,
    math_equivalence,
    parse_integer_answer,
    register_bundled,
)
from textgrad_like.datasets import bundled as bundled_mod
from textgrad_like.errors import ConfigurationError, TextgradLikeError
from textgrad_like.primitives.example import Example

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Make any accidental hub access fail fast instead of downloading."""
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)


@pytest.fixture
def cache(tmp_path):
    return {"cache_dir": str(tmp_path / "hf_cache")}


# --- Dataset base class -------------------------------------------------------------------------

class Toy(Dataset):
    def __init__(self, n: int = 20, **kwargs):
        super().__init__(**kwargs)
        self._train = [{"q": f"t{i}", "a": i} for i in range(n)]
        self._dev = [{"q": f"d{i}", "a": i} for i in range(n)]
        self._test = [{"q": f"s{i}", "a": i} for i in range(n)]


def test_dataset_sizes_seeds_and_inputs():
    ds = Toy(train_seed=1, train_size=5, eval_seed=2, dev_size=4, test_size=3, input_keys=["q"])
    assert (len(ds.train), len(ds.dev), len(ds.test)) == (5, 4, 3)
    ex = ds.train[0]
    assert isinstance(ex, Example)
    assert ex.input_keys == frozenset({"q"})
    assert set(ex.inputs().keys()) == {"q"} and set(ex.labels().keys()) == {"a"}
    assert ex.dspy_split == "train" and ds.dev[0].dspy_split == "dev"
    assert "dspy_uuid" not in ex.keys() and "dspy_uuid" in ex.keys(include_dspy=True)
    # same seed -> same order; a smaller size is a prefix of a larger one
    again = Toy(train_seed=1, train_size=12, eval_seed=2, input_keys=["q"])
    assert [e.q for e in again.train][:5] == [e.q for e in ds.train]
    assert ds.train is ds.train  # computed once
    # the dev and test shuffles share eval_seed
    assert [e.a for e in ds.dev][:3] == [e.a for e in ds.test]
    # a different train seed gives another order
    other = Toy(train_seed=2, train_size=12)
    assert [e.q for e in other.train] != [e.q for e in again.train]
    assert other.train[0].input_keys is None


def test_dataset_reset_seeds_and_errors():
    ds = Toy(train_size=5)
    first = [e.q for e in ds.train]
    ds.reset_seeds(train_seed=7, train_size=8)
    assert len(ds.train) == 8 and [e.q for e in ds.train][:5] != first
    assert ds.eval_seed == 0
    with pytest.raises(ConfigurationError, match="train_size"):
        Toy(train_size=-1)
    with pytest.raises(ConfigurationError, match="input_keys"):
        Toy(input_keys="q")

    class NoDev(Dataset):
        def __init__(self):
            super().__init__()
            self._train = [{"x": 1}]

    with pytest.raises(ConfigurationError, match="no 'dev' split"):
        _ = NoDev().dev


def test_prepare_by_seed():
    out = Toy.prepare_by_seed(train_seeds=[1, 2], train_size=3, dev_size=10, eval_seed=5, n=20)
    assert [len(t) for t in out.train_sets] == [3, 3]
    assert [len(e) for e in out.eval_sets] == [5, 5]
    assert {e.q for e in out.eval_sets[0]}.isdisjoint({e.q for e in out.eval_sets[1]})
    with pytest.raises(ConfigurationError, match="too small"):
        Toy.prepare_by_seed(train_seeds=[1], train_size=30, dev_size=10, n=20)


# --- DataLoader ------------------------------------------------------------------------------------

ROWS = [{"question": f"q{i}", "answer": str(i), "topic": "t" if i % 2 else "u"} for i in range(10)]


def test_from_json_csv_parquet_pandas(tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(ROWS)
    json_path, csv_path, pq_path = tmp_path / "d.jsonl", tmp_path / "d.csv", tmp_path / "d.parquet"
    df.to_json(json_path, orient="records", lines=True)
    df.to_csv(csv_path, index=False)
    df.to_parquet(pq_path)
    dl = DataLoader()
    for loaded in (dl.from_json(str(json_path), input_keys=("question",)),
                   dl.from_parquet(str(pq_path), input_keys=("question",)),
                   dl.from_pandas(df, input_keys=("question",))):
        assert len(loaded) == 10
        assert loaded[3].question == "q3" and str(loaded[3].answer) == "3"
        assert set(loaded[3].inputs().keys()) == {"question"}
        assert set(loaded[3].keys()) == {"question", "answer", "topic"}
    from_csv = dl.from_csv(str(csv_path), fields=["question", "topic"], input_keys=("question",))
    assert set(from_csv[0].keys()) == {"question", "topic"}
    assert [e.question for e in from_csv] == [r["question"] for r in ROWS]
    with pytest.raises(ConfigurationError, match="not in the DataFrame"):
        dl.from_pandas(df, fields=["nope"])
    with pytest.raises(ConfigurationError, match="'nope' is not in the data"):
        dl.from_json(str(json_path), fields=["nope"])


def test_from_huggingface_splits_and_fields(tmp_path, cache):
    files = {}
    for split, rows in (("train", ROWS[:7]), ("test", ROWS[7:])):
        files[split] = str(tmp_path / f"{split}.jsonl")
        Path(files[split]).write_text("".join(json.dumps(r) + "\n" for r in rows))
    dl = DataLoader()
    all_splits = dl.from_huggingface("json", data_files=files, input_keys=("question",), **cache)
    assert set(all_splits) == {"train", "test"}
    assert [len(all_splits["train"]), len(all_splits["test"])] == [7, 3]
    assert all_splits["test"][0].inputs().toDict() == {"question": "q7"}
    one = dl.from_huggingface("json", data_files=files, split="train", fields=("question", "answer"), **cache)
    assert isinstance(one, list) and len(one) == 7
    assert set(one[0].keys()) == {"question", "answer"} and one[0].input_keys == frozenset()
    listed = dl.from_huggingface("json", data_files=files, split=["test", "train"], **cache)
    assert list(listed) == ["test", "train"] and len(listed["test"]) == 3
    with pytest.raises(ConfigurationError, match="tuple"):
        dl.from_huggingface("json", data_files=files, fields="question")
    with pytest.raises(ConfigurationError, match="tuple"):
        dl.from_huggingface("json", data_files=files, input_keys="question")


def _save_banking77(tmp_path: Path) -> tuple[Path, list[str]]:
    """A local Banking77 stand-in: same columns as PolyAI/banking77 (text, label as a ClassLabel)."""
    import datasets

    names = json.loads((FIXTURES / "banking77" / "label_names.json").read_text())
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)})
    splits = {}
    for split in ("train", "test"):
        rows = [json.loads(line) for line in (FIXTURES / "banking77" / f"{split}.jsonl").read_text().splitlines()]
        splits[split] = datasets.Dataset.from_dict(
            {"text": [r["text"] for r in rows], "label": [r["label"] for r in rows]}, features=features)
    target = tmp_path / "banking77"
    datasets.DatasetDict(splits).save_to_disk(str(target))
    return target, names


def test_banking77_snippet_pattern(tmp_path, cache):
    from datasets import load_dataset

    path, names = _save_banking77(tmp_path)
    classes = load_dataset(str(path), split="train", **cache).features["label"].names
    assert classes == names
    loaded = DataLoader().from_huggingface(
        dataset_name=str(path), fields=("text", "label"), input_keys=("text",), split="train",
        trust_remote_code=True, **cache,
    )
    assert len(loaded) == 12
    trainset = [Example(x, hint=classes[x.label], label=classes[x.label]).with_inputs("text", "hint")
                for x in loaded[:1000]]
    assert trainset[0].text == "I am still waiting on my card?"
    assert trainset[0].label == "activate_my_card" and trainset[-1].label == names[5]
    assert set(trainset[4].inputs().keys()) == {"text", "hint"}
    assert trainset[4].labels().toDict() == {"label": "apple_pay_or_google_pay"}


def test_trust_remote_code_is_dropped_when_unsupported(monkeypatch):
    import datasets

    from textgrad_like.datasets import dataloader

    seen = {}

    def fake_load_dataset(path, name=None, split=None, **kwargs):  # a datasets without trust_remote_code
        seen.update(kwargs)
        return datasets.Dataset.from_dict({"text": ["a"], "label": [0]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    out = dataloader.DataLoader().from_huggingface("x", split="train", trust_remote_code=True, revision="main")
    assert "trust_remote_code" not in seen and seen["revision"] == "main"
    assert out[0].text == "a"

    def old_load_dataset(path, name=None, split=None, trust_remote_code=None, **kwargs):
        seen["trc"] = trust_remote_code
        return datasets.Dataset.from_dict({"text": ["b"]})

    monkeypatch.setattr(datasets, "load_dataset", old_load_dataset)
    assert dataloader.DataLoader().from_huggingface("x", split="train", trust_remote_code=True)[0].text == "b"
    assert seen["trc"] is True


def test_sample_and_train_test_split():
    data = [Example(i=i).with_inputs("i") for i in range(20)]
    dl = DataLoader()
    random.seed(123)
    picked = dl.sample(data, 5)
    assert len(picked) == 5 and len({e.i for e in picked}) == 5
    with pytest.raises(ConfigurationError, match="list"):
        dl.sample(iter(data), 2)
    with pytest.raises(ConfigurationError, match="Cannot sample"):
        dl.sample(data, 21)

    state = random.getstate()
    a = dl.train_test_split(data, train_size=0.75, random_state=3)
    assert random.getstate() == state  # a seeded split leaves the global RNG alone
    b = dl.train_test_split(data, train_size=0.75, random_state=3)
    assert [e.i for e in a["train"]] == [e.i for e in b["train"]]
    assert (len(a["train"]), len(a["test"])) == (15, 5)
    assert {e.i for e in a["train"]} | {e.i for e in a["test"]} == set(range(20))
    c = dl.train_test_split(data, train_size=10, test_size=0.25, random_state=0)
    assert (len(c["train"]), len(c["test"])) == (10, 5)
    assert [e.i for e in data] == list(range(20))  # input untouched
    for bad in ({"train_size": 1.5}, {"train_size": None}, {"train_size": 15, "test_size": 10},
                {"train_size": 5, "test_size": "x"}):
        with pytest.raises(ConfigurationError):
            dl.train_test_split(data, **bad)


def test_load_hf_splits_forms_and_offline_error(tmp_path, cache):
    files = {"train": str(FIXTURES / "gsm8k" / "main" / "train.jsonl")}
    assert len(list(load_hf_splits("openai/gsm8k", "main", data_files=files, **cache)["train"])) == 6
    single = load_hf_splits("x", data_files=FIXTURES / "gsm8k" / "main" / "test.jsonl", **cache)
    assert len(list(single["train"])) == 3
    with pytest.raises(ConfigurationError, match="format"):
        load_hf_splits("x", data_files="data.xyz")
    with pytest.raises(DatasetLoadError, match=DATA_DIR_ENV) as info:
        load_hf_splits("nobody-here/no-such-dataset", "main", local_name="gsm8k")
    assert isinstance(info.value, TextgradLikeError)


# --- HotPotQA --------------------------------------------------------------------------------------

def test_hotpotqa_from_local_folder(cache):
    ds = HotPotQA(path=FIXTURES / "hotpotqa", train_seed=1, train_size=10, eval_seed=2023, dev_size=10,
                  load_kwargs=cache)
    # 6 hard train questions -> 4 train (75%) + 2 dev; the 3 validation questions are the test set
    assert (len(ds.train), len(ds.dev), len(ds.test)) == (4, 2, 3)
    assert set(ds.train[0].keys()) == {"question", "answer"}
    assert set(ds.dev[0].keys()) == {"question", "answer", "gold_titles"}
    assert isinstance(ds.dev[0].gold_titles, set) and len(ds.dev[0].gold_titles) == 2
    assert set(ds.test[0].keys()) == {"id", "question", "answer", "type", "gold_titles"}
    assert ds.train[0].inputs().keys() == ["question"]
    easy_or_medium = {"What is the home stadium of the Redgate Rovers?", "What language is spoken in Valdoria?"}
    assert not easy_or_medium & {e.question for e in ds.train + ds.dev}
    test_by_id = {e.id: e for e in ds.test}
    assert test_by_id["hp0101"].gold_titles == {"Orin Museum", "Paul Hesse"}


def test_hotpotqa_options(cache, monkeypatch):
    full = HotPotQA(path=FIXTURES / "hotpotqa", keep_details=True, load_kwargs=cache)
    assert set(full.train[0].keys()) == {"id", "question", "answer", "type", "context", "gold_titles"}
    bare = HotPotQA(path=FIXTURES / "hotpotqa", keep_details=False, load_kwargs=cache)
    assert set(bare.dev[0].keys()) == {"question", "answer"}
    every_level = HotPotQA(path=FIXTURES / "hotpotqa", only_hard_examples=False, load_kwargs=cache)
    assert len(every_level.train) + len(every_level.dev) == 8
    no_dev = HotPotQA(path=FIXTURES / "hotpotqa", unofficial_dev=False, load_kwargs=cache)
    with pytest.raises(ConfigurationError, match="dev"):
        _ = no_dev.dev
    # data_files and the data-dir environment variable reach the same rows
    folder = FIXTURES / "hotpotqa" / "fullwiki"
    by_files = HotPotQA(data_files={"train": str(folder / "train.jsonl"),
                                    "validation": str(folder / "validation.jsonl")}, load_kwargs=cache)
    monkeypatch.setenv(DATA_DIR_ENV, str(FIXTURES))
    by_env = HotPotQA(load_kwargs=cache)
    assert [e.question for e in by_files.train] == [e.question for e in by_env.train]
    with pytest.raises(ConfigurationError, match="validation"):
        HotPotQA(data_files={"train": str(folder / "train.jsonl")}, load_kwargs=cache)


# --- GSM8K -------------------------------------------------------------------------------------------

def test_gsm8k_from_local_folder(cache):
    ds = GSM8K(path=FIXTURES / "gsm8k", train_size=4, dev_size=2, load_kwargs=cache)
    assert (len(ds.train), len(ds.dev), len(ds.test)) == (4, 2, 3)
    everything = {e.question: e for e in ds.train + ds.dev + ds.test}
    natalia = next(e for q, e in everything.items() if q.startswith("Natalia"))
    assert natalia.answer == "72"
    assert natalia.gold_reasoning.startswith("Natalia sold 48/2") and "####" not in natalia.gold_reasoning
    dealer = next(e for q, e in everything.items() if "dealer" in q)
    assert dealer.answer == "2400"
    assert natalia.inputs().toDict() == {"question": natalia.question}
    default = GSM8K(path=FIXTURES / "gsm8k", load_kwargs=cache)
    assert (len(default.train), len(default.dev)) == (6, 0)  # DSPy's 200/300 cut, on a tiny file
    with pytest.raises(ConfigurationError, match="####"):
        from textgrad_like.datasets.gsm8k import split_gsm8k_answer

        split_gsm8k_answer("no final marker 5")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 42.", 42),
        ("$1,234.50 in total", 1234),
        ("first 3 then 7\nlater 99", 7),
        ("no numbers here", 0),
        ("It is -5", -5),
        ("", 0),
        (18, 18),
    ],
)
def test_parse_integer_answer(text, expected):
    assert parse_integer_answer(text) == expected


def test_parse_integer_answer_all_lines_and_metric():
    assert parse_integer_answer("first 3\nlater 99", only_first_line=False) == 99
    gold = Example(question="q", answer="72")
    assert gsm8k_metric(gold, Example(answer="So she sold 72 clips."))
    assert gsm8k_metric(gold, Example(answer="72.0"))
    assert not gsm8k_metric(gold, Example(answer="71"))


# --- MATH --------------------------------------------------------------------------------------------

def test_math_from_local_folder(cache):
    ds = MATH("algebra", path=FIXTURES / "math", load_kwargs=cache)
    assert (len(ds.train), len(ds.dev), len(ds.test)) == (3, 3, 3)  # 9 test problems -> thirds
    answers = {e.question: e.answer for e in ds.train + ds.dev + ds.test}
    assert answers["Solve for $x$: $2x + 3 = 11$."] == "4"
    assert answers["What is $\\frac{1}{2} + \\frac{1}{4}$?"] == "\\frac{3}{4}"
    assert answers["A rectangle is 3 cm by 4 cm. What is its diagonal?"] == "5"
    ex = ds.train[0]
    assert ex.inputs().keys() == ["question"] and "reasoning" in ex.labels()
    assert ds.metric(ex, Example(answer=ex.answer))
    assert not ds.metric(ex, Example(answer="not it"))
    with pytest.raises(ConfigurationError, match="subject"):
        MATH("")


def test_extract_answer():
    assert extract_answer("so $\\boxed{\\frac{1}{2}}$.") == "\\frac{1}{2}"
    assert extract_answer("first \\boxed{1} then \\boxed{2}") == "2"
    assert extract_answer("area is \\boxed{12\\text{ square units}}") == "12"
    assert extract_answer("\\boxed{\\text{(C)}}") == "\\text{(C)}"
    assert extract_answer("no box") is None
    assert extract_answer("broken \\boxed{3") is None


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("\\frac{1}{2}", "\\dfrac{1}{2}"),
        ("\\frac12", "\\frac{1}{2}"),
        ("0.5", "\\frac{1}{2}"),
        ("1/2", "0.5"),
        ("x = 3", "3"),
        ("5 \\text{ cm}", "5"),
        ("90^\\circ", "90"),
        ("\\$10", "10"),
        ("1,000", "1000"),
        ("\\left( 1, 2 \\right)", "(1,2)"),
        ("\\sqrt3", "\\sqrt{3}"),
        (".5", "0.5"),
        ("\\text{(C)}", "(C)"),
        ("10\\%", "10"),
    ],
)
def test_math_equivalence_equal(a, b):
    assert math_equivalence(a, b) and math_equivalence(b, a)


@pytest.mark.parametrize(("a", "b"), [("3", "4"), ("\\frac{1}{2}", "\\frac{1}{3}"), ("(1,2)", "(2,1)"),
                                      ("x^2", "x^3"), ("3", None), ("\\frac{1}{0}", "0")])
def test_math_equivalence_different(a, b):
    assert not math_equivalence(a, b)


def test_math_equivalence_none():
    assert math_equivalence(None, None)


# --- bundled tasks ------------------------------------------------------------------------------------

def test_bundled_classification():
    task = load_bundled("classification")
    assert (len(task.train), len(task.dev), len(task.test)) == (50, 50, 50)
    assert task.labels == ["lost_card", "check_balance", "transfer_money", "request_refund", "change_pin"]
    for split in (task.train, task.dev, task.test):
        assert {e.label for e in split} == set(task.labels)
        assert all(sum(e.label == lab for e in split) == 10 for lab in task.labels)
    texts = [e.text for e in task.train + task.dev + task.test]
    assert len(set(texts)) == 150
    ex = task.train[0]
    assert ex.inputs().keys() == ["text"] and ex.labels().keys() == ["label"]
    assert task.metric(ex, Example(label=f" '{ex.label.upper()}' "))
    assert not task.metric(ex, Example(label="something_else"))
    assert "classification" in repr(task)


def test_bundled_arithmetic_is_consistent():
    task = load_bundled("arithmetic")
    assert (len(task.train), len(task.dev), len(task.test)) == (50, 50, 50)
    assert task.labels is None
    for ex in task.train + task.dev + task.test:
        assert ex.inputs().keys() == ["question"]
        assert int(ex.answer) >= 0
        # every "a op b = c" step in the worked reasoning is right, and the last result is the answer
        steps = re.findall(r"(\d+) ([-+*/]) (\d+) = (\d+)", ex.reasoning)
        assert steps
        for left, op, right, result in steps:
            value = {"+": int(left) + int(right), "-": int(left) - int(right), "*": int(left) * int(right),
                     "/": int(left) / int(right)}[op]
            assert value == int(result), ex.reasoning
        assert steps[-1][3] == ex.answer
        assert task.metric(ex, Example(answer=f"The answer is {ex.answer}."))
    assert len({e.question for e in task.train + task.dev + task.test}) == 150


def test_bundled_files_match_generators(tmp_path):
    written = bundled_mod.write_bundled_files(tmp_path)
    for path in written:
        shipped = bundled_mod.DATA_DIR / path.name
        assert shipped.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
            f"{shipped} is stale; run python -m textgrad_like.datasets.bundled")
    assert bundled_mod.classification_rows() == bundled_mod.classification_rows()  # deterministic


def test_bundled_registry():
    assert {"arithmetic", "classification"} <= set(bundled_names())
    with pytest.raises(ConfigurationError, match="No bundled task"):
        load_bundled("no_such_task")
    tiny = bundled_mod.BundledTask("tiny_test_task", [Example(x=1).with_inputs("x")], [], [], ("x",))
    register_bundled("tiny_test_task", lambda: tiny)
    try:
        assert load_bundled("tiny_test_task") is tiny
        with pytest.raises(ConfigurationError, match="overwrite"):
            register_bundled("tiny_test_task", lambda: tiny)
    finally:
        bundled_mod._REGISTRY.pop("tiny_test_task", None)
