"""Adapters between signatures and chat messages."""

from .base import Adapter, output_json_schema
from .chat_adapter import ChatAdapter
from .json_adapter import JSONAdapter
from .two_step_adapter import TwoStepAdapter
from .types import Code, History, Image, ToolCalls, Type
from .values import format_value, parse_value

__all__ = ["Adapter", "ChatAdapter", "JSONAdapter", "TwoStepAdapter", "Code", "History", "Image", "Type", "ToolCalls", "format_value", "parse_value",
           "output_json_schema"]
