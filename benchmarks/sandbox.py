"""Start-up time and per-execute latency of the Deno + Pyodide sandbox.

Run: python benchmarks/sandbox.py [--starts 3] [--calls 200]
(needs `python -m textgrad_like.tools.python_interpreter --setup` once).
"""

from __future__ import annotations

import argparse
import statistics
import time

from textgrad_like.tools.python_interpreter import PythonInterpreter, setup_sandbox


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
    return f"median {statistics.median(values) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    setup_sandbox()

    starts = []
    for _ in range(args.starts):
        began = time.perf_counter()
        with PythonInterpreter({}) as interp:
            interp.execute("1")
            starts.append(time.perf_counter() - began)
    print(f"start-up + first execute: {', '.join(f'{s:.2f} s' for s in starts)}")

    with PythonInterpreter(tools={"echo": lambda x: x}) as interp:
        interp.start()
        cases = {
            "expression": "9362158 / 1647",
            "print": "print('hello')",
            "state": "acc = globals().get('acc', 0) + 1",
            "host tool": "echo('ping')",
            "loop 1e5": "sum(i * i for i in range(100_000))",
        }
        for name, code in cases.items():
            times = []
            for _ in range(args.calls):
                began = time.perf_counter()
                interp.execute(code)
                times.append(time.perf_counter() - began)
            print(f"{name:>10}: {_ms(times)}")


if __name__ == "__main__":
    main()
