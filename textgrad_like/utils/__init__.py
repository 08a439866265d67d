"""Utilities: scripted LMs, callbacks and helpers (DSPy's ``dspy.utils``)."""

from ..callbacks import BaseCallback, with_callbacks
from ..streaming import StatusMessage, StatusMessageProvider
from . import exceptions
from .asyncify import asyncify
from .dummies import DummyLM
from .syncify import syncify

__all__ = ["DummyLM", "BaseCallback", "with_callbacks", "StatusMessage", "StatusMessageProvider", "asyncify",
           "syncify", "exceptions"]
