"""A scripted OpenAI-compatible chat server on 127.0.0.1 for tests (no network beyond loopback).

    with FakeOpenAI(["```python\\n...\\n```", 429, "timeout", Reply("...", prompt_tokens=10)]) as server:
        agent = make_agent({..., "base_url": server.base_url})
        ...
        server.requests      # every POST /v1/chat/completions body (parsed JSON), in order
        server.remaining     # script steps not used yet

Each ``POST /v1/chat/completions`` consumes the next step of the script:

* a ``str`` — the assistant's reply text, returned as a ``chat.completion`` with ``usage`` (tokens
  estimated from the sizes; the exact string ``"timeout"`` is :data:`TIMEOUT` instead);
* :class:`Reply` — reply text with explicit token counts and finish reason;
* an ``int`` or :class:`Status` — that HTTP status with an OpenAI-style error body (429 carries
  ``Retry-After: 0``);
* :class:`Delay` (or ``"timeout"``) — hold the request longer than the client's timeout, answer nothing;
* a callable ``step(body) -> step`` — decides from the request body (e.g. match on the prompt).

When the script is used up the server answers 418 ("script exhausted"), which clients do not retry.
``GET /v1/models`` lists ``model`` for clients that probe.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeOpenAI", "Reply", "Status", "Delay", "TIMEOUT", "Step"]


@dataclass(frozen=True)
class Reply:
    """An assistant reply with explicit usage (None: estimated from the text sizes)."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"
    usage: bool = True
    """False: the response has no ``usage`` object at all."""


@dataclass(frozen=True)
class Status:
    """An HTTP error status with an OpenAI-style JSON error body."""

    code: int
    message: str = "scripted error"
    headers: dict[str, str] = field(default_factory=dict)
    error_code: str | None = None


@dataclass(frozen=True)
class Delay:
    """Hold the request ``seconds`` (longer than the client's timeout), then close without an answer."""

    seconds: float = 3.0


TIMEOUT = Delay(3.0)

Step = str | int | Reply | Status | Delay | Callable[[dict[str, Any]], Any]


def _as_step(step: Any, body: dict[str, Any]) -> Reply | Status | Delay:
    for _ in range(8):  # a callable may return another callable
        if not callable(step) or isinstance(step, Reply | Status | Delay):
            break
        step = step(body)
    if isinstance(step, Reply | Status | Delay):
        return step
    if isinstance(step, bool):
        raise TypeError(f"not a script step: {step!r}")
    if isinstance(step, int):
        return Status(step)
    if isinstance(step, str):
        return TIMEOUT if step == "timeout" else Reply(step)
    raise TypeError(f"not a script step: {step!r}")


def _estimate_tokens(body: dict[str, Any]) -> int:
    chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []) if isinstance(m, dict))
    return max(1, chars // 4)


class FakeOpenAI:
    """The server; a context manager that starts it on a free loopback port and stops it on exit."""

    def __init__(self, script: Sequence[Step] = (), *, model: str = "fake-model") -> None:
        self.script: list[Step] = list(script)
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.statuses: list[int | None] = []
        """Per chat request: the status answered (None for a Delay)."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> FakeOpenAI:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is not running"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self.script)

    def add(self, *steps: Step) -> None:
        """Append steps to the script while the server runs."""
        with self._lock:
            self.script.extend(steps)

    # --- answers ---------------------------------------------------------------------------------

    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> Reply | Status | Delay:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            raw = self.script.pop(0) if self.script else Status(418, "fake server: script exhausted")
        return _as_step(raw, body)

    def completion(self, body: dict[str, Any], reply: Reply, index: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": f"chatcmpl-fake-{index}",
            "object": "chat.completion",
            "created": 0,
            "model": str(body.get("model", self.model)),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text},
                    "finish_reason": reply.finish_reason,
                    "logprobs": None,
                }
            ],
        }
        if reply.usage:
            prompt = _estimate_tokens(body) if reply.prompt_tokens is None else reply.prompt_tokens
            completion = (
                max(1, len(reply.text) // 4) if reply.completion_tokens is None else reply.completion_tokens
            )
            out["usage"] = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
        return out


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                models = {"id": fake.model, "object": "model", "created": 0, "owned_by": "fake"}
                self._send_json(200, {"object": "list", "data": [models]})
            else:
                self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._send_json(400, {"error": {"message": "body is not JSON", "type": "invalid_request"}})
                return
            step = fake._next(body, {k.lower(): v for k, v in self.headers.items()})
            index = len(fake.requests)
            if isinstance(step, Delay):
                with fake._lock:
                    fake.statuses.append(None)
                fake._stop.wait(step.seconds)
                self.close_connection = True
                return
            if isinstance(step, Status):
                with fake._lock:
                    fake.statuses.append(step.code)
                headers = dict(step.headers)
                if step.code == 429:
                    headers.setdefault("Retry-After", "0")
                error = {"message": step.message, "type": "scripted_error", "code": step.error_code}
                self._send_json(step.code, {"error": error}, headers)
                return
            with fake._lock:
                fake.statuses.append(200)
            self._send_json(200, fake.completion(body, step, index))

    return Handler
