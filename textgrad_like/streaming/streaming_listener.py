"""DSPy's import path ``dspy.streaming.streaming_listener``: StreamListener."""

from .listener import StreamListener, find_predictor_for_stream_listeners

__all__ = ["StreamListener", "find_predictor_for_stream_listeners"]
