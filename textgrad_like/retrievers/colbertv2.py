"""Client for the ColBERTv2 search protocol, as served by the public ``wiki17_abstracts`` index.

The protocol is one HTTP endpoint:

* ``GET <url>?query=<text>&k=<n>``, or ``POST <url>`` with the JSON body ``{"query": ..., "k": ...}``;
* the reply is JSON ``{"topk": [{"text": ..., "pid": ..., "score": ..., ...}, ...]}``, or
  ``{"error": true, "message": ...}`` when the server refuses the request.

:class:`ColBERTv2` returns the passages as :class:`dotdict` objects (``p.text`` and ``p["text"]``
both work), each with a ``long_text`` copy of ``text`` as DSPy's client adds, or as plain strings
with ``simplify=True``. Identical requests are answered from an in-process LRU cache.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ..errors import ConfigurationError, TextgradLikeError

__all__ = [
    "ColBERTv2",
    "RetrievalError",
    "RetrieverConnectionError",
    "clear_request_cache",
    "dotdict",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
MAX_K = 100
_CACHE_SIZE = 4096


class RetrievalError(TextgradLikeError, RuntimeError):
    """A retriever could not answer: the server refused the query or sent something unusable."""


class RetrieverConnectionError(RetrievalError, ConnectionError):
    """The retrieval server could not be reached (wrong URL or port, server down, timeout)."""


class dotdict(dict):  # noqa: N801 - DSPy's public name
    """A dict whose keys can also be read and written as attributes: ``p.text == p["text"]``."""

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__") and key.endswith("__"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no key {key!r}; keys: {list(self)}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        try:
            del self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __deepcopy__(self, memo: dict[int, Any]) -> dotdict:
        return dotdict(copy.deepcopy(dict(self), memo))


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigurationError(f"k must be a positive integer, got {k!r}")
    if k > MAX_K:
        raise ConfigurationError(f"k={k} is too large: ColBERTv2 servers answer at most k={MAX_K} passages")
    return k


def _http(url: str, query: str, k: int, post: bool, timeout: float) -> bytes:
    """Send one request and return the raw body; connection problems become RetrieverConnectionError."""
    try:
        import requests
    except ImportError:
        requests = None  # type: ignore[assignment]

    if requests is not None:
        try:
            if post:
                response = requests.post(url, json={"query": query, "k": k}, timeout=timeout)
            else:
                response = requests.get(url, params={"query": query, "k": k}, timeout=timeout)
        except requests.exceptions.RequestException as exc:
            raise RetrieverConnectionError(
                f"Could not reach the ColBERTv2 server at {url}: {exc}. Check the url and port, and that "
                "the server is running (e.g. `python -m textgrad_like.retrievers.server --port 8893`)."
            ) from exc
        status, body = response.status_code, response.content
    else:
        if post:
            data = json.dumps({"query": query, "k": k}).encode("utf-8")
            request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        else:
            sep = "&" if urllib.parse.urlsplit(url).query else "?"
            request = urllib.request.Request(url + sep + urllib.parse.urlencode({"query": query, "k": k}))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise RetrieverConnectionError(
                f"Could not reach the ColBERTv2 server at {url}: {exc}. Check the url and port, and that "
                "the server is running."
            ) from exc
    if status >= 400:
        detail = _error_message(body)
        raise RetrievalError(f"ColBERTv2 server at {url} answered HTTP {status}: {detail}")
    return body


def _error_message(body: bytes) -> str:
    try:
        payload = json.loads(body)
    except ValueError:
        return body[:300].decode("utf-8", "replace")
    if isinstance(payload, dict) and payload.get("message"):
        return str(payload["message"])
    return str(payload)[:300]


def _parse(url: str, body: bytes, k: int) -> tuple[dict[str, Any], ...]:
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise RetrievalError(
            f"ColBERTv2 server at {url} did not send JSON ({exc}); first bytes: {body[:200]!r}. "
            "Check that the url points at a ColBERTv2 search endpoint."
        ) from exc
    if not isinstance(payload, dict):
        raise RetrievalError(f"ColBERTv2 server at {url} sent {type(payload).__name__}, expected an object with 'topk'")
    if payload.get("error"):
        raise RetrievalError(f"ColBERTv2 server at {url} returned an error: {payload.get('message', 'no message')}")
    topk = payload.get("topk")
    if not isinstance(topk, list):
        raise RetrievalError(
            f"ColBERTv2 server at {url} sent no 'topk' list; keys were {sorted(payload)}. "
            "Check that the url points at a ColBERTv2 search endpoint."
        )
    passages = []
    for item in topk[:k]:
        if not isinstance(item, dict) or "text" not in item:
            raise RetrievalError(f"ColBERTv2 server at {url} sent a passage without 'text': {str(item)[:200]}")
        passages.append({**item, "long_text": item["text"]})
    return tuple(passages)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _cached_search(url: str, query: str, k: int, post: bool, timeout: float) -> tuple[dict[str, Any], ...]:
    return _parse(url, _http(url, query, k, post, timeout), k)


def clear_request_cache() -> None:
    """Forget every cached ColBERTv2 reply (e.g. after the index behind a url changed)."""
    _cached_search.cache_clear()


class ColBERTv2:
    """A retriever that asks a ColBERTv2 server for the top-k passages of a query.

    Args:
        url: the search endpoint, e.g. ``"http://127.0.0.1:8893/wiki17_abstracts"``.
        port: appended to ``url`` as ``url:port`` when given (DSPy's convention).
        post_requests: send ``POST`` with a JSON body instead of ``GET`` with query parameters.
        timeout: seconds to wait for the server.

    ``retriever("query", k=3)`` returns a list of :class:`dotdict` passages with ``text``,
    ``long_text``, ``pid`` and ``score`` (plus whatever else the server sends);
    ``simplify=True`` returns the passage texts only.
    """

    def __init__(
        self,
        url: str = "http://0.0.0.0",
        port: str | int | None = None,
        post_requests: bool = False,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if not isinstance(url, str) or not url.strip():
            raise ConfigurationError("ColBERTv2 needs a url, e.g. ColBERTv2(url='http://127.0.0.1:8893/wiki17_abstracts')")
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"ColBERTv2 url must start with http:// or https://, got {url!r}")
        if timeout <= 0:
            raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.post_requests = bool(post_requests)
        self.timeout = float(timeout)
        self.url = f"{url}:{port}" if port else url

    def __call__(self, query: str, k: int = 10, simplify: bool = False) -> list[str] | list[dotdict]:
        if not isinstance(query, str):
            raise ConfigurationError(f"query must be a string, got {type(query).__name__}")
        k = _check_k(k)
        passages = _cached_search(self.url, query, k, self.post_requests, self.timeout)
        if simplify:
            return [p["long_text"] for p in passages]
        # Fresh copies, so a caller editing a result cannot change what the cache returns next time.
        return [dotdict(copy.deepcopy(p)) for p in passages]

    def __repr__(self) -> str:
        method = "POST" if self.post_requests else "GET"
        return f"ColBERTv2(url={self.url!r}, method={method})"
