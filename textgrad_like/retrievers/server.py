"""Serve any retriever over the ColBERTv2 search protocol, with the standard library only.

Command line (serves the bundled encyclopedia abstracts with BM25 by default)::

    python -m textgrad_like.retrievers.server --port 8893
    python -m textgrad_like.retrievers.server --corpus passages.jsonl --port 8893 --retriever embeddings

then ``ColBERTv2(url="http://127.0.0.1:8893/wiki17_abstracts")``. Any path is accepted. In Python::

    with RetrieverServer(BM25Retriever(passages)) as server:
        rm = ColBERTv2(url=server.url)

Requests: ``GET /<anything>?query=...&k=...`` or ``POST`` with ``{"query": ..., "k": ...}``. Replies:
``{"topk": [{"text", "pid", "rank", "score", "prob"}], "query": ..., "latency": seconds}``, or HTTP 400
with ``{"error": true, "message": ...}``. It binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import ConfigurationError, TextgradLikeError
from .colbertv2 import MAX_K

__all__ = ["RetrieverServer", "main", "make_server", "search_payload"]

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8893
DEFAULT_PATH = "/wiki17_abstracts"
MAX_BODY_BYTES = 1 << 20

Retriever = Callable[..., Any]


class _BadRequest(Exception):
    pass


def _passages(results: Any) -> list[dict[str, Any]]:
    passages = []
    for index, item in enumerate(results or []):
        if isinstance(item, str):
            passages.append({"text": item, "pid": index, "score": 0.0})
        elif isinstance(item, dict):
            text = item.get("text", item.get("long_text"))
            if not isinstance(text, str):
                raise TextgradLikeError(f"The retriever returned a passage without text: {str(item)[:200]}")
            passages.append({"text": text, "pid": item.get("pid", index), "score": float(item.get("score", 0.0))})
        else:
            raise TextgradLikeError(f"The retriever returned a {type(item).__name__}; expected str or dict passages")
    return passages


def search_payload(retriever: Retriever, query: str, k: int) -> dict[str, Any]:
    """Run ``retriever(query, k=k)`` and shape the answer as a ColBERTv2 reply."""
    start = time.perf_counter()
    passages = _passages(retriever(query, k=k))[:k]
    if passages:
        top = max(p["score"] for p in passages)
        weights = [math.exp(p["score"] - top) for p in passages]
        total = sum(weights)
        for rank, (passage, weight) in enumerate(zip(passages, weights, strict=True), start=1):
            passage["rank"] = rank
            passage["prob"] = weight / total
    return {"query": query, "topk": passages, "latency": time.perf_counter() - start}


def _read_k(raw: Any, default_k: int) -> int:
    if raw is None or raw == "":
        return default_k
    try:
        k = int(raw)
    except (TypeError, ValueError):
        raise _BadRequest(f"k must be an integer, got {raw!r}") from None
    if not 1 <= k <= MAX_K:
        raise _BadRequest(f"k must be between 1 and {MAX_K}, got {k}")
    return k


def _make_handler(retriever: Retriever, default_k: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "textgrad-like-retriever/1"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:
            logger.debug("%s - %s", self.address_string(), fmt % args)

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _answer(self, query: Any, raw_k: Any) -> None:
            try:
                if not isinstance(query, str) or not query.strip():
                    raise _BadRequest("missing 'query': send ?query=...&k=... or a JSON body {\"query\": ..., \"k\": ...}")
                payload = search_payload(retriever, query, _read_k(raw_k, default_k))
            except _BadRequest as exc:
                self._reply(400, {"error": True, "message": str(exc)})
                return
            except Exception as exc:  # the server must answer, whatever the retriever does
                logger.exception("retriever failed on %r", query)
                self._reply(500, {"error": True, "message": f"retriever failed: {type(exc).__name__}: {exc}"})
                return
            self._reply(200, payload)

        def do_GET(self) -> None:
            params = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            self._answer(params.get("query", [None])[0], params.get("k", [None])[0])

        def do_POST(self) -> None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY_BYTES:
                self._reply(400, {"error": True, "message": f"send a JSON body of 1 to {MAX_BODY_BYTES} bytes"})
                return
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                self._reply(400, {"error": True, "message": "the body is not valid JSON"})
                return
            if not isinstance(body, dict):
                self._reply(400, {"error": True, "message": "the body must be a JSON object with 'query' and 'k'"})
                return
            self._answer(body.get("query"), body.get("k"))

    return Handler


def make_server(retriever: Retriever, host: str = "127.0.0.1", port: int = 0, default_k: int = 10) -> ThreadingHTTPServer:
    """Build (not start) an HTTP server answering ColBERTv2 requests with ``retriever``.

    ``port=0`` picks a free port; read it back from ``server.server_address[1]``.
    """
    if not callable(retriever):
        raise ConfigurationError(f"retriever must be callable as retriever(query, k=...), got {type(retriever).__name__}")
    server = ThreadingHTTPServer((host, port), _make_handler(retriever, default_k))
    server.daemon_threads = True
    return server


class RetrieverServer:
    """Run :func:`make_server` in a background thread; use as a context manager or call :meth:`close`.

    Attributes:
        url: the search endpoint, e.g. ``http://127.0.0.1:40123/wiki17_abstracts``.
        port: the port actually bound.
    """

    def __init__(
        self,
        retriever: Retriever,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = DEFAULT_PATH,
        default_k: int = 10,
    ) -> None:
        self._server = make_server(retriever, host, port, default_k)
        self.host = host
        self.port = int(self._server.server_address[1])
        self.url = f"http://{host}:{self.port}/{path.lstrip('/')}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # so close() returns quickly
            name=f"retriever-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("Retriever server listening at %s", self.url)

    def close(self) -> None:
        """Stop serving and free the port."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> RetrieverServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RetrieverServer(url={self.url!r})"


def _build_retriever(kind: str, corpus: Any) -> Retriever:
    if kind == "bm25":
        from .bm25 import BM25Retriever

        return BM25Retriever(corpus)
    from .embeddings import EmbeddingsRetriever, HashingEmbedder

    if kind == "hashing":
        return EmbeddingsRetriever(corpus, embedder=HashingEmbedder())
    return EmbeddingsRetriever(corpus)  # "embeddings": the bundled MiniLM if installed


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point: ``python -m textgrad_like.retrievers.server --corpus FILE --port N``."""
    parser = argparse.ArgumentParser(description="Serve a local corpus over the ColBERTv2 search protocol.")
    parser.add_argument("--corpus", default=None, help="a .jsonl file (one {'text', 'title'?, 'pid'?} per line) or a "
                        "text file with one passage per line; default: the bundled encyclopedia abstracts")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    parser.add_argument("--retriever", choices=("bm25", "embeddings", "hashing"), default="bm25",
                        help="bm25 (default), embeddings (bundled MiniLM, else hashing) or hashing")
    parser.add_argument("--path", default=DEFAULT_PATH, help="path shown in the logged url (any path is served)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("bm25s").setLevel(args.log_level.upper())  # bm25s sets its own logger to DEBUG

    corpus = args.corpus
    if corpus is None:
        from ..datasets.multihop import WIKI_ABSTRACTS_PATH

        corpus = WIKI_ABSTRACTS_PATH
    retriever = _build_retriever(args.retriever, corpus)
    server = make_server(retriever, args.host, args.port)
    port = server.server_address[1]
    logger.info("Serving %d passages with %s at http://%s:%d/%s (Ctrl-C to stop)",
                len(getattr(retriever, "texts", [])), args.retriever, args.host, port, args.path.lstrip("/"))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        logger.info("Stopping")
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
