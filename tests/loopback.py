"""Real servers on 127.0.0.1, in a thread of the test process: an ASGI application under uvicorn,
or a scripted `http.server` handler (the OpenAI-compatible servers the clients are tested against).

    with serve_app(create_app(model, tokenizer)) as url:   # http://127.0.0.1:PORT
        httpx.get(f"{url}/v1/models")
    class Scripted(LoopbackHTTPServer): ...                  # builds its handler, then super().__init__(Handler)
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve `app` until the block ends; yields its base URL."""
    import uvicorn

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "the test server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


class LoopbackHTTPServer:
    """`handler` served on a free loopback port while in `with`; `url` is its OpenAI-style API root."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()  # returns once serve_forever has stopped
        self.httpd.server_close()
        self.thread.join()


def send_body(handler: BaseHTTPRequestHandler, status: int, data: bytes, content_type: str = "application/json") -> None:
    """Write one whole response with its length (keep-alive clients need it to find the end)."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
