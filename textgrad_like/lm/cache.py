"""Response cache for LM calls: an in-memory LRU in front of an on-disk ``diskcache``.

Keys are a SHA-256 over every argument that changes the answer (model, messages, sampling
arguments, ``n``, ``rollout_id``...). Credentials (see :mod:`textgrad_like.lm.secrets`) are removed
before hashing and are never stored.

The disk level holds **data only**: each reply is written as JSON text, and an entry that is not
(a pickle, e.g. from a cache directory someone sent you, or a file outside the shard) is refused,
logged and deleted — reading a cache never runs code. The same store is the checkpoint call journal.
The disk level is split into shards (one SQLite database each); a damaged shard is rebuilt empty on
its own, with one log line, while the others keep their entries.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import threading
from collections import OrderedDict
from typing import Any

from ..errors import InputError
from .secrets import CREDENTIAL_NAMES, is_secret_key, strip_mapping

logger = logging.getLogger(__name__)

SECRET_KEYS = CREDENTIAL_NAMES  # kept for code that imported it; ``is_secret_key`` is the full test
# Arguments that do not change the reply and must not split the cache.
NON_SEMANTIC_KEYS = frozenset({"num_retries", "timeout", "request_timeout", "callbacks", "stream", "cache"})
# request fields hashed exactly as given (the prompt text itself)
_CONTENT_KEYS = frozenset({"messages", "prompt"})
SHARDS = 8
_FORMAT = "textgrad_like.lm_response/1"


def strip_secrets(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``kwargs`` without credentials (nested ones too; passwords and tokens inside URLs
    such as ``api_base`` are replaced by ``***``)."""
    return strip_mapping(dict(kwargs))


def cache_key(request: dict[str, Any]) -> str:
    clean = {k: (v if k in _CONTENT_KEYS else strip_mapping(v)) for k, v in request.items()
             if k not in NON_SEMANTIC_KEYS and not is_secret_key(k)}
    try:
        blob = json.dumps(clean, sort_keys=True, default=_json_default, ensure_ascii=False)
    except (ValueError, RecursionError, TypeError) as exc:
        raise InputError(f"The LM request cannot be hashed for the cache ({type(exc).__name__}: {exc}); an input "
                         "holds a cyclic or too deeply nested value. Pass plain text or JSON-like values.") from exc
    # surrogatepass: a lone surrogate in an input ("\udcff") still hashes instead of raising
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


def _json_default(value: Any) -> Any:
    if hasattr(value, "model_json_schema"):
        return value.model_json_schema()
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if isinstance(value, (set, frozenset)):
        return sorted(map(str, value))
    return repr(value)


def default_cache_dir() -> str:
    return os.environ.get("TEXTGRAD_LIKE_CACHEDIR") or os.path.join(os.path.expanduser("~"), ".textgrad_like_cache")


# --- what an entry on disk is: JSON text -----------------------------------------------------------

class _RefusedEntry(Exception):
    """An entry on disk that is not data we wrote (a pickle, a file outside the shard)."""


def encode_entry(value: Any) -> str:
    """The JSON text stored for ``value`` (an ``LMResponse`` or a JSON-like value)."""
    from .base import LMResponse

    if isinstance(value, LMResponse):
        body: dict[str, Any] = {"format": _FORMAT, "outputs": list(value.outputs),
                                "prompt_tokens": value.prompt_tokens, "completion_tokens": value.completion_tokens,
                                "cost": value.cost, "model": value.model, "extra": value.extra}
    else:
        body = {"format": "json", "value": value}
    # ensure_ascii: a lone surrogate in a reply is written escaped instead of failing the write
    return json.dumps(body, default=_json_default, ensure_ascii=True)


def decode_entry(text: Any) -> Any:
    """The value of an entry written by :func:`encode_entry`; raises ``_RefusedEntry`` otherwise."""
    from .base import LMResponse

    if not isinstance(text, str):
        raise _RefusedEntry(f"it holds {type(text).__name__}, not JSON text")
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _RefusedEntry(f"it is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise _RefusedEntry("it is not a JSON object")
    if body.get("format") == "json":
        return body.get("value")
    if body.get("format") != _FORMAT:
        raise _RefusedEntry("it was not written by textgrad_like")
    outputs = body.get("outputs")
    ints = (body.get("prompt_tokens"), body.get("completion_tokens"))
    cost = body.get("cost")
    if (not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs)
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in ints)
            or not (cost is None or isinstance(cost, (int, float)))
            or not isinstance(body.get("model", ""), str) or not isinstance(body.get("extra", {}), dict)):
        raise _RefusedEntry("its fields have the wrong types")
    return LMResponse(outputs=outputs, prompt_tokens=ints[0], completion_tokens=ints[1], cost=cost,
                      model=body.get("model", ""), extra=body.get("extra", {}))


@functools.cache
def _data_disk_class() -> Any:
    """A ``diskcache.Disk`` that stores text keys and text values and never unpickles."""
    import diskcache
    from diskcache.core import MODE_PICKLE, UNKNOWN

    class DataDisk(diskcache.Disk):
        def put(self, key: Any) -> Any:
            if not isinstance(key, str):
                raise TypeError("cache keys are strings")
            return super().put(key)

        def get(self, key: Any, raw: bool) -> Any:
            if not raw:
                raise _RefusedEntry("its key is a pickle")
            return super().get(key, raw)

        def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> Any:
            if read or not isinstance(value, str):
                raise TypeError("cache values are JSON text")
            return super().store(value, read, key=key)

        def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
            if mode == MODE_PICKLE:
                raise _RefusedEntry("it is a pickle")
            if filename is not None:
                root = os.path.realpath(self._directory)
                path = os.path.realpath(os.path.join(root, str(filename)))
                if os.path.commonpath([root, path]) != root:
                    raise _RefusedEntry("it points at a file outside the cache")
            return super().fetch(mode, filename, value, read)

    return DataDisk


def _read(shard: Any, key: str) -> Any:
    text = shard.get(key)
    return None if text is None else decode_entry(text)


def _is_damage(exc: BaseException) -> bool:
    """A database file that is not (or no longer) a valid SQLite database; a lock or a busy
    database (``OperationalError``) is not damage."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


class Cache:
    """Thread-safe two-level cache. ``get`` returns None on a miss."""

    def __init__(self, enable_memory: bool = True, enable_disk: bool = True, disk_dir: str | None = None,
                 memory_max_entries: int = 100_000, disk_size_limit_bytes: int = 2**31) -> None:
        self.enable_memory = enable_memory
        self.enable_disk = enable_disk
        self.memory_max_entries = memory_max_entries
        self._memory: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._shards: list[Any] | None = None
        self.disk_dir = disk_dir or default_cache_dir()
        self._disk_size_limit = disk_size_limit_bytes
        self._reported: set[str] = set()

    # --- the disk level ----------------------------------------------------------------------------
    def _shard_dir(self, index: int) -> str:
        return os.path.join(self.disk_dir, f"{index:03d}")

    def _open_shard(self, index: int) -> Any:
        import diskcache

        return diskcache.Cache(directory=self._shard_dir(index), timeout=2, disk=_data_disk_class(),
                               size_limit=max(1, self._disk_size_limit // SHARDS))

    def _open_or_rebuild(self, index: int) -> Any:
        try:
            return self._open_shard(index)
        except Exception as exc:
            if not _is_damage(exc):
                raise
            return self._rebuild(index, exc)

    def _rebuild(self, index: int, reason: BaseException, old: Any = None) -> Any:
        """Replace a damaged shard by an empty one (the other shards are untouched)."""
        if old is not None:
            try:
                old.close()
            except Exception:  # a damaged database may fail to close cleanly
                logger.debug("Closing damaged shard %s failed.", index, exc_info=True)
        shutil.rmtree(self._shard_dir(index), ignore_errors=True)
        self._report("damaged", logging.WARNING,
                     "Disk cache shard %s was damaged (%s: %s); rebuilt it empty. The other shards keep their "
                     "entries.", self._shard_dir(index), type(reason).__name__, reason)
        return self._open_shard(index)

    def _disk_shards(self) -> list[Any] | None:
        if not self.enable_disk:
            return None
        if self._shards is None:
            with self._lock:
                if self._shards is None and self.enable_disk:
                    try:
                        import diskcache  # noqa: F401

                        os.makedirs(self.disk_dir, exist_ok=True)
                        self._shards = [self._open_or_rebuild(i) for i in range(SHARDS)]
                    except Exception as exc:  # disk problems must not break calls
                        logger.warning("Disk cache at %s unavailable (%s); using memory only.", self.disk_dir, exc)
                        self.enable_disk = False
                        return None
        return self._shards

    @staticmethod
    def _index(key: str) -> int:
        try:
            return int(key[:8], 16) % SHARDS
        except ValueError:
            return int(hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:8], 16) % SHARDS

    def _with_shard(self, key: str, action: str, fn: Any) -> Any:
        """Run ``fn(shard)`` on the key's shard; rebuild the shard once if it turns out damaged."""
        shards = self._disk_shards()
        if shards is None:
            return None
        index = self._index(key)
        for attempt in (1, 2):
            shard = shards[index]
            try:
                return fn(shard)
            except Exception as exc:
                if attempt == 1 and _is_damage(exc):
                    with self._lock:
                        if shards[index] is shard:
                            try:
                                shards[index] = self._rebuild(index, exc, old=shard)
                            except Exception as again:
                                logger.warning("Disk cache shard %s could not be rebuilt (%s).",
                                               self._shard_dir(index), again)
                                return None
                    continue
                if isinstance(exc, _RefusedEntry):
                    raise
                logger.warning("Disk cache %s failed: %s", action, exc)
                return None
        return None

    def _report(self, kind: str, level: int, message: str, *args: Any) -> None:
        """Log ``message`` once per cache and kind (a damaged shard, refused entries)."""
        if kind in self._reported:
            logger.debug(message, *args)
            return
        self._reported.add(kind)
        logger.log(level, message, *args)

    # --- the public interface ------------------------------------------------------------------------
    def get(self, key: str) -> Any:
        if self.enable_memory:
            with self._lock:
                if key in self._memory:
                    self._memory.move_to_end(key)
                    return self._memory[key]
        if not self.enable_disk:
            return None
        try:
            value = self._with_shard(key, "read", lambda shard: _read(shard, key))
        except _RefusedEntry as exc:
            self._report("refused", logging.WARNING,
                         "Disk cache entry in %s refused and skipped: %s. The disk cache holds JSON data only "
                         "(a pickle, including one written by an older textgrad_like, or a foreign entry is never "
                         "loaded); such entries are deleted and their calls made again.", self.disk_dir, exc)
            self._with_shard(key, "delete", lambda shard: shard.delete(key))
            return None
        if value is not None and self.enable_memory:
            self._put_memory(key, value)
        return value

    def put(self, key: str, value: Any) -> None:
        if self.enable_memory:
            self._put_memory(key, value)
        if not self.enable_disk:
            return
        try:
            text = encode_entry(value)
        except (TypeError, ValueError, RecursionError) as exc:
            logger.warning("Disk cache write skipped: the value is not JSON data (%s).", exc)
            return
        self._with_shard(key, "write", lambda shard: shard.set(key, text))

    def _put_memory(self, key: str, value: Any) -> None:
        with self._lock:
            self._memory[key] = value
            self._memory.move_to_end(key)
            while len(self._memory) > self.memory_max_entries:
                self._memory.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._memory.clear()
        for shard in self._disk_shards() or []:
            shard.clear()

    def close(self) -> None:
        """Close the disk level's files (it reopens on next use)."""
        with self._lock:
            shards, self._shards = self._shards, None
        for shard in shards or []:
            try:
                shard.close()
            except Exception:
                logger.debug("Closing a disk cache shard failed.", exc_info=True)


_DEFAULT_CACHE: Cache | None = None
_DEFAULT_LOCK = threading.Lock()


def get_cache() -> Cache:
    """The process-wide cache shared by every LM (set up on first use)."""
    global _DEFAULT_CACHE
    if _DEFAULT_CACHE is None:
        with _DEFAULT_LOCK:
            if _DEFAULT_CACHE is None:
                disk = os.environ.get("TEXTGRAD_LIKE_DISK_CACHE", "1") not in ("0", "false", "False")
                _DEFAULT_CACHE = Cache(enable_disk=disk)
    return _DEFAULT_CACHE


def configure_cache(enable_disk_cache: bool | None = True, enable_memory_cache: bool | None = True,
                    disk_cache_dir: str | None = None, disk_size_limit_bytes: int | None = 2**31,
                    memory_max_entries: int = 100_000) -> Cache:
    """Replace the process-wide cache (DSPy's arguments), e.g. to move it or switch a level off."""
    global _DEFAULT_CACHE
    with _DEFAULT_LOCK:
        _DEFAULT_CACHE = Cache(enable_memory=bool(enable_memory_cache), enable_disk=bool(enable_disk_cache),
                               disk_dir=disk_cache_dir, memory_max_entries=memory_max_entries,
                               disk_size_limit_bytes=disk_size_limit_bytes or 2**31)
    return _DEFAULT_CACHE
