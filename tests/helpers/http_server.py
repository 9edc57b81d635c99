"""A loopback HTTP server (127.0.0.1 only) serving generated checkpoint files."""

from __future__ import annotations

import collections
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Optional, Set


class CheckpointServer:
    """Serves ``files`` (URL path -> bytes) and counts the GET requests per path.

    ``truncate``: paths whose transfer stops halfway (the full Content-Length is announced,
    then the connection is closed). ``hold``: while set, bodies wait for ``release()``
    after their first half, so a test can start several clients during one transfer.
    """

    def __init__(self) -> None:
        self.files: Dict[str, bytes] = {}
        self.truncate: Set[str] = set()
        self.requests: collections.Counter = collections.Counter()
        self.hold = False
        self._released = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests[self.path] += 1
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404, 'Not Found')
                    return
                self.send_response(200)
                self.send_header('Content-Type', 'application/octet-stream')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                half = len(data) // 2
                self.wfile.write(data[:half])
                self.wfile.flush()
                if self.path in server.truncate:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if server.hold:
                    server._released.wait(timeout=60)
                self.wfile.write(data[half:])

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

        self._httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self._thread: Optional[threading.Thread] = None

    def url(self, path: str) -> str:
        host, port = self._httpd.server_address[:2]
        return f'http://{host}:{port}{path}'

    def release(self) -> None:
        self._released.set()

    def __enter__(self) -> CheckpointServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._released.set()
        self._httpd.shutdown()
        self._httpd.server_close()


def unused_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]
