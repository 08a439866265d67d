"""Constrained decoding: make a local model's output match a JSON schema, a regex or a list of choices.

Engine choice (measured on SmolLM2's 49,152-token vocabulary, 2 CPU cores, see benchmarks/local_lm.py):

* ``xgrammar`` 0.2.9: compiling a 4-field schema (enum, number, bool, capped string) takes ~0.2 s
  once (cached per schema afterwards) and filling the next-token mask costs ~0.01 ms per token — far
  below the ~60 ms a decode step of the model itself costs. It handles the full JSON-schema surface
  (nested objects, arrays, ``$defs``/refs, ``anyOf``, enums, ``maxLength``) and regexes.
* ``lm-format-enforcer`` 0.11.3 does not import with transformers 5 (it imports a removed module).
* ``outlines`` pulls in a large dependency tree for the same grammar work.
* A hand-written logits processor that walks the vocabulary in Python per step costs tens of ms per
  token for a 49k vocabulary and would re-implement a JSON-schema grammar.

So JSON-schema and regex constraints use xgrammar (installed with the ``local`` extra). Only the
``choices=`` constraint is our own: a token trie over the tokenised choices is a few lines and needs
no grammar engine.

For tiny models two safety nets matter: free-text strings without ``maxLength`` get one
(:data:`DEFAULT_MAX_STRING_LENGTH`), arrays without ``maxItems`` get one, and no whitespace is
allowed between JSON tokens, so a 135M model cannot loop forever inside the JSON; the row stops
as soon as the JSON value closes.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigurationError

logger = logging.getLogger(__name__)

DEFAULT_MAX_STRING_LENGTH = 200
DEFAULT_MAX_ITEMS = 8
# Longest run of digits a JSON constraint allows: a random or tiny model otherwise writes numbers forever.
DEFAULT_MAX_DIGITS = 20

_XGRAMMAR_HINT = "Install the grammar engine with `pip install xgrammar` (part of `pip install textgrad_like[local]`)."


class Constraint(ABC):
    """The per-completion state of a constraint: masks logits, follows chosen tokens, says when done."""

    @abstractmethod
    def apply(self, logits: Any) -> None:
        """Mask, in place, the tokens that may not come next. ``logits`` has shape ``[1, vocab]``."""

    @abstractmethod
    def advance(self, token_id: int) -> None:
        """Record that ``token_id`` was generated."""

    @abstractmethod
    def is_done(self) -> bool:
        """True when the output is complete and generation of this row must stop."""


class ConstraintSpec(ABC):
    """A compiled constraint for one request; :meth:`new_state` gives a fresh state per completion."""

    @abstractmethod
    def new_state(self) -> Constraint:
        """A fresh :class:`Constraint` positioned at the start of the output."""


# ---------------------------------------------------------------------------------------------------
# Grammar constraints (JSON schema, regex) through xgrammar
# ---------------------------------------------------------------------------------------------------
class _TokenTable:
    """Per-vocabulary facts the grammar engine does not enforce, computed once per tokenizer.

    xgrammar's JSON strings accept raw control characters (JSON forbids them) and its numbers have
    no length bound; these masks close both gaps.
    """

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        import torch

        texts = tokenizer.batch_decode([[i] for i in range(min(len(tokenizer), vocab_size))])
        texts += [""] * (vocab_size - len(texts))
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        self.control = torch.tensor([i not in special and any(ord(c) < 0x20 for c in t) for i, t in enumerate(texts)])
        self.starts_with_digit = torch.tensor([t[:1].isascii() and t[:1].isdigit() for t in texts])
        self.trailing_digits: list[int] = []
        self.all_digits: list[bool] = []
        for text in texts:
            stripped = text.rstrip("0123456789")
            self.trailing_digits.append(len(text) - len(stripped))
            self.all_digits.append(bool(text) and not stripped)


class _GrammarConstraint(Constraint):
    def __init__(self, compiled: Any, vocab_size: int, table: _TokenTable | None, max_digits: int) -> None:
        import xgrammar as xgr

        self._xgr = xgr
        self._matcher = xgr.GrammarMatcher(compiled, terminate_without_stop_token=True)
        self._bitmask = xgr.allocate_token_bitmask(1, vocab_size)
        self._vocab_size = vocab_size
        self._table = table
        self._max_digits = max_digits
        self._digit_run = 0
        self._failed = False

    def apply(self, logits: Any) -> None:
        self._matcher.fill_next_token_bitmask(self._bitmask)
        bitmask = self._bitmask if logits.device.type == "cpu" else self._bitmask.to(logits.device)
        self._xgr.apply_token_bitmask_inplace(logits, bitmask, vocab_size=self._vocab_size)
        if self._table is not None:
            table = self._table
            width = min(logits.shape[-1], table.control.shape[0])
            logits[..., :width].masked_fill_(table.control[:width].to(logits.device), float("-inf"))
            if self._digit_run >= self._max_digits:
                logits[..., :width].masked_fill_(table.starts_with_digit[:width].to(logits.device), float("-inf"))

    def advance(self, token_id: int) -> None:
        table = self._table
        if table is not None and 0 <= token_id < len(table.all_digits):
            if table.all_digits[token_id]:
                self._digit_run += table.trailing_digits[token_id]
            else:
                self._digit_run = table.trailing_digits[token_id]
        if not self._matcher.accept_token(int(token_id)):
            # Only possible when every allowed token had -inf logits; stop this row instead of looping.
            logger.warning("Constrained decoding: token %d was rejected by the grammar; stopping this row.", token_id)
            self._failed = True

    def is_done(self) -> bool:
        return self._failed or self._matcher.is_terminated()


class _GrammarSpec(ConstraintSpec):
    def __init__(self, compiled: Any, vocab_size: int, table: _TokenTable | None = None,
                 max_digits: int = DEFAULT_MAX_DIGITS) -> None:
        self._compiled = compiled
        self._vocab_size = vocab_size
        self._table = table
        self._max_digits = max_digits

    def new_state(self) -> Constraint:
        return _GrammarConstraint(self._compiled, self._vocab_size, self._table, self._max_digits)


# ---------------------------------------------------------------------------------------------------
# Choices: our own token trie
# ---------------------------------------------------------------------------------------------------
class _ChoicesConstraint(Constraint):
    def __init__(self, sequences: list[tuple[int, ...]], stop_ids: list[int]) -> None:
        self._sequences = sequences
        self._stop_ids = stop_ids
        self._prefix: tuple[int, ...] = ()
        self._done = False

    def _candidates(self) -> list[tuple[int, ...]]:
        n = len(self._prefix)
        return [s for s in self._sequences if s[:n] == self._prefix]

    def apply(self, logits: Any) -> None:
        import torch

        n = len(self._prefix)
        allowed = {s[n] for s in self._candidates() if len(s) > n}
        if any(len(s) == n for s in self._candidates()):
            allowed.update(self._stop_ids)
        mask = torch.full_like(logits, float("-inf"))
        index = torch.tensor(sorted(allowed), dtype=torch.long, device=logits.device)
        mask[..., index] = 0.0
        logits.add_(mask)

    def advance(self, token_id: int) -> None:
        if token_id in self._stop_ids:
            self._done = True
            return
        self._prefix = (*self._prefix, int(token_id))
        remaining = self._candidates()
        # Done when the prefix is a whole choice that no longer choice extends (or nothing matches).
        if not remaining or all(len(s) == len(self._prefix) for s in remaining):
            self._done = True

    def is_done(self) -> bool:
        return self._done


class _ChoicesSpec(ConstraintSpec):
    def __init__(self, sequences: list[tuple[int, ...]], stop_ids: list[int]) -> None:
        self._sequences = sequences
        self._stop_ids = stop_ids

    def new_state(self) -> Constraint:
        return _ChoicesConstraint(self._sequences, self._stop_ids)


# ---------------------------------------------------------------------------------------------------
# Schema helpers
# ---------------------------------------------------------------------------------------------------
def schema_from_response_format(response_format: Any) -> dict[str, Any] | str | None:
    """Turn an OpenAI/litellm ``response_format`` (or a pydantic model class) into a JSON schema.

    Returns a schema dict, the string ``"json_object"`` for free-form JSON, or None for plain text.
    """
    if response_format is None:
        return None
    if isinstance(response_format, type):
        schema_fn = getattr(response_format, "model_json_schema", None)
        if schema_fn is None:
            raise ConfigurationError(
                f"response_format={response_format.__name__} is not a pydantic model class. Pass a pydantic "
                "BaseModel subclass or {'type': 'json_schema', 'json_schema': {'name': ..., 'schema': {...}}}."
            )
        return dict(schema_fn())
    if isinstance(response_format, str):
        try:
            response_format = json.loads(response_format)
        except json.JSONDecodeError:
            raise ConfigurationError("response_format given as a string must be JSON text of a schema or response format.")
    if not isinstance(response_format, dict):
        raise ConfigurationError(
            f"response_format of type {type(response_format).__name__} is not supported. Pass a pydantic model class "
            "or {'type': 'json_schema', 'json_schema': {'schema': {...}}}."
        )
    kind = response_format.get("type")
    if kind == "json_schema":
        inner = response_format.get("json_schema") or {}
        schema = inner.get("schema") if isinstance(inner, dict) else None
        if schema is None and isinstance(inner, dict) and ("properties" in inner or "type" in inner):
            schema = inner
        if not isinstance(schema, dict):
            raise ConfigurationError("response_format {'type': 'json_schema'} needs json_schema={'name': ..., 'schema': {...}}.")
        return schema
    if kind == "json_object":
        return "json_object"
    if kind == "text":
        return None
    if "properties" in response_format or "$defs" in response_format or kind in (
            "object", "array", "string", "number", "integer", "boolean"):
        return response_format
    raise ConfigurationError(
        f"response_format {response_format!r} is not understood. Use {{'type': 'json_schema', 'json_schema': "
        "{'schema': {...}}}, {'type': 'json_object'} or a pydantic model class."
    )


def cap_schema(schema: dict[str, Any], max_string_length: int = DEFAULT_MAX_STRING_LENGTH,
               max_items: int = DEFAULT_MAX_ITEMS) -> dict[str, Any]:
    """A copy of ``schema`` where free-text strings get ``maxLength``, arrays ``maxItems`` and dict-like
    objects ``maxProperties`` (with bounded key names)."""
    capped = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item)
            return
        if not isinstance(node, dict):
            return
        types = node.get("type")
        type_list = types if isinstance(types, list) else [types]
        free_text = not any(k in node for k in ("enum", "const", "pattern", "format", "maxLength"))
        if "string" in type_list and free_text and max_string_length > 0:
            node["maxLength"] = max_string_length
        if "array" in type_list and "maxItems" not in node and max_items > 0:
            node["maxItems"] = max(max_items, int(node.get("minItems", 0)))
        open_object = "object" in type_list and node.get("additionalProperties") not in (None, False)
        if open_object and max_items > 0:
            # dict-like objects: a bounded number of keys, each a bounded name (a tiny model would
            # otherwise invent keys until max_tokens cuts the JSON)
            node.setdefault("maxProperties", max(max_items, int(node.get("minProperties", 0))))
            node.setdefault("propertyNames", {"maxLength": min(max_string_length, 64) if max_string_length > 0 else 64})
        for value in node.values():
            visit(value)

    visit(capped)
    return capped


def _tokenizer_info(xgr: Any, tokenizer: Any, vocab_size: int, stop_token_ids: list[int]) -> Any:
    """xgrammar's view of the vocabulary: from a transformers tokenizer, or from the ``tokenizers``
    JSON and vocabulary of a :class:`~textgrad_like.lm.text_tokenizer.TextTokenizer` (the same
    detection xgrammar applies to a transformers fast tokenizer, without importing transformers)."""
    backend_json = getattr(tokenizer, "backend_json", None)
    if backend_json is not None:
        vocab = tokenizer.get_vocab()
        metadata = xgr.TokenizerInfo._detect_metadata_from_hf(backend_json())
        if metadata["vocab_type"] == xgr.VocabType.BYTE_LEVEL and \
                xgr.TokenizerInfo._detect_vocab_type_from_vocab(vocab) in (None, xgr.VocabType.BYTE_LEVEL):
            encoded = [""] * vocab_size
            for token, index in vocab.items():
                if index < vocab_size:
                    encoded[index] = token
            return xgr.TokenizerInfo(encoded, metadata["vocab_type"], vocab_size=vocab_size,
                                     stop_token_ids=stop_token_ids, add_prefix_space=metadata["add_prefix_space"])
        # Other vocabularies need xgrammar's full detection, which works on a transformers tokenizer.
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer.folder, local_files_only=True)
    return xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=stop_token_ids)


# ---------------------------------------------------------------------------------------------------
# Compiler: one per tokenizer, shared by every request to that model
# ---------------------------------------------------------------------------------------------------
class ConstraintCompiler:
    """Builds :class:`ConstraintSpec` objects for one tokenizer (grammar work is cached per schema)."""

    def __init__(self, tokenizer: Any, vocab_size: int, stop_token_ids: Sequence[int]) -> None:
        self.tokenizer = tokenizer
        self.vocab_size = int(vocab_size)
        self.stop_token_ids = [int(t) for t in stop_token_ids]
        self._compiler: Any = None
        self._lock = threading.Lock()
        self._cache: dict[str, Any] = {}
        self._table: _TokenTable | None = None

    def token_table(self) -> _TokenTable:
        """Control-character and digit masks of the vocabulary (built on first use)."""
        with self._lock:
            if self._table is None:
                self._table = _TokenTable(self.tokenizer, self.vocab_size)
            return self._table

    def _grammar_compiler(self) -> Any:
        with self._lock:
            if self._compiler is None:
                try:
                    import xgrammar as xgr
                except ImportError:
                    raise ConfigurationError(f"JSON-schema and regex constraints need xgrammar. {_XGRAMMAR_HINT}")
                info = _tokenizer_info(xgr, self.tokenizer, self.vocab_size, self.stop_token_ids)
                self._compiler = xgr.GrammarCompiler(info, max_threads=2)
            return self._compiler

    def _compiled(self, key: str, build: Any) -> Any:
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        compiled = build(self._grammar_compiler())
        with self._lock:
            self._cache[key] = compiled
        return compiled

    def json_schema(self, schema: dict[str, Any] | str, max_string_length: int = DEFAULT_MAX_STRING_LENGTH,
                    max_items: int = DEFAULT_MAX_ITEMS) -> ConstraintSpec:
        """A constraint for JSON matching ``schema`` (or any JSON object for ``"json_object"``)."""
        if schema == "json_object":
            compiled = self._compiled("json_object", lambda c: c.compile_builtin_json_grammar())
            return _GrammarSpec(compiled, self.vocab_size, self.token_table())
        if not isinstance(schema, dict):
            raise ConfigurationError("A JSON schema must be a dict, e.g. {'type': 'object', 'properties': {...}}.")
        capped = cap_schema(schema, max_string_length, max_items)
        text = json.dumps(capped)  # keep property order: the model writes fields in schema order

        def build(compiler: Any) -> Any:
            try:
                return compiler.compile_json_schema(text, any_whitespace=False, strict_mode=True)
            except Exception as exc:  # xgrammar raises plain RuntimeError/ValueError for bad schemas
                raise ConfigurationError(f"The JSON schema cannot be compiled into a grammar ({exc}). "
                                         "Simplify the schema or check that it is valid JSON Schema.")

        return _GrammarSpec(self._compiled("schema:" + text, build), self.vocab_size, self.token_table())

    def regex(self, pattern: str) -> ConstraintSpec:
        """A constraint for output that matches the regular expression ``pattern`` in full."""
        if not isinstance(pattern, str) or not pattern:
            raise ConfigurationError("regex= needs a non-empty regular-expression string.")

        def build(compiler: Any) -> Any:
            try:
                return compiler.compile_regex(pattern)
            except Exception as exc:
                raise ConfigurationError(f"regex={pattern!r} cannot be compiled ({exc}). Fix the pattern.")

        return _GrammarSpec(self._compiled("regex:" + pattern, build), self.vocab_size)

    def choices(self, options: Sequence[str]) -> ConstraintSpec:
        """A constraint whose output is exactly one of ``options``."""
        if isinstance(options, str) or not options or not all(isinstance(o, str) and o for o in options):
            raise ConfigurationError("choices= needs a list of non-empty strings, e.g. choices=['yes', 'no'].")
        sequences = sorted({tuple(self.tokenizer.encode(o, add_special_tokens=False)) for o in options})
        return _ChoicesSpec(sequences, self.stop_token_ids)

    def build(self, response_format: Any = None, regex: str | None = None, choices: Sequence[str] | None = None,
              max_string_length: int = DEFAULT_MAX_STRING_LENGTH) -> ConstraintSpec | None:
        """The one constraint a request asks for, or None when it asks for none."""
        given = [name for name, value in (("response_format", response_format), ("regex", regex),
                                          ("choices", choices)) if value is not None]
        if len(given) > 1:
            raise ConfigurationError(f"Pass only one of response_format=, regex=, choices= (got {', '.join(given)}).")
        if choices is not None:
            return self.choices(choices)
        if regex is not None:
            return self.regex(regex)
        schema = schema_from_response_format(response_format)
        if schema is None:
            return None
        return self.json_schema(schema, max_string_length=max_string_length)
