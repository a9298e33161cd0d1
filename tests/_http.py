"""A local HTTP file server for tests: Range support, request log and failure knobs.

    with serve_directory(root) as url:          # url is the base URL, e.g. "http://127.0.0.1:41234"
        url.fail_after_bytes["a.csv"] = 100     # announce the full length, close after 100 bytes
        url.corrupt.add("b.csv")                # serve b.csv with one byte flipped
        url.ignore_range = True                 # answer Range requests with a full 200
        ...
        url.requests                            # [Seen(path, range, status), ...]

Knob keys match a file either by its path relative to ``root`` or by its bare filename.
Knobs stay in effect until the test changes them.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["Seen", "ServedURL", "serve_directory"]

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass(frozen=True)
class Seen:
    """One request the server received."""

    path: str  # relative to the served root, e.g. "heart_disease/processed.va.data"
    range: str | None  # the raw Range header, if any
    status: int


class ServedURL(str):
    """The base URL of a running server (a ``str``), carrying its request log and knobs."""

    requests: list[Seen]
    fail_after_bytes: dict[str, int]
    corrupt: set[str]
    ignore_range: bool

    def _knob(self, rel: str) -> tuple[int | None, bool]:
        name = rel.rsplit("/", 1)[-1]
        fail = self.fail_after_bytes.get(rel, self.fail_after_bytes.get(name))
        return fail, rel in self.corrupt or name in self.corrupt


def _corrupted(data: bytes) -> bytes:
    if not data:
        return b"x"
    mid = len(data) // 2
    return data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :]


def _handler(root: Path, served: ServedURL) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass  # keep test output quiet

        def _reply(self, rel: str, status: int, headers: dict[str, str], body: bytes = b"") -> None:
            served.requests.append(Seen(rel, self.headers.get("Range"), status))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                return
            fail, _ = served._knob(rel)
            if fail is not None and fail < len(body):
                body = body[:fail]  # Content-Length still announces the full body
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

        def do_GET(self) -> None:
            rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
            target = (root / rel).resolve()
            if not target.is_relative_to(root) or not target.is_file():
                self._reply(rel, 404, {"Content-Length": "0"})
                return
            data = target.read_bytes()
            if served._knob(rel)[1]:
                data = _corrupted(data)
            match = _RANGE.match(self.headers.get("Range", "").strip())
            if match is None or served.ignore_range:
                self._reply(rel, 200, {"Content-Length": str(len(data))}, data)
                return
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
            if start >= len(data) or start > end:
                self._reply(rel, 416, {"Content-Range": f"bytes */{len(data)}", "Content-Length": "0"})
                return
            body = data[start : end + 1]
            headers = {"Content-Range": f"bytes {start}-{end}/{len(data)}", "Content-Length": str(len(body))}
            self._reply(rel, 206, headers, body)

        do_HEAD = do_GET

    return Handler


@contextmanager
def serve_directory(path: Path | str) -> Iterator[ServedURL]:
    """Serve ``path`` over HTTP on 127.0.0.1 (random port) in a thread; yield its base URL."""
    root = Path(path).resolve()
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    # The URL needs the bound port, and the handler needs the URL object: wire it after binding.
    url = ServedURL(f"http://127.0.0.1:{server.server_address[1]}")
    url.requests, url.fail_after_bytes, url.corrupt, url.ignore_range = [], {}, set(), False
    server.RequestHandlerClass = _handler(root, url)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
