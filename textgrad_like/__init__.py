"""textgrad_like: programming — not prompting — language models, in PyTorch's shape.

DSPy's public names live here, so ``import textgrad_like as dspy`` runs DSPy programs. Names are
imported on first use, which keeps ``import textgrad_like`` fast (no torch, no litellm).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .settings import configure, context, settings

__version__ = "0.1.0"

# public name -> (module, attribute)
_LAZY: dict[str, tuple[str, str]] = {
    # primitives
    "Example": (".primitives", "Example"),
    "Prediction": (".primitives", "Prediction"),
    "Completions": (".primitives", "Completions"),
    # LMs
    "LM": (".lm", "LM"),
    "BaseLM": (".lm", "BaseLM"),
    "inspect_history": (".lm", "inspect_history"),
    "budget": (".lm", "budget"),
    "Budget": (".lm", "Budget"),
    "track_usage": (".lm", "track_usage"),
    "configure_cache": (".lm", "configure_cache"),
    # signatures
    "Signature": (".signatures", "Signature"),
    "InputField": (".signatures", "InputField"),
    "OutputField": (".signatures", "OutputField"),
    "ensure_signature": (".signatures", "ensure_signature"),
    "make_signature": (".signatures", "make_signature"),
    # adapters
    "Adapter": (".adapters", "Adapter"),
    "ChatAdapter": (".adapters", "ChatAdapter"),
    "JSONAdapter": (".adapters", "JSONAdapter"),
    # nn
    "Module": (".nn", "Module"),
    "Parameter": (".nn", "Parameter"),
    "Variable": (".nn", "Variable"),
    "no_grad": (".nn", "no_grad"),
    "load": (".nn.module", "load"),
    # modules
    "Predict": (".predict", "Predict"),
    "ChainOfThought": (".predict", "ChainOfThought"),
    "ReAct": (".predict.react", "ReAct"),
    "ProgramOfThought": (".predict.program_of_thought", "ProgramOfThought"),
    "BestOfN": (".predict.best_of_n", "BestOfN"),
    "Refine": (".predict.refine", "Refine"),
    "Parallel": (".predict.parallel", "Parallel"),
    "MultiChainComparison": (".predict.multi_chain_comparison", "MultiChainComparison"),
    "majority": (".predict.aggregation", "majority"),
    "Retrieve": (".predict.retrieve", "Retrieve"),
    "Tool": (".tools.tool", "Tool"),
    "streamify": (".streaming", "streamify"),
    "StreamListener": (".streaming", "StreamListener"),
    "BaseCallback": (".callbacks", "BaseCallback"),
    # optimizers
    "LabeledFewShot": (".optim", "LabeledFewShot"),
    "BootstrapFewShot": (".optim", "BootstrapFewShot"),
    "BootstrapFewShotWithRandomSearch": (".optim", "BootstrapFewShotWithRandomSearch"),
    "BootstrapRS": (".optim", "BootstrapRS"),
    "KNNFewShot": (".optim", "KNNFewShot"),
    "MIPROv2": (".optim", "MIPROv2"),
    "COPRO": (".optim", "COPRO"),
    "Ensemble": (".optim", "Ensemble"),
    "GEPA": (".optim", "GEPA"),
    "BootstrapFinetune": (".optim.finetune", "BootstrapFinetune"),
    "BetterTogether": (".optim.better_together", "BetterTogether"),
    "SIMBA": (".optim", "SIMBA"),
    # losses
    "TextLoss": (".autograd.text_loss", "TextLoss"),
    "FunctionLoss": (".autograd.text_loss", "FunctionLoss"),
    "MultiFieldLoss": (".autograd.text_loss", "MultiFieldLoss"),
    "MetricLoss": (".autograd", "MetricLoss"),
    "FeedbackLoss": (".autograd", "FeedbackLoss"),
    "LMJudgeLoss": (".autograd", "LMJudgeLoss"),
    # evaluation
    "Evaluate": (".evaluate", "Evaluate"),
    # retrieval and tools
    "ColBERTv2": (".retrievers", "ColBERTv2"),
    "BM25Retriever": (".retrievers", "BM25Retriever"),
    "EmbeddingsRetriever": (".retrievers", "EmbeddingsRetriever"),
    "PythonInterpreter": (".tools.python_interpreter", "PythonInterpreter"),
    # run reports
    "RunHistory": (".primitives", "RunHistory"),
    # errors
    "AdapterParseError": (".errors", "AdapterParseError"),
    "BudgetExceeded": (".errors", "BudgetExceeded"),
    "TextgradLikeError": (".errors", "TextgradLikeError"),
}

_SUBMODULES = {"nn", "optim", "evaluate", "datasets", "utils", "adapters", "signatures", "primitives", "lm",
               "predict", "errors", "retrievers", "tools", "autograd", "callbacks", "parallel", "streaming", "tracing", "teleprompt"}


def register_lazy(name: str, module: str, attribute: str) -> None:
    _LAZY[name] = (module, attribute)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module_name, __name__), attribute)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'textgrad_like' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBMODULES})


if TYPE_CHECKING:  # pragma: no cover - names for type checkers and IDEs
    from .adapters import Adapter, ChatAdapter, JSONAdapter
    from .autograd import FeedbackLoss, LMJudgeLoss, MetricLoss
    from .autograd.text_loss import FunctionLoss, MultiFieldLoss, TextLoss
    from .callbacks import BaseCallback
    from .errors import AdapterParseError, BudgetExceeded, TextgradLikeError
    from .evaluate import Evaluate
    from .lm import LM, BaseLM, Budget, budget, configure_cache, inspect_history, track_usage
    from .nn import Module, Parameter, Variable, no_grad
    from .nn.module import load
    from .optim import (
        COPRO,
        GEPA,
        SIMBA,
        BootstrapFewShot,
        BootstrapFewShotWithRandomSearch,
        BootstrapRS,
        Ensemble,
        KNNFewShot,
        LabeledFewShot,
        MIPROv2,
    )
    from .optim.better_together import BetterTogether
    from .optim.finetune import BootstrapFinetune
    from .predict import ChainOfThought, Predict
    from .predict.aggregation import majority
    from .predict.best_of_n import BestOfN
    from .predict.multi_chain_comparison import MultiChainComparison
    from .predict.parallel import Parallel
    from .predict.program_of_thought import ProgramOfThought
    from .predict.react import ReAct
    from .predict.refine import Refine
    from .predict.retrieve import Retrieve
    from .primitives import Completions, Example, Prediction, RunHistory
    from .retrievers import BM25Retriever, ColBERTv2, EmbeddingsRetriever
    from .signatures import InputField, OutputField, Signature, ensure_signature, make_signature
    from .streaming import StreamListener, streamify
    from .tools.python_interpreter import PythonInterpreter
    from .tools.tool import Tool

__all__ = [  # noqa: RUF022 - grouped as in _LAZY
    "configure", "context", "settings", "register_lazy",
    "Example",
    "Prediction",
    "Completions",
    "LM",
    "BaseLM",
    "inspect_history",
    "budget",
    "Budget",
    "track_usage",
    "configure_cache",
    "Signature",
    "InputField",
    "OutputField",
    "ensure_signature",
    "make_signature",
    "Adapter",
    "ChatAdapter",
    "JSONAdapter",
    "Module",
    "Parameter",
    "Variable",
    "no_grad",
    "load",
    "Predict",
    "ChainOfThought",
    "ReAct",
    "ProgramOfThought",
    "BestOfN",
    "Refine",
    "Parallel",
    "MultiChainComparison",
    "majority",
    "Retrieve",
    "Tool",
    "streamify",
    "StreamListener",
    "BaseCallback",
    "LabeledFewShot",
    "BootstrapFewShot",
    "BootstrapFewShotWithRandomSearch",
    "BootstrapRS",
    "KNNFewShot",
    "MIPROv2",
    "COPRO",
    "Ensemble",
    "GEPA",
    "BootstrapFinetune",
    "BetterTogether",
    "SIMBA",
    "TextLoss",
    "FunctionLoss",
    "MultiFieldLoss",
    "MetricLoss",
    "FeedbackLoss",
    "LMJudgeLoss",
    "Evaluate",
    "ColBERTv2",
    "BM25Retriever",
    "EmbeddingsRetriever",
    "PythonInterpreter",
    "RunHistory",
    "AdapterParseError",
    "BudgetExceeded",
    "TextgradLikeError",
]
