"""DSPy's import path ``dspy.teleprompt``: the prompt optimizers (ours live in ``textgrad_like.optim``)."""

from .bettertogether import BetterTogether
from .bootstrap import BootstrapFewShot
from .bootstrap_finetune import BootstrapFinetune
from .copro_optimizer import COPRO
from .ensemble import Ensemble
from .gepa import GEPA
from .knn_fewshot import KNNFewShot
from .mipro_optimizer_v2 import MIPROv2
from .random_search import BootstrapFewShotWithRandomSearch
from .simba import SIMBA
from .teleprompt import Teleprompter
from .vanilla import LabeledFewShot

__all__ = ["BetterTogether", "BootstrapFewShot", "BootstrapFinetune", "COPRO", "Ensemble", "GEPA", "KNNFewShot", "MIPROv2", "BootstrapFewShotWithRandomSearch", "SIMBA", "Teleprompter", "LabeledFewShot"]
