"""A Zenodo stand-in on loopback: the records API and file downloads as zenodo.org serves them, so that
`AIMI_ZENODO_URL` can point the product (and an image build) at it. It can lie about a file (size, checksum), drop a
download halfway once, and serve bytes other than those its record states (a tampered mirror)."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Zenodo:
    """Serves `/api/records/<id>` and `/api/records/<id>/files/<key>/content` (with HTTP Range), like Zenodo."""

    def __init__(self, record: str, host: str = "127.0.0.1") -> None:
        self.record_id = record
        self.files: dict[str, bytes] = {}
        self.stated: dict[str, dict[str, object]] = {}  # what the record says, when it should lie
        self.drop_once = False
        self.requests: list[tuple[str, str]] = []
        self.httpd = http.server.ThreadingHTTPServer((host, 0), self._handler())
        self.url = f"http://{host}:{self.httpd.server_address[1]}"

    def record(self) -> dict[str, object]:
        files = [{"key": key, "size": len(data), "checksum": "md5:" + hashlib.md5(data).hexdigest(),
                  # Zenodo's own host: the client must take the link under its configured base URL
                  "links": {"self": f"https://zenodo.org/api/records/{self.record_id}/files/{key}/content"}}
                 | self.stated.get(key, {}) for key, data in self.files.items()]
        return {"id": int(self.record_id), "files": files}

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        zenodo = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                zenodo.requests.append((self.path, self.headers.get("Range", "")))
                if self.path == f"/api/records/{zenodo.record_id}":
                    return self._send(200, json.dumps(zenodo.record()).encode(), "application/json")
                match = re.fullmatch(rf"/api/records/{zenodo.record_id}/files/(.+)/content", self.path)
                if not match or match.group(1) not in zenodo.files:
                    return self._send(404, b"not found", "text/plain")
                data = zenodo.files[match.group(1)]
                asked = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                start = int(asked.group(1)) if asked else 0
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if zenodo.drop_once:  # half the file, then the connection dies
                    zenodo.drop_once = False
                    self.wfile.write(data[start:len(data) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(data[start:])

            def _send(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@contextmanager
def serving(record: str) -> Iterator[Zenodo]:
    """A running stand-in for Zenodo record `record`, stopped on exit."""
    server = Zenodo(record)
    thread = threading.Thread(target=server.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
