"""textgrad_like: programming — not prompting — language models, in PyTorch's shape.

DSPy's public names live here, so ``import textgrad_like as dspy`` runs DSPy programs. Names are
imported on first use, which keeps ``import textgrad_like`` fast (no torch, no litellm).

``_PUBLIC`` below is the one list of public names (name → the module that defines it); ``__all__``
and ``dir()`` are made from it. DSPy's submodule paths (``textgrad_like.teleprompt.ensemble``,
``textgrad_like.clients``, ...) are thin modules that re-export the same objects.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .settings import configure, context, settings

if TYPE_CHECKING:  # type checkers see the real objects (_exports.py mirrors _PUBLIC; tests/test_typing.py)
    from ._exports import *  # noqa: F403

__version__ = "0.1.0"

# public name -> module that defines it (relative to this package)
_PUBLIC: dict[str, str] = {
    # primitives
    "Example": ".primitives",
    "Prediction": ".primitives",
    "Completions": ".primitives",
    "RunHistory": ".primitives",
    # LMs
    "LM": ".lm",
    "BaseLM": ".lm",
    "Embedder": ".lm.embedder",
    "inspect_history": ".lm",
    "budget": ".lm",
    "Budget": ".lm",
    "track_usage": ".lm",
    "configure_cache": ".lm",
    # signatures
    "Signature": ".signatures",
    "SignatureMeta": ".signatures",
    "InputField": ".signatures",
    "OutputField": ".signatures",
    "ensure_signature": ".signatures",
    "make_signature": ".signatures",
    "infer_prefix": ".signatures",
    # adapters and their field types
    "Adapter": ".adapters",
    "ChatAdapter": ".adapters",
    "JSONAdapter": ".adapters",
    "TwoStepAdapter": ".adapters",
    "Code": ".adapters",
    "History": ".adapters.types",
    "Image": ".adapters.types",
    "Type": ".adapters.types",
    "ToolCalls": ".adapters.types",
    # nn
    "Module": ".nn",
    "Parameter": ".nn",
    "Variable": ".nn",
    "no_grad": ".nn",
    "load": ".nn.module",
    # modules
    "Predict": ".predict",
    "ChainOfThought": ".predict",
    "ReAct": ".predict.react",
    "ProgramOfThought": ".predict.program_of_thought",
    "BestOfN": ".predict.best_of_n",
    "Refine": ".predict.refine",
    "Parallel": ".predict.parallel",
    "MultiChainComparison": ".predict.multi_chain_comparison",
    "majority": ".predict.aggregation",
    "Retrieve": ".predict.retrieve",
    "Tool": ".tools.tool",
    "streamify": ".streaming",
    "StreamListener": ".streaming",
    "BaseCallback": ".callbacks",
    "asyncify": ".utils.asyncify",
    "syncify": ".utils.syncify",
    # optimizers
    "LabeledFewShot": ".optim",
    "BootstrapFewShot": ".optim",
    "BootstrapFewShotWithRandomSearch": ".optim",
    "BootstrapRS": ".optim",
    "KNNFewShot": ".optim",
    "MIPROv2": ".optim",
    "COPRO": ".optim",
    "Ensemble": ".optim",
    "GEPA": ".optim",
    "BootstrapFinetune": ".optim.finetune",
    "BetterTogether": ".optim.better_together",
    "SIMBA": ".optim",
    # losses
    "TextLoss": ".autograd.text_loss",
    "FunctionLoss": ".autograd.text_loss",
    "MultiFieldLoss": ".autograd.text_loss",
    "MetricLoss": ".autograd",
    "FeedbackLoss": ".autograd",
    "LMJudgeLoss": ".autograd",
    # evaluation
    "Evaluate": ".evaluate",
    # retrieval and tools
    "ColBERTv2": ".retrievers",
    "BM25Retriever": ".retrievers",
    "EmbeddingsRetriever": ".retrievers",
    "PythonInterpreter": ".tools.python_interpreter",
    # errors
    "AdapterParseError": ".errors",
    "BudgetExceeded": ".errors",
    "ContextWindowExceededError": ".errors",
    "LMError": ".errors",
    "TextgradLikeError": ".errors",
}

# subpackages reachable as attributes (``dspy.teleprompt``, ``dspy.clients``, ...)
_SUBMODULES = frozenset({
    "adapters", "autograd", "callbacks", "clients", "datasets", "errors", "evaluate", "lm", "nn", "optim",
    "parallel", "predict", "primitives", "retrievers", "signatures", "streaming", "teleprompt", "tools",
    "tracing", "utils",
})


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'textgrad_like' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC, *_SUBMODULES})


__all__ = ["configure", "context", "settings", *_PUBLIC]  # made from the one list above
