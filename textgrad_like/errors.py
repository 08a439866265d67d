"""Typed errors raised by textgrad_like.

Every error the library raises on purpose derives from :class:`TextgradLikeError`, so a
caller can catch the whole family with one ``except``. Each message says what to do next.
"""

from __future__ import annotations

from typing import Any


class TextgradLikeError(Exception):
    """Base class of every error raised on purpose by textgrad_like."""


class ConfigurationError(TextgradLikeError, ValueError):
    """A setting is missing or has a value that cannot be used (e.g. no LM configured)."""


class SignatureError(TextgradLikeError, ValueError):
    """A signature string, field or type annotation cannot be understood."""


class SignatureFieldError(SignatureError, TypeError):
    """A signature class declares a field without ``InputField()``/``OutputField()`` (a ``TypeError``
    too, as in DSPy)."""


class InputError(TextgradLikeError, ValueError):
    """A module was called with missing or unknown input fields."""


class AdapterParseError(TextgradLikeError, ValueError):
    """An LM completion could not be parsed into a signature's output fields.

    Attributes:
        adapter_name: the adapter that failed.
        signature: the signature whose outputs were expected.
        lm_response: the raw completion text.
        field: the output field that failed, or None when the whole reply was unusable.
        parsed_result: what could be parsed before the failure.
    """

    def __init__(
        self,
        message: str,
        *,
        adapter_name: str = "",
        signature: Any = None,
        lm_response: str = "",
        field: str | None = None,
        parsed_result: dict[str, Any] | None = None,
    ) -> None:
        self.adapter_name = adapter_name
        self.signature = signature
        self.lm_response = lm_response
        self.field = field
        self.parsed_result = parsed_result or {}
        where = f" (field {field!r})" if field else ""
        super().__init__(
            f"{adapter_name or 'Adapter'} could not parse the LM reply{where}: {message}\n"
            f"--- LM reply ---\n{lm_response[:2000]}"
        )


class LMError(TextgradLikeError, RuntimeError):
    """The language model call itself failed (provider error, timeout, bad model name)."""


class ContextWindowExceededError(LMError):
    """The prompt (plus the requested completion) does not fit the model's context window."""


class BudgetExceeded(TextgradLikeError, RuntimeError):
    """A call would pass a budget on LM calls, tokens or cost; it was not made."""


class StateDictError(TextgradLikeError, ValueError):
    """A state dict or saved program does not fit the module it is loaded into."""


class MetricError(TextgradLikeError, RuntimeError):
    """A metric raised while scoring an example."""


class EvaluationError(TextgradLikeError, RuntimeError):
    """Evaluation or an optimizer run stopped: too many failures or bad arguments."""


class BackwardError(TextgradLikeError, RuntimeError):
    """``loss.backward()`` could not run (no graph recorded, no backward LM, ...)."""


class GraphFreedError(BackwardError):
    """``backward()`` reached nodes an earlier ``backward()`` already used and freed (pass
    ``retain_graph=True`` to the earlier call to backward through them again)."""


class OptimizerError(TextgradLikeError, ValueError):
    """An optimizer was given arguments it cannot work with."""


class ModelLoadError(TextgradLikeError, OSError):
    """A local model file or hub id could not be loaded."""


class ToolError(TextgradLikeError, RuntimeError):
    """A tool was called with bad arguments or failed."""


class InterpreterError(TextgradLikeError, RuntimeError):
    """Code run in the sandboxed interpreter failed or was refused."""
