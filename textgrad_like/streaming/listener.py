"""``StreamListener``: follow one output field of one predictor while the LM writes it.

The listener reads the raw reply incrementally: ``<field>...</field>`` blocks of the
:class:`ChatAdapter` and, best effort, the keys of the :class:`JSONAdapter`'s JSON object (a
reply whose first character is ``{`` or a code fence). It only ever emits text that cannot
change any more: a suffix that might still become a closing tag, a trailing space, or half an
escape sequence is held back until the next piece decides it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from ..errors import ConfigurationError
from .messages import StreamChunk, StreamResponse


class StreamListener:
    """Stream the field ``signature_field_name`` of a predictor.

    Args:
        signature_field_name: the output field to follow.
        predict: the predictor to follow; by default ``streamify`` finds the one predictor of the
            program with this output field.
        predict_name: its name in the yielded :class:`StreamResponse` (found with ``predict``).
        allow_reuse: follow the field again on every later call of the predictor (e.g. in a
            loop); by default the listener stops after the first complete field.
    """

    def __init__(self, signature_field_name: str, predict: Any = None, predict_name: str | None = None,
                 allow_reuse: bool = False) -> None:
        self.signature_field_name = signature_field_name
        self.predict = predict
        self.predict_name = predict_name
        self.allow_reuse = allow_reuse
        self.stream_start = False
        self.stream_end = False
        self.cache_hit = False
        self._request_id: str | None = None
        self._buffer = ""
        self._emitted = ""

    # --- state ------------------------------------------------------------------------------------
    def reset(self) -> None:
        self.stream_start = False
        self.stream_end = False
        self._request_id = None
        self._buffer = ""
        self._emitted = ""

    def _other_fields(self) -> list[str]:
        try:
            names = list(self.predict.signature.output_fields)
        except Exception:
            return []
        return [n for n in names if n != self.signature_field_name]

    # --- reading ----------------------------------------------------------------------------------
    def receive(self, chunk: StreamChunk) -> StreamResponse | None:
        """Read one raw piece of the predictor's reply; return a new piece of the field, if any."""
        if chunk.request_id != self._request_id:
            if self.stream_end and not self.allow_reuse:
                return None
            # a new reply (a later call, or the adapter's retry): read it from the start
            self.reset()
            self._request_id = chunk.request_id
        if self.stream_end:
            return None
        self._buffer += chunk.text
        value, complete = partial_field_value(self._buffer, self.signature_field_name, self._other_fields(),
                                              final=chunk.done)
        if value is None:
            return None
        self.stream_start = True
        if not value.startswith(self._emitted):  # cannot happen with prefix-stable parsing; be safe
            value = self._emitted
        delta = value[len(self._emitted):]
        self._emitted = value
        if complete:
            self.stream_end = True
            return self._response(delta, last=True)
        return self._response(delta, last=False) if delta else None

    def finalize(self) -> StreamResponse | None:
        """Close a field whose reply ended without a complete block (called before the final Prediction)."""
        if not self.stream_start or self.stream_end:
            return None
        value, _ = partial_field_value(self._buffer, self.signature_field_name, self._other_fields(), final=True)
        self.stream_end = True
        value = value if value is not None and value.startswith(self._emitted) else self._emitted
        delta = value[len(self._emitted):]
        self._emitted = value
        return self._response(delta, last=True)

    def _response(self, text: str, last: bool) -> StreamResponse:
        return StreamResponse(predict_name=self.predict_name or "", signature_field_name=self.signature_field_name,
                              chunk=text, is_last_chunk=last)

    def __repr__(self) -> str:
        return f"StreamListener({self.signature_field_name!r}, predict_name={self.predict_name!r})"


# --- incremental parsing ---------------------------------------------------------------------------
def partial_field_value(text: str, field: str, other_fields: list[str], final: bool) -> tuple[str | None, bool]:
    """``(value so far, complete)`` of ``field`` in a partial reply; ``(None, False)`` before it starts.

    The value so far is always a prefix of the value once complete.
    """
    head = text.lstrip()
    if not head:
        return None, False
    if head.startswith("{") or head.startswith("`"):
        return partial_json_value(text, field, final)
    return partial_tag_value(text, field, other_fields, final)


def _held_suffix(body: str, terminators: list[str]) -> int:
    """How many trailing characters of ``body`` might be the start of a terminator."""
    hold = 0
    for term in terminators:
        for k in range(min(len(term) - 1, len(body)), hold, -1):
            if body.endswith(term[:k]):
                hold = k
                break
    return hold


def partial_tag_value(text: str, field: str, other_fields: list[str], final: bool) -> tuple[str | None, bool]:
    """The ChatAdapter block ``<field>...</field>`` (a missing end tag ends at the next field's tag)."""
    open_tag = f"<{field}>"
    start = text.find(open_tag)
    if start < 0:
        return None, False
    body = text[start + len(open_tag):]
    terminators = [f"</{field}>", *(f"<{name}>" for name in other_fields)]
    cuts = [pos for pos in (body.find(t) for t in terminators) if pos >= 0]
    if cuts:
        return body[:min(cuts)].strip(), True
    if final:
        return body.strip(), True
    visible = body[:len(body) - _held_suffix(body, terminators)]
    return visible.strip(), False


_WS = " \t\r\n"


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _scan_string(text: str, i: int) -> int | None:
    """Index just past the JSON string starting at ``text[i] == '"'``; ``None`` if it is not closed yet."""
    i += 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            return i + 1
        i += 1
    return None


def _scan_value(text: str, i: int) -> tuple[int, bool]:
    """End of the JSON value starting at ``i`` (at the next top-level ``,`` or ``}``); ``(end, closed)``."""
    depth = 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            end = _scan_string(text, i)
            if end is None:
                return len(text), False
            i = end
            continue
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            if depth == 0:
                return i, True
            depth -= 1
        elif ch == "," and depth == 0:
            return i, True
        i += 1
    return len(text), False


def _decode_partial_string(raw: str) -> str:
    """Decode the body of a JSON string that may stop in the middle of an escape sequence."""
    cut = len(raw)
    i = 0
    while i < len(raw):
        if raw[i] == "\\":
            if i + 1 >= len(raw):
                cut = i
                break
            if raw[i + 1] == "u":
                hex_part = raw[i + 2:i + 6]
                if len(hex_part) < 4:
                    cut = i
                    break
                try:
                    code = int(hex_part, 16)
                except ValueError:
                    code = 0
                if 0xD800 <= code <= 0xDBFF and len(raw[i + 6:i + 12]) < 6:
                    cut = i  # a surrogate pair's first half: wait for the second
                    break
                i += 6
                continue
            i += 2
            continue
        i += 1
    try:
        return json.loads('"' + raw[:cut] + '"', strict=False)
    except json.JSONDecodeError:
        return raw[:cut]


def partial_json_value(text: str, field: str, final: bool) -> tuple[str | None, bool]:
    """The value of key ``field`` in a (partial) top-level JSON object: strings decoded, others raw."""
    i = text.find("{")
    if i < 0:
        return None, False
    i += 1
    while True:
        i = _skip_ws(text, i)
        if i >= len(text) or text[i] == "}":
            return None, False
        if text[i] == ",":
            i += 1
            continue
        if text[i] != '"':
            return None, False  # not JSON we can follow
        end = _scan_string(text, i)
        if end is None:
            return None, False
        try:
            key = json.loads(text[i:end], strict=False)
        except json.JSONDecodeError:
            key = text[i + 1:end - 1]
        i = _skip_ws(text, end)
        if i >= len(text):
            return None, False
        if text[i] != ":":
            return None, False
        i = _skip_ws(text, i + 1)
        if i >= len(text):
            return None, False
        if key == field:
            if text[i] == '"':
                end = _scan_string(text, i)
                if end is not None:
                    return _decode_partial_string(text[i + 1:end - 1]), True
                return _decode_partial_string(text[i + 1:]), final
            end, closed = _scan_value(text, i)
            raw = text[i:end].strip()
            return raw, closed or final
        end, closed = _scan_value(text, i)
        if not closed:
            return None, False
        i = end


# --- matching listeners to predictors ------------------------------------------------------------------
def find_predictor_for_stream_listeners(program: Any, stream_listeners: list[StreamListener]) -> dict[int, list[StreamListener]]:
    """Give each listener its predictor (and name); ``{id(predictor): [listeners]}``.

    A listener without ``predict`` gets the one predictor of ``program`` that has its field as an
    output; :class:`ConfigurationError` if none or several have it.
    """
    named = list(program.named_predictors()) if hasattr(program, "named_predictors") else []
    by_field: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for name, predictor in named:
        for field_name in predictor.signature.output_fields:
            by_field[field_name].append((name, predictor))
    routes: dict[int, list[StreamListener]] = defaultdict(list)
    for listener in stream_listeners:
        if listener.predict is None:
            owners = by_field.get(listener.signature_field_name, [])
            if not owners:
                raise ConfigurationError(
                    f"No predictor of the program has the output field {listener.signature_field_name!r}. Check "
                    "the field name, or pass StreamListener(..., predict=<the predictor>).")
            if len(owners) > 1:
                raise ConfigurationError(
                    f"Several predictors ({', '.join(n for n, _ in owners)}) have the output field "
                    f"{listener.signature_field_name!r}; pass StreamListener(..., predict=program.<predictor>) to "
                    "choose one.")
            listener.predict_name, listener.predict = owners[0]
        elif listener.predict_name is None:
            listener.predict_name = next((n for n, p in named if p is listener.predict),
                                         type(listener.predict).__name__)
        routes[id(listener.predict)].append(listener)
    return routes


__all__ = ["StreamListener", "find_predictor_for_stream_listeners", "partial_field_value", "partial_json_value",
           "partial_tag_value"]
