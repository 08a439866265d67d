"""Modules that call LMs: Predict, ChainOfThought and friends."""

from .chain_of_thought import ChainOfThought
from .predict import Predict

__all__ = ["Predict", "ChainOfThought"]
