"""A fault-injecting HTTP proxy on loopback, in front of the real store.

Requests are forwarded byte for byte with their ``Host`` header, so SigV4 signatures made for
the proxy's address still verify at SeaweedFS. A seeded random share of requests is
answered ``503 SlowDown`` without reaching the store ("refused"), and a smaller share reaches
the store and then has its answer replaced by ``500 InternalError`` ("answer lost"): the
write happened but the client cannot know, the nastiest case for idempotency.
"""

from __future__ import annotations

import http.client
import random
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
    "<Message>injected by the test proxy</Message></Error>"
)
_HOP_HEADERS = {"connection", "transfer-encoding", "keep-alive", "content-length"}


class FaultyProxy:
    """Start with :meth:`start`; ``endpoint_url`` is what clients use instead of the store's."""

    def __init__(
        self, upstream: str, *, refuse: float, lose_answer: float = 0.0, seed: int = 1
    ) -> None:
        target = urlsplit(upstream)
        self.upstream_host = target.hostname or "127.0.0.1"
        self.upstream_port = target.port or 80
        self.refuse = refuse
        self.lose_answer = lose_answer
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        # (method, path) of every request, for tests that count what a client read.
        self.requests: list[tuple[str, str]] = []
        self.enabled = True
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FaultyProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _decide(self) -> str:
        with self.lock:
            roll = self.random.random()
            if not self.enabled:
                fate = "forwarded"
            elif roll < self.refuse:
                fate = "refused"
            elif roll < self.refuse + self.lose_answer:
                fate = "answer_lost"
            else:
                fate = "forwarded"
            self.counts[fate] += 1
            return fate

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length) if length else None
                fate = proxy._decide()
                with proxy.lock:
                    proxy.requests.append((self.command, self.path))
                if fate == "refused":
                    self._error(503, "SlowDown")
                    return
                upstream = http.client.HTTPConnection(
                    proxy.upstream_host, proxy.upstream_port, timeout=60
                )
                try:
                    headers = {k: v for k, v in self.headers.items()}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                    if fate == "answer_lost":
                        self._error(500, "InternalError")
                        return
                    self.send_response(answer.status, answer.reason)
                    for name, value in answer.getheaders():
                        if name.lower() not in _HOP_HEADERS:
                            self.send_header(name, value)
                    # A HEAD answer has no body but announces the object's size.
                    size = answer.getheader("Content-Length") if self.command == "HEAD" else None
                    self.send_header("Content-Length", size or str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    upstream.close()

            def _error(self, status: int, code: str) -> None:
                data = _ERROR.format(code=code).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
