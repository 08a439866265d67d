"""Modules that call LMs: Predict, ChainOfThought and the inference-time strategies built on them."""

from .aggregation import majority
from .best_of_n import BestOfN
from .chain_of_thought import ChainOfThought
from .multi_chain_comparison import MultiChainComparison
from .parallel import Parallel
from .predict import Predict
from .program_of_thought import ProgramOfThought
from .react import ReAct
from .refine import Refine
from .retrieve import Retrieve

__all__ = ["Predict", "ChainOfThought", "ReAct", "ProgramOfThought", "BestOfN", "Refine", "Parallel",
           "MultiChainComparison", "majority", "Retrieve"]
