"""``BaseLM``: the one place every language-model call goes through.

A custom LM written for DSPy overrides :meth:`BaseLM.forward` (and optionally ``aforward``) and
returns an OpenAI-style response (``choices[i].message.content``, ``usage``, ``model``; an object
or a dict). The library's own backends implement the private ``_generate`` (one request, an
:class:`LMResponse`). Everything else — history, usage, budgets, callbacks, streaming — lives here
so that a provider LM, the in-process local LM, a user's custom LM and ``DummyLM`` behave alike.
Replies are cached only by the library's LMs (``LM`` and the local LM), as in DSPy.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import importlib
import inspect
import logging
import sys
import threading
import uuid
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from ..callbacks import with_callbacks
from ..errors import ConfigurationError, LMError, StateDictError
from ..settings import settings
from .cache import cache_key, get_cache, strip_secrets
from .secrets import known_secrets, scrub_exception
from .usage import Usage

logger = logging.getLogger(__name__)

MAX_HISTORY = 10_000
# DSPy's key for the LM class in ``dump_state()`` (``"module.QualName"``); a state without it is a plain ``LM``
LM_CLASS_STATE_KEY = "_dspy_lm_class"
GLOBAL_HISTORY: deque[dict[str, Any]] = deque(maxlen=MAX_HISTORY)
_GLOBAL_HISTORY_LOCK = threading.Lock()


@dataclass
class LMResponse:
    """What a backend returns for one request: ``n`` completion texts plus usage."""

    outputs: list[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    model: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # what a custom ``forward`` returned (shown as ``history[i]["response"]``; never cached)
    raw: Any = field(default=None, repr=False, compare=False)

    # An OpenAI-shaped view, so code written against DSPy's ``lm.forward(...)`` can read it.
    @property
    def choices(self) -> list[Any]:
        from types import SimpleNamespace

        return [SimpleNamespace(index=i, message=SimpleNamespace(role="assistant", content=text),
                                finish_reason="stop") for i, text in enumerate(self.outputs)]

    @property
    def usage(self) -> dict[str, Any]:
        """The provider's usage dict when it sent one (``extra["usage"]``), else the token counts."""
        provided = self.extra.get("usage") if isinstance(self.extra, dict) else None
        if isinstance(provided, dict) and provided:
            return dict(provided)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}


@dataclass
class _CallPlan:
    """Where one call's reply may come from and which budgets it holds."""

    key: str
    use_cache: bool
    prompt: str | None = None
    journal: Any = None
    cached: LMResponse | None = None
    budgets: list[Any] = field(default_factory=list)

    def release(self) -> None:
        for b in self.budgets:
            b.release()
        self.budgets = []


class _LMCall:
    """One LM call, for the sync and the async path alike: the request and its plan (cache, journal,
    budgets) on creation; ``with call: call.receive(reply)`` around fetching the reply (a failure
    releases the budgets and scrubs secrets from the error); :meth:`outcome` records it."""

    def __init__(self, lm: BaseLM, prompt: str | None, messages: list[dict[str, Any]] | None,
                 kwargs: dict[str, Any]) -> None:
        self.lm = lm
        self.request, self.merged = lm._request(prompt, messages, kwargs)
        self.plan = lm._before(self.request, self.merged)
        self.plan.prompt = prompt
        self.forward_kwargs = {k: v for k, v in kwargs.items() if k != "cache"}  # for a custom forward
        self.response: LMResponse | None = self.plan.cached
        if self.response is not None:
            _publish_if_streaming(lm, self.response)

    @property
    def needs_reply(self) -> bool:
        return self.response is None

    def receive(self, reply: Any, custom: bool = False) -> None:
        """Take the backend's reply (``custom``: what a user's ``forward``/``aforward`` returned)."""
        self.response = self.lm._check_outputs(self.lm._from_custom(reply) if custom else reply)
        if custom:
            _publish_if_streaming(self.lm, self.response)

    def __enter__(self) -> _LMCall:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None:
            self.plan.release()
            scrub_exception(exc, known_secrets(self.merged))  # a server may echo the key in its error body

    def outcome(self) -> tuple[LMResponse, list[str]]:
        """The response and its completions, after caching, budgets, usage and history are updated."""
        if self.response is None:
            raise LMError(f"{type(self.lm).__name__}: the call produced no reply.")
        return self.response, self.lm._after(self.plan, self.request, self.merged, self.response)


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """A cheap upper-bound-ish token estimate (4 characters a token) used by budgets."""
    return sum(len(str(m.get("content", ""))) for m in messages) // 4 + 4 * len(messages)


class BaseLM:
    """Base class of every LM. Call it with a prompt or messages; it returns a list of strings."""

    _callback_kind = "lm"
    # Whether replies are cached when ``cache`` is not given: only the library's own LMs cache
    # (``LM`` sets it); a custom LM is called every time unless it passes ``cache=True`` to a
    # ``_generate`` backend. A subclass that overrides ``forward`` is never cached, as in DSPy.
    _cache_by_default = False

    def __init__(self, model: str, model_type: str = "chat", temperature: float | None = None,
                 max_tokens: int | None = None, cache: bool | None = None, num_retries: int = 3,
                 callbacks: list[Any] | None = None, budget: Any = None, **kwargs: Any) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigurationError("LM(model=...) needs a model name such as 'openai/gpt-4o-mini' or 'local/embedded'.")
        self.model = model
        self.model_type = model_type
        self.cache = type(self)._cache_by_default if cache is None else bool(cache)
        self.num_retries = num_retries
        self.callbacks = list(callbacks or [])
        self.kwargs: dict[str, Any] = dict(kwargs)
        if temperature is not None:
            self.kwargs["temperature"] = temperature
        if max_tokens is not None:
            self.kwargs["max_tokens"] = max_tokens
        self.history: deque[dict[str, Any]] = deque(maxlen=MAX_HISTORY)
        self.usage = Usage()
        if isinstance(budget, dict):
            from .usage import Budget

            budget = Budget(**budget)
        self.budget = budget
        self._history_lock = threading.Lock()

    # ------------------------------------------------------------------------------------------
    def _generate(self, messages: list[dict[str, Any]], **kwargs: Any) -> LMResponse:
        raise NotImplementedError(
            f"{type(self).__name__} does not implement forward(prompt=None, messages=None, **kwargs); override it "
            "to return an OpenAI-style response (choices[i].message.content, usage, model)."
        )

    @classmethod
    def _overrides_forward(cls) -> bool:
        return cls.forward is not BaseLM.forward

    def _from_custom(self, raw: Any) -> LMResponse:
        """An :class:`LMResponse` from what a custom ``forward`` returned (OpenAI-style object or dict)."""
        if isinstance(raw, LMResponse):
            return raw
        choices = _get(raw, "choices")
        if not isinstance(choices, (list, tuple)):
            raise LMError(
                f"{type(self).__name__}.forward returned {type(raw).__name__}, not an OpenAI-style response. Return "
                "an object or dict with choices=[{'message': {'content': '...'}}], usage and model."
            )
        outputs = []
        for choice in choices:
            message = _get(choice, "message")
            content = _get(message, "content") if message is not None else _get(choice, "text")
            outputs.append("" if content is None else content)
        usage = _get(raw, "usage") or {}
        hidden = _get(raw, "_hidden_params") or {}
        cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
        provided = usage_dict(usage)
        return LMResponse(outputs=outputs, prompt_tokens=_int(_get(usage, "prompt_tokens")),
                          completion_tokens=_int(_get(usage, "completion_tokens")), cost=cost,
                          model=str(_get(raw, "model") or self.model), raw=raw,
                          extra={"usage": provided} if provided else {})

    def _check_outputs(self, response: Any) -> LMResponse:
        if not isinstance(response, LMResponse):
            raise LMError(f"{type(self).__name__} returned {type(response).__name__}; a backend's _generate must return "
                          "an LMResponse.")
        for output in response.outputs:
            if not isinstance(output, str):
                raise LMError(
                    f"{type(self).__name__} returned a {type(output).__name__} as a completion ({str(output)[:80]!r}); "
                    "a reply must be text. Return choices[i].message.content as a string."
                )
        return response

    async def _agenerate(self, messages: list[dict[str, Any]], **kwargs: Any) -> LMResponse:
        return await asyncio.to_thread(self._generate, messages, **kwargs)

    # ------------------------------------------------------------------------------------------
    def _request(self, prompt: str | None, messages: list[dict[str, Any]] | None,
                 kwargs: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if messages is None:
            if prompt is None:
                raise ConfigurationError("Call the LM with a prompt string or messages=[...].")
            messages = [{"role": "user", "content": prompt}]
        merged = {**self.kwargs, **kwargs}
        return messages, merged

    def _budgets(self) -> list[Any]:
        active = list(settings.get("budget") or [])
        if self.budget is not None:
            active.append(self.budget)
        return active

    def _before(self, messages: list[dict[str, Any]], merged: dict[str, Any]) -> _CallPlan:
        use_cache = bool(merged.pop("cache", self.cache)) and not self._overrides_forward()
        journal = settings.get("call_journal")
        key = ""
        if use_cache or journal is not None:
            key = cache_key({"model": self.model, "model_type": self.model_type, "messages": messages, **merged})
        plan = _CallPlan(key=key, use_cache=use_cache, journal=journal)
        if use_cache:
            plan.cached = get_cache().get(plan.key)
        if plan.cached is None and journal is not None:
            plan.cached = journal.get(plan.key)  # a call already paid for before a crash: replay it
        if plan.cached is None:
            estimate = estimate_tokens(messages) + int(merged.get("max_tokens") or 0) * int(merged.get("n") or 1)
            for b in self._budgets():
                try:
                    b.reserve(estimate)
                except Exception:
                    plan.release()
                    raise
                plan.budgets.append(b)
        return plan

    def _after(self, plan: _CallPlan, messages: list[dict[str, Any]], merged: dict[str, Any],
               response: LMResponse) -> list[str]:
        response = self._check_outputs(response)
        cache_hit = plan.cached is not None
        if not cache_hit:
            if plan.use_cache:
                get_cache().put(plan.key, response)
            if plan.journal is not None:
                plan.journal.put(plan.key, response)
        for b in plan.budgets:
            b.release()
            b.record(response.prompt_tokens, response.completion_tokens, response.cost)
        cost = 0.0 if cache_hit else response.cost
        self.usage.add(response.prompt_tokens, response.completion_tokens, cost, cache_hit)
        tracker = settings.get("usage_tracker")
        if tracker is not None:
            add_response = getattr(tracker, "add_response", None)
            if add_response is not None:
                add_response(self.model, response.usage, cost, cache_hit)
            else:
                tracker.add(self.model, response.prompt_tokens, response.completion_tokens, cost, cache_hit)
        if not settings.get("disable_history"):
            entry = {
                "prompt": plan.prompt,
                "messages": messages,
                "kwargs": strip_secrets(merged),
                "response": response.raw if response.raw is not None else response,
                "outputs": list(response.outputs),
                "usage": response.usage,
                "cost": cost,
                "timestamp": datetime.datetime.now().isoformat(),
                "uuid": str(uuid.uuid4()),
                "model": self.model,
                "response_model": response.model or self.model,
                "model_type": self.model_type,
                "cache_hit": cache_hit,
                "tags": dict(settings.get("history_tags") or {}),
            }
            with self._history_lock:
                self.history.append(entry)
            with _GLOBAL_HISTORY_LOCK:
                GLOBAL_HISTORY.append(entry)
                _add_to_caller_histories(entry)
        return list(response.outputs)

    # ``_complete`` and ``_acomplete`` share one core, :class:`_LMCall` (request, cache, budgets,
    # checks, history, usage, error scrubbing); they differ only in how the reply is fetched.
    def _complete(self, prompt: str | None, messages: list[dict[str, Any]] | None,
                  kwargs: dict[str, Any]) -> tuple[LMResponse, list[str]]:
        call = _LMCall(self, prompt, messages, kwargs)
        if call.needs_reply:
            with call:
                if self._overrides_forward():
                    call.receive(self.forward(prompt=prompt, messages=messages, **call.forward_kwargs), custom=True)
                else:
                    call.receive(self._generate_or_stream(call.request, call.merged))
        return call.outcome()

    async def _acomplete(self, prompt: str | None, messages: list[dict[str, Any]] | None,
                         kwargs: dict[str, Any]) -> tuple[LMResponse, list[str]]:
        call = _LMCall(self, prompt, messages, kwargs)
        if call.needs_reply:
            with call:
                forward_kwargs = call.forward_kwargs
                if type(self).aforward is not BaseLM.aforward:
                    call.receive(await self.aforward(prompt=prompt, messages=messages, **forward_kwargs), custom=True)
                elif self._overrides_forward():
                    call.receive(await asyncio.to_thread(self.forward, prompt=prompt, messages=messages,
                                                         **forward_kwargs), custom=True)
                elif _active_stream() is not None:
                    call.receive(await asyncio.to_thread(self._generate_or_stream, call.request, call.merged))
                else:
                    call.receive(await self._agenerate(call.request, **call.merged))
        return call.outcome()

    def forward(self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None,
                **kwargs: Any) -> Any:
        """One request (through the cache for the library's LMs); returns the response.

        Override it in a custom LM to return an OpenAI-style response; the library's own response
        (:class:`LMResponse`) offers the same ``choices``/``usage``/``model`` view.
        """
        return self._complete(prompt, messages, kwargs)[0]

    async def aforward(self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None,
                       **kwargs: Any) -> Any:
        """The async :meth:`forward`; a custom LM may override it as well."""
        return (await self._acomplete(prompt, messages, kwargs))[0]

    @with_callbacks
    def __call__(self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None,
                 **kwargs: Any) -> list[str]:
        return self._complete(prompt, messages, kwargs)[1]

    @with_callbacks
    async def acall(self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None,
                    **kwargs: Any) -> list[str]:
        return (await self._acomplete(prompt, messages, kwargs))[1]

    def launch(self, launch_kwargs: dict[str, Any] | None = None) -> None:
        """Start the model's server or load its weights; nothing to do for a remote model."""

    def kill(self, launch_kwargs: dict[str, Any] | None = None) -> None:
        """Stop what :meth:`launch` started; nothing to do for a remote model."""

    # --- streaming -------------------------------------------------------------------------------
    def stream(self, messages: list[dict[str, Any]], **kwargs: Any) -> Generator[str, None, LMResponse | None]:
        """Yield the completion's text piece by piece as the backend produces it.

        Override it in a backend that can stream tokens. The generator may ``return`` the
        :class:`LMResponse` (for exact usage); if it returns nothing, the joined pieces are the
        completion and its tokens are estimated. This default generates the whole completion and
        yields it once. It is used only while a stream is active (``streamify``) and ``n`` is 1;
        each piece is then published to that stream as it arrives.
        """
        response = self._generate(messages, **kwargs)
        if response.outputs:
            yield response.outputs[0]
        return response

    def _generate_or_stream(self, messages: list[dict[str, Any]], merged: dict[str, Any]) -> LMResponse:
        sink = _active_stream()
        if sink is None:
            return self._generate(messages, **merged)
        if int(merged.get("n") or 1) != 1:
            response = self._generate(messages, **merged)
            _publish_whole(sink, self, response)
            return response
        request_id = uuid.uuid4().hex
        pieces: list[str] = []
        final: Any = None
        generator = self.stream(messages, **merged)
        while True:
            try:
                piece = next(generator)
            except StopIteration as stop:
                final = stop.value
                break
            if piece:
                pieces.append(str(piece))
                sink.publish_lm_chunk(self, request_id, pieces[-1], False)
        sink.publish_lm_chunk(self, request_id, "", True)
        text = "".join(pieces)
        if isinstance(final, LMResponse):
            if not final.outputs:
                final.outputs = [text]
            return final
        return LMResponse(outputs=[text], prompt_tokens=estimate_tokens(messages),
                          completion_tokens=max(1, len(text) // 4) if text else 0, model=self.model)

    # ------------------------------------------------------------------------------------------
    def copy(self, **kwargs: Any) -> BaseLM:
        """A copy with some arguments changed (history and usage start empty)."""
        new = copy.copy(self)
        new.kwargs = {**self.kwargs}
        new.history = deque(maxlen=MAX_HISTORY)
        new.usage = Usage()
        new._history_lock = threading.Lock()
        for key, value in kwargs.items():
            if hasattr(self, key) and key not in ("kwargs",):
                setattr(new, key, value)
            else:
                new.kwargs[key] = value
        return new

    def inspect_history(self, n: int = 1) -> None:
        """Print this LM's last ``n`` calls (messages and replies)."""
        inspect_history(n, history=list(self.history))

    def dump_state(self) -> dict[str, Any]:
        """Settings of this LM without credentials (safe to save), with its class under
        :data:`LM_CLASS_STATE_KEY` (a kwarg of that name is ignored), as DSPy writes it."""
        kwargs = {k: v for k, v in strip_secrets(self.kwargs).items() if k != LM_CLASS_STATE_KEY}
        return {LM_CLASS_STATE_KEY: lm_class_path(type(self)), "model": self.model, "model_type": self.model_type,
                "cache": self.cache, "num_retries": self.num_retries, **kwargs}

    @classmethod
    def load_state(cls, state: dict[str, Any], *, allow_custom_lm_class: bool = False) -> BaseLM:
        """The LM that ``state`` (a :meth:`dump_state` dict) describes.

        ``BaseLM.load_state`` reads the class from :data:`LM_CLASS_STATE_KEY` (absent: ``LM``); a class
        other than the library's LMs is imported only with ``allow_custom_lm_class=True`` (trusted
        files only: importing runs the module's code). ``SubClass.load_state`` builds ``SubClass(**state)``;
        override it when the constructor takes other arguments than ``dump_state`` writes.
        """
        state = dict(state)
        class_path = state.pop(LM_CLASS_STATE_KEY, None)
        if cls is not BaseLM:
            return cls(**state)
        lm_cls = import_lm_class(class_path, allow_custom_lm_class)
        if "allow_custom_lm_class" in inspect.signature(lm_cls.load_state).parameters:
            return lm_cls.load_state(state, allow_custom_lm_class=allow_custom_lm_class)
        return lm_cls.load_state(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"

    def __deepcopy__(self, memo: dict[int, Any]) -> BaseLM:
        # LMs are shared resources (connections, loaded weights): deep copies of programs share them.
        return self

    def __copy__(self) -> BaseLM:
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __getstate__(self) -> dict[str, Any]:
        """Pickle (``save(..., save_program=True)``) without credentials, history or locks; a loaded LM
        takes its key from the environment (e.g. ``OPENAI_API_KEY``) or ``lm.kwargs["api_key"] = ...``."""
        state = {k: (_LOCK if isinstance(v, _LOCK_TYPES) else v) for k, v in self.__dict__.items()}
        state["kwargs"] = strip_secrets(self.kwargs)
        state["history"] = None
        state["usage"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({k: (threading.Lock() if isinstance(v, str) and v == _LOCK else v) for k, v in state.items()})
        self.history = deque(maxlen=MAX_HISTORY)
        self.usage = Usage()


_LOCK = "__textgrad_like_lock__"
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


_BUILTIN_CLASS_PATHS = {"textgrad_like.lm.lm.LM": "dspy.clients.lm.LM", "dspy.LM": "dspy.clients.lm.LM"}


def lm_class_path(lm_cls: type) -> str:
    """``"module.QualName"`` of an LM class, as saved under :data:`LM_CLASS_STATE_KEY`; our ``LM`` is
    written as DSPy's ``dspy.clients.lm.LM`` so that DSPy and we read each other's files."""
    path = f"{lm_cls.__module__}.{lm_cls.__qualname__}"
    return _BUILTIN_CLASS_PATHS.get(path, path)


def is_builtin_lm_class(class_path: str | None) -> bool:
    """Whether a saved class path names one of the library's (or DSPy's) own LM classes."""
    return class_path is None or class_path == "dspy.clients.lm.LM" or class_path.startswith("textgrad_like.lm.")


def import_lm_class(class_path: str | None, allow_custom_lm_class: bool = False) -> type[BaseLM]:
    """The LM class a saved state names (``None`` or DSPy's ``LM``: our ``LM``).

    Anything else is imported only with ``allow_custom_lm_class=True``; it must be a :class:`BaseLM`
    subclass. Raises :class:`~textgrad_like.errors.StateDictError` (a ``ValueError``) otherwise.
    """
    if class_path is None or class_path in _BUILTIN_CLASS_PATHS.values():
        from .lm import LM

        return LM
    if not isinstance(class_path, str) or not class_path:
        raise StateDictError(f"The saved LM class {class_path!r} is not a 'module.ClassName' path.")
    if not allow_custom_lm_class and not is_builtin_lm_class(class_path):
        raise StateDictError(f"Refusing to import custom serialized LM class `{class_path}`: importing runs its "
                             "module's code. Pass allow_unsafe_lm_state=True when loading a file you trust, or "
                             "set predictor.lm yourself after loading.")
    parts = class_path.split(".")
    found: Any = None
    for cut in range(len(parts) - 1, 0, -1):  # the longest importable module prefix, then attributes
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for name in parts[cut:]:
                found = getattr(found, name)
        except AttributeError:
            found = None
        break
    if found is None:
        raise StateDictError(f"Cannot import the saved LM class `{class_path}`: import its module first or set "
                             "predictor.lm yourself after loading.")
    if not (isinstance(found, type) and issubclass(found, BaseLM)):
        raise StateDictError(f"The saved LM class `{class_path}` is not a subclass of BaseLM.")
    return found


def _active_stream() -> Any:
    """The stream of a running ``streamify`` call (it has ``publish_lm_chunk``), or ``None``."""
    sink = settings.get("send_stream")
    return sink if sink is not None and hasattr(sink, "publish_lm_chunk") else None


def _publish_whole(sink: Any, lm: BaseLM, response: LMResponse) -> None:
    """Publish a completion that was not streamed (a cache hit, ``n > 1``) as one piece."""
    request_id = uuid.uuid4().hex
    if response.outputs and response.outputs[0]:
        sink.publish_lm_chunk(lm, request_id, response.outputs[0], False)
    sink.publish_lm_chunk(lm, request_id, "", True)


def _publish_if_streaming(lm: BaseLM, response: LMResponse) -> None:
    sink = _active_stream()
    if sink is not None:
        _publish_whole(sink, lm, response)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def usage_dict(usage: Any) -> dict[str, Any]:
    """A provider's usage (a dict, a pydantic object or litellm's ``Usage``) as a plain JSON-like dict."""
    if usage is None:
        return {}
    if isinstance(usage, dict):
        items = usage.items()
    elif hasattr(usage, "model_dump"):
        try:
            items = usage.model_dump().items()
        except Exception:
            items = vars(usage).items() if hasattr(usage, "__dict__") else ()
    elif hasattr(usage, "__dict__"):
        items = vars(usage).items()
    else:
        return {}
    out: dict[str, Any] = {}
    for key, value in items:
        if str(key).startswith("_"):
            continue
        if hasattr(value, "model_dump"):
            value = value.model_dump()
        if value is None or isinstance(value, (int, float, dict)) and not isinstance(value, bool):
            out[str(key)] = value
    return out


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _add_to_caller_histories(entry: dict[str, Any]) -> None:
    """Append ``entry`` to the ``history`` of every module running this call (``settings.caller_modules``,
    outermost first; one shared entry), each capped at ``settings.max_history_size`` (oldest dropped)."""
    limit = settings.get("max_history_size")
    if limit is not None and limit <= 0:
        return
    for module in settings.get("caller_modules") or ():
        history = module.history
        if limit is not None and len(history) >= limit:
            del history[:len(history) - limit + 1]
        history.append(entry)


def format_history(n: int = 1, history: list[dict[str, Any]] | None = None) -> str:
    """The last ``n`` LM calls (messages and replies) as readable text (the global history by default)."""
    entries = list(GLOBAL_HISTORY if history is None else history)[-n:] if n > 0 else []
    parts: list[str] = []
    for entry in entries:
        parts.append(f"[{entry['timestamp']}] {entry['model']}{' (cached)' if entry.get('cache_hit') else ''}")
        for message in entry.get("messages") or [{"role": "user", "content": entry.get("prompt") or ""}]:
            parts.append(f"--- {message.get('role', 'user')} ---\n{message.get('content', '')}")
        for i, output in enumerate(entry["outputs"]):
            label = "reply" if len(entry["outputs"]) == 1 else f"reply {i + 1}"
            parts.append(f"--- {label} ---\n{output}")
        parts.append("")
    return "\n".join(parts)


def inspect_history(n: int = 1, history: list[dict[str, Any]] | None = None) -> None:
    """Print the last ``n`` LM calls (the global history by default), as DSPy's ``inspect_history`` does.

    This display function is the one place the library writes to stdout; use :func:`format_history`
    for the text.
    """
    sys.stdout.write(format_history(n, history) + "\n")
