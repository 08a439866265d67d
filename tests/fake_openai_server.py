"""A real HTTP server on loopback that speaks the OpenAI chat-completions protocol (a local
stand-in for a hosted provider). Replies are computed from the request, so tests can check
what litellm sent."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self, reply: Any = None, error: Any = None) -> None:
        """``error(body, headers)`` may return ``(status, json_body)`` to fail a request (e.g. a 401
        whose body echoes the key, as a hostile or careless server would)."""
        self.error = error
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.reply = reply or (lambda body, i: f"reply {i} to: {body['messages'][-1]['content'][:40]}")
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                outer.requests.append(body)
                outer.headers.append(dict(self.headers))
                failure = outer.error(body, dict(self.headers)) if outer.error else None
                if failure is not None:
                    status, payload = failure
                    raw = json.dumps(payload).encode()
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                    return
                n = int(body.get("n") or 1)
                choices = [{"index": i, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": outer.reply(body, i)}} for i in range(n)]
                data = {"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
                        "choices": choices, "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}
                raw = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
