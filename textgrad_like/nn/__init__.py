"""``textgrad_like.nn``: modules, parameters and the computation graph (as ``torch.nn``)."""

from . import functional
from .graph import Graph, Node, current_graph, enable_grad, is_grad_enabled, no_grad, record
from .lora import LoRA
from .module import Module
from .parameter import Demos, Gradient, Instruction, Parameter, Variable

__all__ = ["functional", "LoRA", "Module", "Parameter", "Variable", "Instruction", "Demos", "Gradient", "Graph", "Node",
           "no_grad", "enable_grad", "is_grad_enabled", "current_graph", "record"]
