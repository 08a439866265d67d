"""Streaming: status messages and output fields of a running program, as they are produced."""

from .listener import StreamListener
from .messages import StatusMessage, StatusMessageProvider, StreamChunk, StreamResponse
from .streamify import apply_sync_streaming, streamify, streaming_response

__all__ = ["StatusMessage", "StatusMessageProvider", "StreamChunk", "StreamListener", "StreamResponse",
           "apply_sync_streaming", "streamify", "streaming_response"]
