"""Utilities: scripted LMs, callbacks and helpers."""

from ..callbacks import BaseCallback, with_callbacks
from .dummies import DummyLM

__all__ = ["DummyLM", "BaseCallback", "with_callbacks"]
