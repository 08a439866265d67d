"""DSPy's import path ``dspy.teleprompt.gepa.gepa``: GEPA and its detailed results."""

from ...optim.gepa import GEPA
from ...optim.gepa import GEPADetailedResults as DspyGEPAResult

__all__ = ["GEPA", "DspyGEPAResult"]
