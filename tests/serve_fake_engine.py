"""A stand-in inference server for tests/test_serve.py: speaks the OpenAI protocol on loopback.

    python tests/serve_fake_engine.py --host 127.0.0.1 --port PORT [--delay 1.0] [--fail]

It waits ``--delay`` seconds before listening (as a real engine loads weights), then serves
``GET /v1/models`` and ``POST /v1/chat/completions`` with replies computed from the request.
``--fail`` exits with status 3 at once, printing a message (a server that cannot start).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from textgrad_like.lm.base import BaseLM, LMResponse  # noqa: E402
from textgrad_like.lm.openai_server import OpenAICompatibleServer  # noqa: E402


class EchoLM(BaseLM):
    def __init__(self) -> None:
        super().__init__("echo", cache=False)

    def _generate(self, messages: list[dict[str, Any]], **kwargs: Any) -> LMResponse:
        if kwargs.get("response_format") is not None:
            text = json.dumps({"answer": "yes"})
        else:
            text = f"echo: {messages[-1]['content']}"
        return LMResponse(outputs=[text], prompt_tokens=3, completion_tokens=2, extra={"finish_reasons": ["stop"]})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--delay", type=float, default=0.5)
    parser.add_argument("--fail", action="store_true")
    args = parser.parse_args()
    if args.fail:
        print("fake engine: CUDA out of memory", flush=True)
        sys.exit(3)
    time.sleep(args.delay)
    server = OpenAICompatibleServer(EchoLM(), args.host, args.port, model_name=args.model)
    print(f"fake engine ready on {server.base_url}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
