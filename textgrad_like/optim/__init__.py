"""``textgrad_like.optim``: gradient and search optimizers (as ``torch.optim``)."""

from .better_together import BetterTogether
from .bootstrap import BootstrapFewShot
from .copro import COPRO
from .ensemble import Ensemble
from .feedback import Rollout, gradients_from_metric, reflective_dataset_from_gradients, run_rollouts
from .finetune import BootstrapFinetune, train_lora
from .gepa import GEPA, GEPADetailedResults
from .knn_fewshot import HashingEmbedder, KNNFewShot
from .labeled_fewshot import LabeledFewShot
from .mipro import MIPROv2
from .optimizer import Optimizer
from .proposer import GroundedProposer
from .random_search import BootstrapFewShotWithRandomSearch, BootstrapRS
from .simba import SIMBA
from .teleprompter import Teleprompter
from .tgd import TGD, TextualGradientDescent

__all__ = ["Optimizer", "Teleprompter", "TextualGradientDescent", "TGD", "LabeledFewShot", "BootstrapFewShot",
           "BootstrapFewShotWithRandomSearch", "BootstrapRS", "KNNFewShot", "HashingEmbedder", "MIPROv2",
           "GroundedProposer", "COPRO", "Ensemble", "GEPA", "GEPADetailedResults", "SIMBA", "Rollout",
           "gradients_from_metric", "reflective_dataset_from_gradients", "run_rollouts", "BootstrapFinetune", "BetterTogether", "train_lora"]
