"""A real HTTP server on 127.0.0.1 serving a folder of archives, with faults on demand.

It plays the official download hosts (and a user's local mirror) for the fetch tests: it
answers Range requests as those hosts do, and per file it can answer 404, serve corrupted
bytes, or drop the connection halfway through the body.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FAULTS = ("404", "corrupt", "drop", "drop_once")


class Mirror:
    """`url` serves `root` (`<url>/<dataset>/<file>`); `faults[<dataset>/<file>]` is one of
    FAULTS; `requests` lists (path, Range header) in the order they came."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.faults: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, path: str) -> int:
        return sum(p == path for p, _ in self.requests)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet: tests read `requests`
                pass

            def do_GET(self) -> None:
                path = self.path.lstrip("/")
                mirror.requests.append((path, self.headers.get("Range")))
                file = (mirror.root / path).resolve()
                fault = mirror.faults.get(path)
                inside = mirror.root.resolve() in file.parents
                if fault == "404" or not file.is_file() or not inside:
                    self.send_error(404)
                    return
                data = file.read_bytes()
                if fault == "corrupt":
                    data = data[:-100] + bytes(b ^ 0xFF for b in data[-100:])
                start = 0
                if (ranged := self.headers.get("Range")) and ranged.startswith("bytes="):
                    start = int(ranged.removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if fault == "drop" or (fault == "drop_once" and mirror.count(path) == 1):
                    # Half the body, then the connection closes: the client sees it short.
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        return Handler
