"""DSPy's import path ``dspy.utils.parallelizer``: ParallelExecutor (ours: ``textgrad_like.parallel``)."""

from ..parallel import ParallelExecutor

__all__ = ["ParallelExecutor"]
