"""Credentials: which argument names hold them, and how to keep their values out of everything we write.

One module decides what a secret is, so the cache key, LM history, span attributes, saved programs,
checkpoints, logs and error messages all agree:

- :data:`CREDENTIAL_NAMES` — the credential arguments litellm accepts (its ``CredentialLiteLLMParams``
  and the provider keys of ``completion``), plus the usual HTTP header names;
- :func:`is_secret_key` — a name in that set, or a name with a word such as ``key``, ``secret``,
  ``token``, ``password``, ``credential(s)`` or ``auth`` in it (``api_token``, ``clientSecret``,
  ``x-api-key``); counts such as ``max_tokens`` are not secrets;
- :func:`redact_mapping` — a copy of a (nested) mapping with secret values replaced by
  :data:`REDACTED` and credentials inside URLs (``https://user:pass@host``, ``?key=...``) removed;
- :func:`strip_mapping` — the same, but secret entries are dropped (used for the cache key);
- :func:`secret_values` — the secret strings a mapping holds, to scrub them from free text with
  :func:`redact_text` (an error body that echoes the key).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["CREDENTIAL_NAMES", "REDACTED", "is_secret_key", "redact_mapping", "redact_text", "redact_url",
           "known_secrets", "scrub_exception", "secret_values", "strip_mapping"]

REDACTED = "***"

# litellm's credential arguments (litellm.types.router.CredentialLiteLLMParams and the provider
# keyword arguments of litellm.completion), written out so that importing this module stays cheap.
CREDENTIAL_NAMES = frozenset({
    "api_key", "api_secret", "api_token", "token", "password", "secret",
    "headers", "extra_headers", "authorization", "cookie",
    # Azure
    "azure_ad_token", "azure_ad_token_provider", "azure_password", "azure_username", "client_id",
    "client_secret", "tenant_id",
    # AWS / Bedrock / SageMaker / S3
    "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_web_identity_token",
    "s3_access_key_id", "s3_secret_access_key", "s3_encryption_key_id",
    # Vertex / Google
    "vertex_credentials", "vertex_ai_credentials",
    # Anthropic workload identity, OpenAI identity files
    "anthropic_identity_token", "anthropic_identity_token_file", "anthropic_keycloak_client_secret_ref",
    "anthropic_issuer_signing_key_ref", "openai_identity_token_file",
    # observability integrations litellm reads from kwargs
    "langfuse_public_key", "langfuse_secret", "langfuse_secret_key", "langsmith_api_key", "wandb_api_key",
    "dd_api_key", "humanloop_api_key", "posthog_api_key", "arize_api_key", "newrelic_api_key",
    "litellm_credential_name", "secret_fields",
})

# words that make a name a credential (matched against the words of the name, not substrings)
_SECRET_WORDS = frozenset({"key", "apikey", "secret", "secrets", "token", "password", "passwd", "pwd",
                           "passphrase", "credential", "credentials", "auth", "authorization", "cookie",
                           "bearer", "private"})
# extra words that mark a URL query parameter as a credential (Azure SAS ``sig=``, OAuth ``code=``)
_QUERY_SECRET_WORDS = frozenset({"sig", "signature", "code", "access_token", "session"})
# names with such a word that are not credentials and change the reply (they stay in cache keys)
_NOT_SECRET = frozenset({"bos_token", "eos_token", "pad_token", "unk_token", "stop_token", "sep_token",
                         "prompt_cache_key", "cache_key", "max_tokens", "max_new_tokens",
                         "max_completion_tokens", "token_ids", "logit_bias"})

_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
# the smallest secret value scrubbed from free text (shorter ones would blank ordinary words)
MIN_SECRET_LENGTH = 6


def _words(name: str) -> list[str]:
    return [w for w in _WORD_SPLIT.split(_CAMEL.sub("_", name).lower()) if w]


def is_secret_key(name: Any) -> bool:
    """True when an argument, header or query-parameter name holds a credential."""
    if not isinstance(name, str) or not name:
        return False
    lowered = name.lower().replace("-", "_")
    if lowered in _NOT_SECRET:
        return False
    if lowered in CREDENTIAL_NAMES:
        return True
    return any(w in _SECRET_WORDS for w in _words(name))


def _is_secret_query(name: str) -> bool:
    return is_secret_key(name) or any(w in _QUERY_SECRET_WORDS for w in _words(name))


def redact_url(url: str) -> str:
    """``url`` without a password (``user:pass@host`` → ``user:***@host``) or secret query values."""
    if not isinstance(url, str) or "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{REDACTED}@{host}" if ":" in userinfo else f"{REDACTED}@{host}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(_is_secret_query(k) for k, _ in pairs):
                query = urlencode([(k, REDACTED if _is_secret_query(k) else v) for k, v in pairs], safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return _URL_IN_TEXT.sub(REDACTED, url)


def _url_secrets(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        found.append(userinfo.split(":", 1)[1] if ":" in userinfo else userinfo)
    found.extend(v for k, v in parse_qsl(parts.query, keep_blank_values=True) if _is_secret_query(k))
    return found


def _clean(value: Any, drop: bool, depth: int, seen: set[int]) -> Any:
    if depth > 50 or id(value) in seen:
        return REDACTED if not drop else None
    if isinstance(value, str):
        return redact_url(value) if "://" in value else value
    if isinstance(value, Mapping):
        seen = seen | {id(value)}
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if is_secret_key(k):
                if not drop and v is not None:
                    out[k] = REDACTED
                continue
            out[k] = _clean(v, drop, depth + 1, seen)
        return out
    if isinstance(value, (list, tuple)):
        seen = seen | {id(value)}
        items = [_clean(v, drop, depth + 1, seen) for v in value]
        return items if isinstance(value, list) else tuple(items)
    return value


def redact_mapping(obj: Any) -> Any:
    """A copy of ``obj`` (dicts/lists nested) with every credential shown as ``***``."""
    return _clean(obj, False, 0, set())


def strip_mapping(obj: Any) -> Any:
    """A copy of ``obj`` (dicts/lists nested) with every credential removed (URLs are redacted)."""
    return _clean(obj, True, 0, set())


def secret_values(*objs: Any) -> list[str]:
    """The credential strings held in ``objs`` (mappings nested, URLs with passwords or tokens),
    longest first, for :func:`redact_text`."""
    found: set[str] = set()

    def walk(value: Any, secret: bool, depth: int) -> None:
        if depth > 50:
            return
        if isinstance(value, str):
            if secret:
                found.add(value)
                # "Bearer abc": the token alone may be echoed too
                parts = value.split()
                if len(parts) == 2:
                    found.add(parts[1])
            elif "://" in value:
                found.update(_url_secrets(value))
        elif isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, secret or is_secret_key(k), depth + 1)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, secret, depth + 1)

    for obj in objs:
        walk(obj, False, 0)
    return sorted((s for s in found if len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def known_secrets(*objs: Any) -> list[str]:
    """:func:`secret_values` of ``objs`` plus the values of credential environment variables
    (``OPENAI_API_KEY``...), which litellm reads when no key is passed."""
    env = {name: value for name, value in os.environ.items() if is_secret_key(name)}
    return secret_values(*objs, env)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret value replaced by ``***``, URLs redacted and
    ``Bearer <token>`` hidden."""
    if not isinstance(text, str):
        text = str(text)
    for secret in sorted({s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH},
                         key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    return _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)


def scrub_exception(exc: BaseException, secrets: Iterable[str]) -> BaseException:
    """Remove ``secrets`` from the message of ``exc`` and of the exceptions chained to it (in place).

    Returns ``exc``, so ``raise scrub_exception(exc, ...)`` keeps its type and traceback.
    """
    secrets = list(secrets)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        try:
            current.args = tuple(redact_text(a, secrets) if isinstance(a, str) else a for a in current.args)
            for attr in ("message", "body", "text"):
                value = getattr(current, attr, None)
                if isinstance(value, str):
                    setattr(current, attr, redact_text(value, secrets))
        except (AttributeError, TypeError):  # an exception type with read-only attributes
            pass
        current = current.__cause__ or current.__context__
    return exc
