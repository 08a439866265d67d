"""Losses, the textual backward pass, and the bridges for Python steps (``function``, ``Function``)."""

from ..nn.traced import detach, grad_fn
from .backward import BackwardEngine, backward, terminal_nodes
from .bridge import Function, FunctionCtx, function
from .loss import FeedbackLoss, LMJudgeLoss, Loss, LossItem, MetricLoss
from .sft import SFTLoss
from .text_loss import FunctionLoss, MultiFieldLoss, TextLoss

__all__ = ["Loss", "LossItem", "MetricLoss", "FeedbackLoss", "LMJudgeLoss", "backward", "BackwardEngine",
           "terminal_nodes", "TextLoss", "FunctionLoss", "MultiFieldLoss", "SFTLoss", "function", "Function",
           "FunctionCtx", "grad_fn", "detach"]
