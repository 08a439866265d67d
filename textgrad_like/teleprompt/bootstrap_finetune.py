"""DSPy's import path ``dspy.teleprompt.bootstrap_finetune``: BootstrapFinetune."""

from ..optim.finetune import BootstrapFinetune

__all__ = ["BootstrapFinetune"]
