"""``textgrad_like.nn``: modules, parameters and the computation graph (as ``torch.nn``)."""

from . import functional
from .containers import ModuleDict, ModuleList, Sequential
from .graph import (
    FunctionNode,
    Graph,
    LMNode,
    LossNode,
    Node,
    current_graph,
    enable_grad,
    is_grad_enabled,
    no_grad,
    record,
)
from .lora import LoRA
from .module import IncompatibleKeys, Module
from .parameter import Demos, Gradient, Instruction, Parameter, Variable
from .traced import detach, grad_fn

# Losses live in textgrad_like.autograd (a layer above nn) and are also reachable here, as torch's are in
# torch.nn: resolved on first access, so importing nn does not import the autograd layer.
_LOSSES = ("Loss", "MetricLoss", "FeedbackLoss", "LMJudgeLoss", "TextLoss", "FunctionLoss", "MultiFieldLoss",
           "SFTLoss")


def __getattr__(name: str) -> object:
    if name in _LOSSES:
        import importlib

        return getattr(importlib.import_module("textgrad_like.autograd"), name)
    raise AttributeError(f"module 'textgrad_like.nn' has no attribute {name!r}")


__all__ = ["functional", "LoRA", "Module", "ModuleList", "ModuleDict", "Sequential", "IncompatibleKeys", "Parameter", "Variable", "Instruction", "Demos", "Gradient", "Graph", "Node",
           "no_grad", "enable_grad", "is_grad_enabled", "current_graph", "record", "LMNode", "FunctionNode", "LossNode",
           "grad_fn", "detach", *_LOSSES]
