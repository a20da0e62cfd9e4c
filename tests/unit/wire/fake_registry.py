"""A tiny Confluent-compatible schema registry on a real local HTTP server, for tests of the Confluent framing
and of registry outages: it can answer errors, answer slowly, and be stopped and started on the same port."""

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FIRST_ID = 4242  # IDs with more than one non-zero byte, to catch byte-order mistakes


class FakeRegistry:
    """Just POST /subjects/{subject}/versions and GET /schemas/ids/{id}, as Confluent's registry answers them."""

    def __init__(self) -> None:
        self.schemas: dict[int, dict[str, Any]] = {}  # id -> answer body of GET /schemas/ids/{id}
        self.subjects: dict[str, dict[str, int]] = {}  # subject -> schema text -> id
        self.requests: list[tuple[str, str]] = []
        self.authorizations: list[str | None] = []
        self.fail_with: tuple[int, bytes] | None = None  # (status, body) for every request
        self.location: str | None = None  # sent as Location (with the path asked) with every answer
        self.delay = 0.0
        self.lock = threading.Lock()

    def add(self, answer: dict[str, Any]) -> int:
        with self.lock:
            schema_id = FIRST_ID + len(self.schemas)
            self.schemas[schema_id] = answer
            return schema_id

    def handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                registry.requests.append(("GET", self.path))
                registry.authorizations.append(self.headers.get("Authorization"))
                match = re.fullmatch(r"/schemas/ids/(\d+)", self.path)
                answer = match and registry.schemas.get(int(match.group(1)))
                if answer:
                    self.answer(200, answer)
                else:
                    self.answer(404, {"error_code": 40403, "message": "Schema not found"})

            def do_POST(self) -> None:
                registry.requests.append(("POST", self.path))
                registry.authorizations.append(self.headers.get("Authorization"))
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                match = re.fullmatch(r"/subjects/([^/]+)/versions", self.path)
                assert match and self.headers["Content-Type"] == "application/vnd.schemaregistry.v1+json"
                versions = registry.subjects.setdefault(match.group(1), {})
                if body["schema"] not in versions:
                    versions[body["schema"]] = registry.add({"schema": body["schema"]})
                self.answer(200, {"id": versions[body["schema"]]})

            def answer(self, status: int, body: dict[str, Any]) -> None:
                time.sleep(registry.delay)
                raw = json.dumps(body).encode()
                if registry.fail_with:
                    status, raw = registry.fail_with
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                    if registry.location is not None:
                        self.send_header("Location", registry.location + self.path)
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except BrokenPipeError:  # the client gave up first (test_timeout)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


class Serving:
    """The fake registry on a real local HTTP server, which a test may stop and start again on the same port."""

    def __init__(self, fake: FakeRegistry) -> None:
        self.fake = fake
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.start()

    def start(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self.fake.handler())
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        assert self.server is not None and self.thread is not None
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
        self.server = None


def confluent(schema_id: int, body: bytes) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big") + body
