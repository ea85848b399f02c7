"""A local stand-in for the team's alert channel: a loopback webhook that appends to a file.

``make ui`` starts it when ``MX_ALERT_WEBHOOK_URL`` is not set, and the failure automation
posts to it; in production the webhook block points at the real channel instead.

Run: ``python -m manifest_exchange.local.alert_receiver --port 8765 --out alerts.jsonl``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_MAX_BODY = 1 << 20


def make_server(port: int, out: Path) -> ThreadingHTTPServer:
    """A server on 127.0.0.1:``port`` that appends each POSTed body to ``out`` (JSON lines)."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = min(int(self.headers.get("Content-Length", "0")), _MAX_BODY)
            raw = self.rfile.read(length)
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            entry = {"received_at": dt.datetime.now(dt.UTC).isoformat(), "body": body}
            with lock, out.open("a", encoding="utf-8") as sink:
                sink.write(json.dumps(entry) + "\n")
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the file is the log

    out.parent.mkdir(parents=True, exist_ok=True)
    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def read_alerts(out: Path) -> list[dict[str, Any]]:
    if not out.is_file():
        return []
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    make_server(args.port, args.out).serve_forever()


if __name__ == "__main__":
    main()
