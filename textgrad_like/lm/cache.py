"""Response cache for LM calls: an in-memory LRU in front of an on-disk ``diskcache``.

Keys are a SHA-256 over every argument that changes the answer (model, messages, sampling
arguments, ``n``, ``rollout_id``...). Credentials (``api_key`` and similar) are removed before
hashing and are never stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from typing import Any

logger = logging.getLogger(__name__)

SECRET_KEYS = frozenset(
    {"api_key", "api_secret", "aws_secret_access_key", "aws_access_key_id", "aws_session_token",
     "azure_ad_token", "headers", "extra_headers", "token", "password", "vertex_credentials"}
)
# Arguments that do not change the reply and must not split the cache.
NON_SEMANTIC_KEYS = frozenset({"num_retries", "timeout", "request_timeout", "callbacks", "stream", "cache"})


def strip_secrets(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``kwargs`` without credentials."""
    return {k: v for k, v in kwargs.items() if k not in SECRET_KEYS and "api_key" not in k.lower()}


def cache_key(request: dict[str, Any]) -> str:
    clean = {k: v for k, v in strip_secrets(request).items() if k not in NON_SEMANTIC_KEYS}
    blob = json.dumps(clean, sort_keys=True, default=_json_default, ensure_ascii=False)
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


class Cache:
    """Thread-safe two-level cache. ``get`` returns None on a miss."""

    def __init__(self, enable_memory: bool = True, enable_disk: bool = True, disk_dir: str | None = None,
                 memory_max_entries: int = 100_000, disk_size_limit_bytes: int = 2**31) -> None:
        self.enable_memory = enable_memory
        self.enable_disk = enable_disk
        self.memory_max_entries = memory_max_entries
        self._memory: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._disk = None
        self.disk_dir = disk_dir or default_cache_dir()
        self._disk_size_limit = disk_size_limit_bytes

    def _disk_cache(self) -> Any:
        if not self.enable_disk:
            return None
        if self._disk is None:
            with self._lock:
                if self._disk is None:
                    try:
                        import diskcache

                        self._disk = diskcache.FanoutCache(directory=self.disk_dir, shards=8, timeout=2,
                                                           size_limit=self._disk_size_limit)
                    except Exception as exc:  # disk problems must not break calls
                        logger.warning("Disk cache at %s unavailable (%s); using memory only.", self.disk_dir, exc)
                        self.enable_disk = False
                        return None
        return self._disk

    def get(self, key: str) -> Any:
        if self.enable_memory:
            with self._lock:
                if key in self._memory:
                    self._memory.move_to_end(key)
                    return self._memory[key]
        disk = self._disk_cache()
        if disk is not None:
            try:
                value = disk.get(key)
            except Exception as exc:
                logger.warning("Disk cache read failed: %s", exc)
                value = None
            if value is not None and self.enable_memory:
                self._put_memory(key, value)
            return value
        return None

    def put(self, key: str, value: Any) -> None:
        if self.enable_memory:
            self._put_memory(key, value)
        disk = self._disk_cache()
        if disk is not None:
            try:
                disk.set(key, value)
            except Exception as exc:
                logger.warning("Disk cache write failed: %s", exc)

    def _put_memory(self, key: str, value: Any) -> None:
        with self._lock:
            self._memory[key] = value
            self._memory.move_to_end(key)
            while len(self._memory) > self.memory_max_entries:
                self._memory.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._memory.clear()
        disk = self._disk_cache()
        if disk is not None:
            disk.clear()


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
