"""A small OpenAI-compatible HTTP server over any textgrad_like LM (typically a ``LocalLM``).

Serves ``POST /v1/chat/completions`` and ``GET /v1/models`` with the standard library only, so any
OpenAI client — or ``LM("openai/<name>", api_base="http://127.0.0.1:PORT/v1", api_key="local")`` —
can use an in-process model. Concurrent requests run on threads and therefore reach the local
model's dynamic batcher together. Streaming is not supported.

Run it with ``python -m textgrad_like.lm.openai_server --model local/embedded --port 8000``.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import ConfigurationError, TextgradLikeError
from .base import BaseLM

logger = logging.getLogger(__name__)

# Request fields passed on to the LM; everything else an OpenAI client may send is ignored.
_FORWARDED = ("temperature", "top_p", "n", "max_tokens", "max_completion_tokens", "stop", "response_format",
              "regex", "choices")
MAX_BODY_BYTES = 16 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # route access logs to logging, not stderr
        logger.debug("openai_server: " + format, *args)

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self._send(status, {"error": {"message": message, "type": kind, "code": status}})

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            self._send(200, {"object": "list", "data": [
                {"id": self.server.model_name, "object": "model", "created": self.server.created, "owned_by": "local"}]})
        elif path in ("/health", "/v1/health"):
            self._send(200, {"status": "ok"})
        else:
            self._error(404, f"No route GET {self.path}. Use /v1/models or POST /v1/chat/completions.")

    def do_POST(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._error(404, f"No route POST {self.path}. Use /v1/chat/completions.")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_BODY_BYTES:
                raise ConfigurationError("The request needs a JSON body (Content-Length between 1 and 16 MiB).")
            request = json.loads(self.rfile.read(length))
            if not isinstance(request, dict):
                raise ConfigurationError("The request body must be a JSON object.")
            self._send(200, self.server.complete(request))
        except (ConfigurationError, json.JSONDecodeError, ValueError, TypeError) as exc:
            self._error(400, str(exc))
        except TextgradLikeError as exc:
            self._error(500, str(exc), "server_error")
        except Exception as exc:  # a bug or backend failure: report it, keep serving
            logger.exception("openai_server: request failed")
            self._error(500, f"{type(exc).__name__}: {exc}", "server_error")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], lm: BaseLM, model_name: str) -> None:
        super().__init__(address, _Handler)
        self.lm = lm
        self.model_name = model_name
        self.created = int(time.time())

    def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise ConfigurationError("'messages' must be a non-empty list of {'role': ..., 'content': ...} objects.")
        if request.get("stream"):
            raise ConfigurationError("stream=true is not supported by this server; send stream=false.")
        kwargs = {k: request[k] for k in _FORWARDED if request.get(k) is not None}
        if float(kwargs.get("temperature") or 0.0) > 0:
            kwargs["cache"] = False  # sampled replies must differ between requests
        response = self.lm.forward(messages=messages, **kwargs)
        reasons = list(response.extra.get("finish_reasons") or []) if isinstance(response.extra, dict) else []
        choices = [{"index": i, "message": {"role": "assistant", "content": text},
                    "finish_reason": reasons[i] if i < len(reasons) and reasons[i] else "stop", "logprobs": None}
                   for i, text in enumerate(response.outputs)]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(request.get("model") or self.model_name),
            "choices": choices,
            "usage": {"prompt_tokens": response.prompt_tokens, "completion_tokens": response.completion_tokens,
                      "total_tokens": response.prompt_tokens + response.completion_tokens},
        }


class OpenAICompatibleServer:
    """Serve ``lm`` over HTTP: ``with OpenAICompatibleServer(lm) as server: ... server.base_url ...``.

    Args:
        lm: the LM that answers (any :class:`BaseLM`; ``LM("local/embedded")`` usually).
        host: interface to bind; keep ``127.0.0.1`` unless other machines must reach it.
        port: TCP port; 0 picks a free one (read it back from :attr:`port`).
        model_name: the id reported by ``/v1/models``.
    """

    def __init__(self, lm: BaseLM, host: str = "127.0.0.1", port: int = 0, model_name: str = "embedded") -> None:
        if not isinstance(lm, BaseLM):
            raise ConfigurationError("OpenAICompatibleServer needs an LM, e.g. LM('local/embedded').")
        self._server = _Server((host, int(port)), lm, model_name)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self._server.server_address[0]}:{self.port}/v1"

    def start(self) -> OpenAICompatibleServer:
        """Serve in a background thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, name="openai-server", daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted."""
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> OpenAICompatibleServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m textgrad_like.lm.openai_server --model local/embedded --port 8000``."""
    parser = argparse.ArgumentParser(description="Serve a local model over an OpenAI-compatible API.")
    parser.add_argument("--model", default="local/embedded", help="LM name, e.g. local/embedded or local/<dir>")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--name", default=None, help="model id shown by /v1/models (default: the part after local/)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--gguf-file", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from .lm import LM

    lm = LM(args.model, device=args.device, dtype=args.dtype, gguf_file=args.gguf_file)
    if hasattr(lm, "load"):
        lm.load()
    name = args.name or args.model.split("/", 1)[-1]
    server = OpenAICompatibleServer(lm, args.host, args.port, model_name=name)
    logger.info("Serving %s at %s", args.model, server.base_url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        logger.info("Stopping")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
