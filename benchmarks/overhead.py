"""Framework overhead: Predict and ChainOfThought calls per second with a zero-latency scripted LM.

Both libraries get an LM that answers instantly with a fixed, well-formed reply and no cache, so
the figure is the cost of signatures, adapters, modules, history and graph bookkeeping alone.
dspy is measured in the same run when it is installed. Also prints the import time of
``textgrad_like`` (target <= 0.25 s, without torch or transformers).

    python benchmarks/overhead.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import warnings
from types import SimpleNamespace


def import_time() -> tuple[float, bool]:
    code = ("import time,sys;t=time.perf_counter();import textgrad_like;"
            "print(time.perf_counter()-t, 'torch' in sys.modules or 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), out[1] == "True"


def rate(fn, seconds: float) -> float:
    for _ in range(20):  # warm-up
        fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(50):
            fn()
        n += 50
    return n / (time.perf_counter() - start)


def ours(seconds: float) -> dict[str, float]:
    import textgrad_like as tl
    from textgrad_like.lm.base import BaseLM, LMResponse

    class Instant(BaseLM):
        def __init__(self, reply: str) -> None:
            super().__init__("instant", cache=False)
            self.reply = reply

        def _generate(self, messages, **kwargs):
            return LMResponse(outputs=[self.reply], prompt_tokens=10, completion_tokens=5)

    predict = tl.Predict("question -> answer")
    predict.set_lm(Instant("<answer>\n42\n</answer>"))
    cot = tl.ChainOfThought("question -> answer: float")
    cot.set_lm(Instant("<reasoning>\nsix times seven\n</reasoning>\n<answer>\n42\n</answer>"))
    with tl.settings.context(disable_history=False):
        return {"Predict": rate(lambda: predict(question="What is 6 x 7?"), seconds),
                "ChainOfThought": rate(lambda: cot(question="What is 6 x 7?"), seconds)}


def theirs(seconds: float) -> dict[str, float] | None:
    try:
        import dspy
    except ImportError:
        return None
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)

    class Instant(dspy.BaseLM):
        def __init__(self, reply: str) -> None:
            super().__init__(model="instant", cache=False)
            self.reply = reply

        def forward(self, prompt=None, messages=None, **kwargs):
            message = SimpleNamespace(content=self.reply, tool_calls=None, reasoning_content=None)
            choice = SimpleNamespace(message=message, finish_reason="stop", logprobs=None, index=0)
            usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
            return SimpleNamespace(choices=[choice], usage=usage, model="instant", _hidden_params={})

    predict = dspy.Predict("question -> answer")
    predict.set_lm(Instant("[[ ## answer ## ]]\n42\n\n[[ ## completed ## ]]"))
    cot = dspy.ChainOfThought("question -> answer: float")
    cot.set_lm(Instant("[[ ## reasoning ## ]]\nsix times seven\n\n[[ ## answer ## ]]\n42\n\n[[ ## completed ## ]]"))
    assert predict(question="x").answer == "42" and cot(question="x").answer == 42.0
    return {"Predict": rate(lambda: predict(question="What is 6 x 7?"), seconds),
            "ChainOfThought": rate(lambda: cot(question="What is 6 x 7?"), seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    seconds, heavy = import_time()
    print(f"import textgrad_like: {seconds:.3f} s (torch/transformers imported: {heavy})")
    mine = ours(args.seconds)
    other = theirs(args.seconds)
    print(f"{'module':<16}{'textgrad_like calls/s':>24}{'dspy calls/s':>16}{'ratio':>8}")
    for name, value in mine.items():
        if other:
            print(f"{name:<16}{value:>24,.0f}{other[name]:>16,.0f}{value / other[name]:>7.1f}x")
        else:
            print(f"{name:<16}{value:>24,.0f}{'(not installed)':>16}")


if __name__ == "__main__":
    main()
