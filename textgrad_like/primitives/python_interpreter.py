"""DSPy's import path ``dspy.primitives.python_interpreter``: PythonInterpreter (ours lives in ``textgrad_like.tools``)."""

from ..tools.python_interpreter import PythonInterpreter

__all__ = ["PythonInterpreter"]
