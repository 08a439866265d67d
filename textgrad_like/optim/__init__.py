"""``textgrad_like.optim``: gradient and search optimizers (as ``torch.optim``)."""

from .optimizer import Optimizer
from .teleprompter import Teleprompter
from .tgd import TGD, TextualGradientDescent

__all__ = ["Optimizer", "Teleprompter", "TextualGradientDescent", "TGD"]
