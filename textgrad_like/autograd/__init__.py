"""Losses and the textual backward pass."""

from .backward import backward, backward_graph, terminal_nodes
from .loss import FeedbackLoss, LMJudgeLoss, Loss, LossItem, MetricLoss
from .sft import SFTLoss
from .text_loss import FunctionLoss, MultiFieldLoss, TextLoss

__all__ = ["Loss", "LossItem", "MetricLoss", "FeedbackLoss", "LMJudgeLoss", "backward", "backward_graph",
           "terminal_nodes", "TextLoss", "FunctionLoss", "MultiFieldLoss", "SFTLoss"]
