"""`poa-filter explain` against real HTTP servers on this machine: a redirect is never followed, so the
bearer token never reaches the server it points to (issue 18, item 10)."""

import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.settings import Settings
from pipeline.tools import explain_client

TOKEN = "s3cr3t-T0ken-abcdef0123456789"
CHF = "00-DB-12-34-56-78-90-C0"


class Recording(ThreadingHTTPServer):
    """Answers every GET with `status` (and `location`), and keeps each request's Authorization header."""

    def __init__(self, host: str, status: int, location: str | None = None) -> None:
        self.status, self.location = status, location
        self.authorizations: list[str | None] = []
        super().__init__((host, 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: Recording

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.authorizations.append(self.headers.get("Authorization"))
        body = b'{"error": "none"}'
        self.send_response(self.server.status)
        if self.server.location is not None:
            self.send_header("Location", self.server.location + self.path)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass


@pytest.fixture
def servers() -> Iterator[list[Recording]]:
    started: list[Recording] = []
    yield started
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_refused_naming_where_it_points_and_the_token_never_follows(
    servers: list[Recording], tmp_path: Path, status: int
) -> None:
    elsewhere = Recording("127.0.0.2", 200)  # another address, standing for another host
    worker = Recording("127.0.0.1", status, location=elsewhere.url)
    servers += [elsewhere, worker]
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    settings = replace(Settings(), http_token_file=str(token_file))

    with pytest.raises(explain_client.ExplainError) as refused:
        explain_client.ask(settings, CHF, None, url=worker.url)

    assert worker.authorizations == [f"Bearer {TOKEN}"]  # the worker asked was sent it, over loopback
    assert elsewhere.authorizations == []  # the server redirected to never heard from the command
    message = str(refused.value)
    assert f"answered {status}, a redirect to {elsewhere.url}/explain?device=" in message
    assert "not followed" in message and TOKEN not in message
