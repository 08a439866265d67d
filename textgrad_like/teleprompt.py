"""DSPy's import path for optimizers: ``from textgrad_like.teleprompt import MIPROv2``."""

from .optim import *  # noqa: F403
from .optim import __all__  # noqa: F401
