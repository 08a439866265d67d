"""What type checkers see as ``textgrad_like``'s public names (never imported at run time).

Mirrors ``_PUBLIC`` in ``__init__.py`` (``from .module import Name as Name``, one line a name);
tests/test_typing.py checks the two agree.
"""

from __future__ import annotations

from .adapters import Adapter as Adapter
from .adapters import ChatAdapter as ChatAdapter
from .adapters import Code as Code
from .adapters import JSONAdapter as JSONAdapter
from .adapters import TwoStepAdapter as TwoStepAdapter
from .adapters.types import History as History
from .adapters.types import Image as Image
from .adapters.types import ToolCalls as ToolCalls
from .adapters.types import Type as Type
from .autograd import FeedbackLoss as FeedbackLoss
from .autograd import LMJudgeLoss as LMJudgeLoss
from .autograd import MetricLoss as MetricLoss
from .autograd.text_loss import FunctionLoss as FunctionLoss
from .autograd.text_loss import MultiFieldLoss as MultiFieldLoss
from .autograd.text_loss import TextLoss as TextLoss
from .callbacks import BaseCallback as BaseCallback
from .errors import AdapterParseError as AdapterParseError
from .errors import BudgetExceeded as BudgetExceeded
from .errors import ContextWindowExceededError as ContextWindowExceededError
from .errors import LMError as LMError
from .errors import TextgradLikeError as TextgradLikeError
from .evaluate import Evaluate as Evaluate
from .lm import LM as LM
from .lm import BaseLM as BaseLM
from .lm import Budget as Budget
from .lm import budget as budget
from .lm import configure_cache as configure_cache
from .lm import inspect_history as inspect_history
from .lm import track_usage as track_usage
from .lm.embedder import Embedder as Embedder
from .nn import Module as Module
from .nn import Parameter as Parameter
from .nn import Variable as Variable
from .nn import no_grad as no_grad
from .nn.module import load as load
from .optim import COPRO as COPRO
from .optim import GEPA as GEPA
from .optim import SIMBA as SIMBA
from .optim import BootstrapFewShot as BootstrapFewShot
from .optim import BootstrapFewShotWithRandomSearch as BootstrapFewShotWithRandomSearch
from .optim import BootstrapRS as BootstrapRS
from .optim import Ensemble as Ensemble
from .optim import KNNFewShot as KNNFewShot
from .optim import LabeledFewShot as LabeledFewShot
from .optim import MIPROv2 as MIPROv2
from .optim.better_together import BetterTogether as BetterTogether
from .optim.finetune import BootstrapFinetune as BootstrapFinetune
from .predict import ChainOfThought as ChainOfThought
from .predict import Predict as Predict
from .predict.aggregation import majority as majority
from .predict.best_of_n import BestOfN as BestOfN
from .predict.multi_chain_comparison import MultiChainComparison as MultiChainComparison
from .predict.parallel import Parallel as Parallel
from .predict.program_of_thought import ProgramOfThought as ProgramOfThought
from .predict.react import ReAct as ReAct
from .predict.refine import Refine as Refine
from .predict.retrieve import Retrieve as Retrieve
from .primitives import Completions as Completions
from .primitives import Example as Example
from .primitives import Prediction as Prediction
from .primitives import RunHistory as RunHistory
from .retrievers import BM25Retriever as BM25Retriever
from .retrievers import ColBERTv2 as ColBERTv2
from .retrievers import EmbeddingsRetriever as EmbeddingsRetriever
from .signatures import InputField as InputField
from .signatures import OutputField as OutputField
from .signatures import Signature as Signature
from .signatures import SignatureMeta as SignatureMeta
from .signatures import ensure_signature as ensure_signature
from .signatures import infer_prefix as infer_prefix
from .signatures import make_signature as make_signature
from .streaming import StreamListener as StreamListener
from .streaming import streamify as streamify
from .tools.python_interpreter import PythonInterpreter as PythonInterpreter
from .tools.tool import Tool as Tool
from .utils.asyncify import asyncify as asyncify
from .utils.syncify import syncify as syncify
