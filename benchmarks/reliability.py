"""Reliability figures: fault injection, kill -9 and resume, fuzzing, thread isolation.

Run from the repository root: ``python benchmarks/reliability.py`` (a few minutes on 2 cores; the
sandbox attacks write 2.4 GB of output: ``--sandbox-flood-mb 5`` makes them quicker, ``--no-sandbox``
skips them, ``--only attacks`` runs the attacks alone). Prints five lines:

    faults:  injected N / survived M runs (K typed failures reported, 0 bare exceptions)
    resume:  R resumes / 0 repeated calls (...)
    threads: 32 threads / 0 cross-talk
    fuzz:    F cases / 0 untyped errors
    attacks: A tried / H held (...)

The attacks (issue 18, see SECURITY.md): credentials under every name litellm accepts, inside
``api_base``, per call (spans) and echoed in a 401 body; a poisoned checkpoint call store and a
poisoned disk cache (pickles that would run a command); a truncated cache shard; an untyped error
from the MIPROv2 proposer and every validation call failing; a non-string LM output; a lone
surrogate and a cyclic input; whitespace runs up to 1 MB; a 5,000-digit number; another program's
state file; a load that fails midway; a pickle loaded without ``allow_pickle``; and the sandbox
attacks of ``benchmarks/sandbox_attacks.py``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TEXTGRAD_LIKE_DISK_CACHE", "0")
os.environ.setdefault("TQDM_DISABLE", "1")


def faults() -> str:
    import textgrad_like as dspy
    from tests.test_faults import OPTIMIZERS, TaskLM, data, exact
    from textgrad_like.errors import TextgradLikeError
    from textgrad_like.utils.faults import FaultyLM

    injected = survived = runs = typed = bare = 0
    names = ["Evaluate", *sorted(OPTIMIZERS)]
    for name in names:
        for seed in (0, 1):
            lm = FaultyLM(TaskLM(), failure_rate=0.2, seed=seed)
            runs += 1
            try:
                with dspy.context(lm=lm, num_threads=2):
                    if name == "Evaluate":
                        result = dspy.Evaluate(devset=data(0, 40), metric=exact, num_threads=2, max_errors=100)(
                            dspy.ChainOfThought("question -> answer"))
                        typed += result.failures
                    else:
                        OPTIMIZERS[name](1000)
                survived += 1
            except TextgradLikeError:
                typed += 1
            except Exception as exc:  # a bare exception is what this benchmark looks for
                bare += 1
                print(f"  {name} (seed {seed}): bare {type(exc).__name__}: {exc}")
            except BaseException as exc:  # pytest.skip of an optimizer that is not there
                print(f"  {name}: skipped ({exc})")
                runs -= 1
            injected += lm.failures
    return (f"faults:  injected {injected} / survived {survived} of {runs} runs "
            f"(Evaluate: {typed} failed examples reported with tracebacks; {bare} bare exceptions)")


def resume() -> str:
    from tests.test_resume import kill_resume_loop

    kills = repeated = paid = 0
    equal = True
    for name, seed in (("MIPROv2", 0), ("BootstrapRS", 1), ("GEPA", 2)):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                figures = kill_resume_loop(name, Path(tmp), kills=3, seed=seed)
            except Exception as exc:
                print(f"  {name}: {type(exc).__name__}: {exc}")
                equal = False
                continue
        kills += figures["kills"]
        repeated += figures["repeated_calls"]
        paid += figures["paid_calls"]
        equal = equal and figures["same_result"] and figures["same_prompts"]
    return (f"resume:  {kills} resumes / {repeated} repeated calls ({paid} paid calls, "
            f"results {'equal' if equal else 'DIFFERENT'} to uninterrupted runs)")


def fuzz() -> str:
    import pytest

    counter = _CaseCounter()
    code = pytest.main(["-q", "-p", "no:cacheprovider", "--no-header", "-o", "console_output_style=classic",
                        str(ROOT / "tests" / "test_fuzz.py")], plugins=[counter])
    return f"fuzz:    {counter.cases} cases / {counter.untyped} untyped errors (pytest exit {int(code)})"


class _CaseCounter:
    """Counts hypothesis test cases (and failures) while pytest runs the fuzz tests."""

    def __init__(self) -> None:
        self.cases = 0
        self.untyped = 0

    def pytest_runtest_call(self, item: Any) -> None:
        inner = getattr(item.obj, "hypothesis", None)
        if inner is not None:
            original = inner.inner_test

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.cases += 1
                return original(*args, **kwargs)

            inner.inner_test = counted
        else:
            self.cases += 1

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == "call" and report.failed:
            self.untyped += 1


def threads() -> str:
    from tests.test_thread_isolation import N_THREADS, worker

    barrier = threading.Barrier(N_THREADS)
    out: dict[int, Any] = {}
    pool = [threading.Thread(target=worker, args=(i, barrier, out)) for i in range(N_THREADS)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=300)
    cross = errors = 0
    for index, report in out.items():
        tag, lm = report["tag"], report["lm"]
        errors += "error" in report
        cross += len(lm.foreign)
        cross += sum(1 for a in report.get("eval_outputs", []) if not (a.startswith(f"{tag}-") or a == "wrong"))
        cross += sum(1 for d in report.get("demos", []) if not d["question"].startswith(f"{tag}-"))
        cross += sum(1 for e in lm.history
                     if f"{tag}-" not in json.dumps(e["messages"]) or
                     any(f"t{j}-" in json.dumps(e["messages"]) for j in range(N_THREADS) if j != index))
        # the thread's usage tracker saw exactly this thread's tokens (DSPy's tracker format has no call count)
        cross += int(report.get("tracker", {}).get("dummy", {}).get("prompt_tokens") != lm.usage.prompt_tokens)
    return f"threads: {len(out)} threads / {cross} cross-talk ({errors} thread errors)"


# --- attacks (issue 18) -------------------------------------------------------------------------------------------

SECRET = "sk-live-BENCH-5e4d3c2b1a09f8e7"
SECRET_NAMES = ("api_key", "api_token", "api_secret", "client_secret", "azure_password", "azure_ad_token",
                "aws_secret_access_key", "aws_session_token", "vertex_credentials", "token", "password",
                "anthropic_identity_token", "s3_secret_access_key", "apiKey")


def _leaks(blob: Any) -> bool:
    data = blob if isinstance(blob, bytes) else (blob if isinstance(blob, str) else json.dumps(blob, default=repr))
    data = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    return any(f.encode() in data for f in (SECRET, SECRET[3:], SECRET[-12:]))


class _Records:
    """Collect every log record (DEBUG up) of every logger while the block runs."""

    def __enter__(self) -> _Records:
        import logging

        self.records: list[Any] = []
        self.root = logging.getLogger()
        self.level = self.root.level
        self.handler = logging.Handler(logging.DEBUG)
        self.handler.emit = self.records.append  # type: ignore[method-assign]
        # loggers with handlers of their own (litellm prints its DEBUG lines): collect, do not print
        self.muted = {name: list(lg.handlers) for name, lg in logging.Logger.manager.loggerDict.items()
                      if isinstance(lg, logging.Logger) and lg.handlers}
        for name in self.muted:
            logging.getLogger(name).handlers = [self.handler]
        logging.disable(logging.NOTSET)
        self.root.addHandler(self.handler)
        self.root.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: Any) -> None:
        import logging

        self.root.removeHandler(self.handler)
        self.root.setLevel(self.level)
        for name, handlers in self.muted.items():
            logging.getLogger(name).handlers = handlers
        logging.disable(logging.CRITICAL)

    def text(self) -> str:
        out = []
        for r in self.records:
            try:
                out.append(f"{r.name} {r.getMessage()} {r.exc_text or ''}")
            except Exception:  # a record whose arguments do not format
                out.append(str(r.msg))
        return "\n".join(out)


def _spans() -> Any:
    """An in-memory OpenTelemetry exporter with tracing on (None without the SDK)."""
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError:
        return None
    from textgrad_like.tracing import enable_tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    enable_tracing(tracer_provider=provider)
    return exporter


def _span_text(exporter: Any) -> str:
    if exporter is None:
        return ""
    from textgrad_like.tracing import disable_tracing

    disable_tracing()
    parts = []
    for span in exporter.get_finished_spans():
        parts.append(json.dumps(dict(span.attributes or {}), default=repr) + str(span.status.description))
        parts.extend(json.dumps(dict(e.attributes or {}), default=repr) for e in span.events)
    return "\n".join(parts)


def _files_leak(root: Path) -> bool:
    return any(p.is_file() and _leaks(p.read_bytes()) for p in root.rglob("*"))


def _secret_everywhere(name: str) -> bool:
    """A credential under ``name`` (on the LM, on the predictor, per call) and inside ``api_base``
    reaches no history, cache, checkpoint, saved file, span or log record."""
    import textgrad_like as dspy
    from textgrad_like.lm.base import GLOBAL_HISTORY
    from textgrad_like.lm.cache import configure_cache
    from textgrad_like.optim.checkpoint import Checkpoint
    from textgrad_like.utils import DummyLM

    with tempfile.TemporaryDirectory() as tmp, _Records() as logs:
        root = Path(tmp)
        configure_cache(enable_disk_cache=True, disk_cache_dir=str(root / "cache"))
        exporter = _spans()
        lm = DummyLM([{"answer": "4"}] * 6, cache=True, **{name: SECRET},
                     api_base=f"https://user:{SECRET}@llm.example/v1")
        program = dspy.Predict("question -> answer")
        program.lm = lm
        program.config[name] = SECRET
        with Checkpoint(root / "ckpt").active():
            program(question="2+2?")
            program(question="3+3?", config={name: SECRET})
        program.save(root / "p.json")
        program.save(root / "p.pkl")
        program.save(root / "prog", save_program=True)
        spans = _span_text(exporter)
        configure_cache(enable_disk_cache=False)
        return not (_files_leak(root) or _leaks(list(lm.history)) or _leaks(list(GLOBAL_HISTORY))
                    or _leaks(lm.dump_state()) or _leaks(spans) or _leaks(logs.text()))


def _secret_in_401_body() -> bool:
    """A server that echoes the key (given per call) in its 401 body: the LMError, its chained
    provider error, spans and logs do not hold it."""
    import traceback

    import textgrad_like as dspy
    from tests.fake_openai_server import FakeOpenAI
    from textgrad_like.errors import LMError

    def unauthorized(body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization")
        return 401, {"error": {"message": f"Incorrect API key provided: {auth}", "code": "invalid_api_key"}}

    from textgrad_like.lm.lm import _litellm

    _litellm()  # imported before the log capture starts, so its own handlers are muted too
    with FakeOpenAI(error=unauthorized) as server, _Records() as logs:
        exporter = _spans()
        lm = dspy.LM("openai/bench", api_base=server.api_base, api_key="placeholder-key", num_retries=0, cache=False)
        try:
            lm("hello", api_key=SECRET)
            return False
        except LMError as exc:
            text = "".join(traceback.format_exception(exc))
        return not (_leaks(text) or _leaks(_span_text(exporter)) or _leaks(logs.text()))


def _poisoned_checkpoint() -> bool:
    import pytest

    from tests.test_attacks_storage import poison
    from tests.test_optim_checkpoint import CountingLM, Crash, run_rs

    with tempfile.TemporaryDirectory() as tmp:
        ckpt, marker = Path(tmp) / "ckpt", Path(tmp) / "PWNED"
        with pytest.raises(Crash):
            run_rs(CountingLM(crash_after=25), str(ckpt))
        if not poison(ckpt / "calls", marker):
            return False
        best, _ = run_rs(CountingLM(), str(ckpt))
        return best is not None and not marker.exists()


def _poisoned_cache() -> bool:
    from tests.test_attacks_storage import poison
    from textgrad_like.lm.base import LMResponse
    from textgrad_like.lm.cache import Cache

    with tempfile.TemporaryDirectory() as tmp:
        root, marker = Path(tmp) / "cache", Path(tmp) / "PWNED"
        Cache(enable_memory=False, disk_dir=str(root)).put("a" * 64, LMResponse(outputs=["x"]))
        if not poison(root, marker):
            return False
        fresh = Cache(enable_memory=False, disk_dir=str(root))
        return fresh.get("a" * 64) is None and not marker.exists() and fresh.enable_disk


def _truncated_shard() -> bool:
    import hashlib

    from tests.test_attacks_storage import shard_dirs
    from textgrad_like.lm.base import LMResponse
    from textgrad_like.lm.cache import Cache

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cache"
        keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(64)]
        cache = Cache(enable_memory=False, disk_dir=str(root))
        for k in keys:
            cache.put(k, LMResponse(outputs=[k]))
        cache.close()
        with open(shard_dirs(root)[0] / "cache.db", "r+b") as f:
            f.truncate(100)
        again = Cache(enable_memory=False, disk_dir=str(root))
        kept = sum(again.get(k) is not None for k in keys)
        for k in keys:
            again.put(k, LMResponse(outputs=[k]))
        return again.enable_disk and kept >= 48 and all(Cache(enable_memory=False, disk_dir=str(root)).get(k)
                                                        for k in keys)


def _failing_proposer() -> bool:
    import textgrad_like as dspy
    from tests.test_attacks_optim import BrokenProposer
    from tests.test_optim_mipro import RoutedLM, data, make

    dspy.configure(lm=RoutedLM())
    opt = make(prompt_model=BrokenProposer())
    best = opt.compile(dspy.Predict("question -> answer"), trainset=data(10, 20), valset=data(20, 32), num_trials=3,
                       minibatch=False)
    return best is not None and opt.state_dict()["proposer_failures"] > 0


def _every_validation_call_fails() -> bool:
    import textgrad_like as dspy
    from tests.test_attacks_optim import FailsOnValset
    from tests.test_optim_mipro import data, make
    from textgrad_like.errors import EvaluationError

    dspy.configure(lm=FailsOnValset())
    try:
        make(max_errors=2).compile(dspy.Predict("question -> answer"), trainset=data(10, 20), valset=data(20, 32),
                                   num_trials=3, minibatch=False)
    except EvaluationError:
        return True
    return False


def _typed_or_fine(fn: Any) -> bool:
    """The call works, or fails with one of the library's typed errors."""
    from textgrad_like.errors import TextgradLikeError

    try:
        fn()
    except TextgradLikeError:
        return True
    return True


def _non_string_output() -> bool:
    import textgrad_like as dspy
    from textgrad_like.errors import LMError
    from textgrad_like.lm.base import BaseLM, LMResponse

    class Weird(BaseLM):
        def _generate(self, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
            return LMResponse(outputs=[{"answer": 4}])  # type: ignore[list-item]

    try:
        dspy.Predict("question -> answer")(question="2+2?", lm=Weird("weird"))
    except LMError:
        return True
    except Exception:
        return False
    return True


def _surrogate() -> bool:
    import textgrad_like as dspy
    from textgrad_like.utils import DummyLM

    dspy.configure(lm=DummyLM([{"answer": "ok"}] * 2, cache=True))
    return _typed_or_fine(lambda: dspy.Predict("question -> answer")(question="caf\udcff"))


def _cycle() -> bool:
    import textgrad_like as dspy
    from textgrad_like.utils import DummyLM

    dspy.configure(lm=DummyLM([{"answer": "ok"}] * 2, cache=True))
    cyclic: dict[str, Any] = {"a": 1}
    cyclic["self"] = cyclic
    return _typed_or_fine(lambda: dspy.Predict("question: dict -> answer")(question=cyclic))


def _whitespace_runs() -> bool:
    """ChatAdapter and JSONAdapter parse replies with whitespace runs up to 1 MB in linear time
    (each under 5 s; the cubic parser took 39 s for 4,000 spaces)."""
    import textgrad_like as dspy
    from textgrad_like.errors import AdapterParseError

    signature = dspy.Signature("question -> answer")
    replies = ["<answer>" + " " * 1_000_000, "<answer>\n" + " \n\t" * 300_000 + "4\n</answer>",
               "[[ ## answer ## ]]" + " " * 1_000_000, "{" + " " * 1_000_000]
    for adapter in (dspy.ChatAdapter(), dspy.JSONAdapter()):
        for reply in replies:
            start = time.perf_counter()
            try:
                adapter.parse(signature, reply)
            except AdapterParseError:
                pass
            if time.perf_counter() - start > 5.0:
                return False
    return True


def _huge_number() -> bool:
    import textgrad_like as dspy
    from textgrad_like.errors import AdapterParseError

    signature = dspy.Signature("question -> answer: int")
    try:
        dspy.ChatAdapter().parse(signature, "<answer>\n" + "9" * 5000 + "\n</answer>")
    except AdapterParseError:
        return True
    except Exception:
        return False
    return True




def _two_step() -> Any:
    import textgrad_like as dspy

    class TwoStep(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = dspy.Predict("question -> draft")
            self.second = dspy.Predict("question, draft -> answer")

        def forward(self, question: str) -> Any:
            return self.second(question=question, draft=self.first(question=question).draft)

    return TwoStep()


def _cross_program_state() -> bool:
    import textgrad_like as dspy
    from textgrad_like.errors import StateDictError

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "two.json"
        trained = _two_step()
        trained.first.instruction.value = "FROM ANOTHER PROGRAM"
        trained.save(path)
        other = dspy.ChainOfThought("topic -> title")
        before = other.state_dict()
        try:
            other.load(path)
        except StateDictError:
            return other.state_dict() == before
        return False


def _fails_midway() -> bool:
    from textgrad_like.errors import StateDictError

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "two.json"
        _two_step().save(path)
        data = json.loads(path.read_text())  # DSPy's layout: predictor name -> state, plus metadata
        predictors = [name for name in data if name not in ("metadata", "state_dict")]
        data[predictors[0]]["signature"]["instructions"] = "HIJACKED"
        data[predictors[-1]]["demos"] = [{"question": "x"}, 5]
        path.write_text(json.dumps(data))
        program = _two_step()
        before = program.state_dict()
        try:
            program.load(path)
        except StateDictError:
            return program.state_dict() == before
        return False


def _pickle_without_flag() -> bool:
    import pickle

    import textgrad_like as dspy
    from textgrad_like.errors import StateDictError

    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "PWNED"
        payload = pickle.dumps(_Payload(str(marker)))
        for name in ("p.pkl", "p.json"):
            (Path(tmp) / name).write_bytes(payload)
            try:
                dspy.Predict("question -> answer").load(str(Path(tmp) / name))
                return False
            except StateDictError:
                pass
        return not marker.exists()


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.marker}",))


ATTACKS: dict[str, Any] = {
    **{f"secret:{name}": (lambda name=name: _secret_everywhere(name)) for name in SECRET_NAMES},
    "secret:echoed-in-401-body": _secret_in_401_body,
    "checkpoint:poisoned-call-store": _poisoned_checkpoint,
    "cache:poisoned-entry": _poisoned_cache,
    "cache:truncated-shard": _truncated_shard,
    "optim:untyped-error-from-proposer": _failing_proposer,
    "optim:every-validation-call-fails": _every_validation_call_fails,
    "lm:non-string-output": _non_string_output,
    "input:lone-surrogate": _surrogate,
    "input:cycle": _cycle,
    "parse:whitespace-runs-1MB": _whitespace_runs,
    "parse:5000-digit-number": _huge_number,
    "load:another-programs-state": _cross_program_state,
    "load:fails-midway": _fails_midway,
    "load:pickle-without-allow_pickle": _pickle_without_flag,
}


def attacks(sandbox: bool = True, flood_mb: int = 50) -> str:
    import textgrad_like as dspy

    results: list[tuple[str, bool]] = []
    for name, attack in ATTACKS.items():
        try:
            with dspy.context():
                held = bool(attack())
        except Exception as exc:  # an attack that got through as an untyped error did not hold
            print(f"  {name}: {type(exc).__name__}: {str(exc)[:200]}")
            held = False
        results.append((name, held))
    note = ""
    if sandbox:
        try:
            from benchmarks.sandbox_attacks import run_attacks
        except ImportError as exc:
            note = f"; sandbox attacks not run ({exc})"
        else:
            try:
                results += [(f"sandbox:{n}", ok) for n, ok in run_attacks(flood_mb=flood_mb)]
                note = f"; sandbox floods of 12 x {flood_mb} MB"
            except Exception as exc:  # no Deno / Pyodide on this machine
                note = f"; sandbox attacks not run ({type(exc).__name__}: {str(exc)[:100]})"
    broken = [n for n, ok in results if not ok]
    held = len(results) - len(broken)
    return (f"attacks: {len(results)} tried / {held} held"
            f"{' (BROKEN: ' + ', '.join(broken) + ')' if broken else ''}{note}")


def main() -> None:
    import argparse
    import logging

    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["faults", "resume", "threads", "fuzz", "attacks"], action="append")
    parser.add_argument("--no-sandbox", action="store_true", help="skip the sandbox attacks (minutes, 2.4 GB)")
    parser.add_argument("--sandbox-flood-mb", type=int, default=50, help="size of each sandbox flood line")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the fault runs log every injected failure; keep the figures readable
    parts = {"faults": faults, "resume": resume, "threads": threads, "fuzz": fuzz,
             "attacks": lambda: attacks(sandbox=not args.no_sandbox, flood_mb=args.sandbox_flood_mb)}
    lines = []
    for name in args.only or list(parts):
        start = time.time()
        line = parts[name]()
        lines.append(f"{line}  [{time.time() - start:.1f}s]")
        print(lines[-1], flush=True)
    print("\n".join(["", "summary:", *lines]))


if __name__ == "__main__":
    main()
