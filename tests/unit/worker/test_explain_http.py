"""GET /explain through the real HTTP server (`serve_metrics`) on this machine, and `poa-filter explain` asking
it: answers from the state by the loop thread's bridge, protected as contract 7 says (loopback only, or a
bearer token, accepted only over TLS or from loopback), with the token never in a log line or message."""

import contextlib
import http.client
import json
import logging
import socket
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pipeline import cli
from pipeline.core.activation_windows import WindowPolicy
from pipeline.core.explanation import explain
from pipeline.core.filter_state import FilterState
from pipeline.core.key_value import MemoryBackend, StagedStore
from pipeline.core.outage_evidence import EvidencePolicy
from pipeline.core.records import ServiceRequest
from pipeline.settings import Settings, SettingsError
from pipeline.tools import explain_client
from pipeline.worker.explain_requests import ExplainRequests, InputsSeen
from pipeline.worker.http_access import HttpAccess, is_loopback, read_token, server_tls_context
from pipeline.worker.metrics import Readiness, WorkerMetrics, serve_local_explain, serve_metrics

BASE = 1_772_323_200_000  # 2026-03-01T00:00:00Z
CHF = "00-DB-12-34-56-78-90-C0"
ESME = "00-DB-12-34-56-78-90-A0"
REQUEST_ID = f"90-B3-D5-1F-30-01-00-00:{ESME}:1"
TOKEN = "s3cr3t-T0ken-abcdef0123456789"


def campaign_state() -> FilterState:
    """One tracked ESME on a HAN, activated at BASE: an AD1 at BASE + 5 min is suppressed."""
    state = FilterState(StagedStore(MemoryBackend()), WindowPolicy())
    state.put_esme_han(ESME, CHF)
    state.put_tracked(ESME, True)
    state.apply_service_request(ServiceRequest(REQUEST_ID, "11.3", ESME, None, None, BASE))
    return state


class LoopThread:
    """Stands in for the worker loop: the only thread that reads the state, serving the bridge each step."""

    def __init__(self, state: FilterState, bridge: ExplainRequests) -> None:
        self.state, self.bridge = state, bridge
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stopping.wait(0.005):
            self.bridge.serve(self.state)


@pytest.fixture
def state() -> FilterState:
    return campaign_state()


@pytest.fixture
def serve(state: FilterState) -> Iterator[Any]:
    """serve(access, host) starts a worker-like HTTP port with the bridge served by a loop thread; its port."""
    servers, loops = [], []

    def start(
        access: HttpAccess | None = None,
        host: str = "127.0.0.1",
        bridge: bool = True,
        ready: bool = True,
        local: bool | None = None,
    ) -> int:
        """The local explain listener (127.0.0.1 alone) when `local`, by default when no `access` is given;
        else the probe and scrape port on `host`."""
        requests = ExplainRequests() if bridge else None
        readiness = Readiness()
        if ready:
            readiness.set(None)
        if requests is not None:
            loop = LoopThread(state, requests)
            loop.thread.start()
            loops.append(loop)
        if access is None if local is None else local:
            server = serve_local_explain(0, WorkerMetrics(), readiness, requests, access or HttpAccess())
            assert server is not None
        else:
            server = serve_metrics(0, WorkerMetrics(), readiness, host=host, explain=requests, access=access)
        servers.append(server)
        return int(server.server_port)

    yield start
    for loop in loops:
        loop.stopping.set()
    for server in servers:
        server.shutdown()
        server.server_close()


def get(url: str, token: str | None = None, context: ssl.SSLContext | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            body = response.read()
            status = response.status
            kind = response.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        body, status, kind = exc.read(), exc.code, exc.headers["Content-Type"]
    return status, json.loads(body) if kind == "application/json" else body.decode()


def explain_url(port: int, query: str = f"device={CHF}&at={BASE + 300_000}", scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{port}/explain?{query}"


@pytest.fixture
def token_file(tmp_path: Path) -> str:
    path = tmp_path / "http-token"
    path.write_text(TOKEN + "\n")
    return str(path)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and its key, made by openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=poa-filter-test",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def client_context(cert: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cert)


# --- answers ------------------------------------------------------------------------------------------


def test_from_loopback_without_a_token_configured_the_answer_is_the_explanation(serve: Any) -> None:
    port = serve()
    status, answer = get(explain_url(port, f"device={CHF.lower()}&at=2026-03-01T00:05:00Z"))
    assert status == 200
    assert answer == {**explain(campaign_state(), CHF, BASE + 300_000), "worker": {"ready": True, "status": "ready"}}
    assert (answer["decision"]["outcome"], answer["decision"]["request_id"]) == ("suppressed", REQUEST_ID)


def test_an_answer_from_a_worker_not_ready_says_so(serve: Any, capsys: pytest.CaptureFixture[str]) -> None:
    status, answer = get(explain_url(serve(ready=False)))
    assert status == 200 and answer["worker"] == {"ready": False, "status": "starting"}
    assert explain_client.describe(answer)[2] == "the worker is not ready (starting): its state may be incomplete"


def test_without_a_time_it_explains_now(serve: Any) -> None:
    port = serve()
    status, answer = get(explain_url(port, f"device={ESME}"))
    assert status == 200
    assert answer["at"]["epoch_ms"] > BASE + 86_400_000  # the wall clock is long past the campaign
    assert answer["decision"]["reason"] == "no_activation_window"


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("device=00-DB-12", "EUI-64"),
        ("at=2026-03-01T00:05:00Z", "device=ID"),
        (f"device={CHF}&device={ESME}", "one device"),
        (f"device={CHF}&at=yesterday", "is neither ISO-8601"),
        (f"device={CHF}&at=1999-01-01T00:00:00Z", "outside the valid range"),
    ],
)
def test_a_bad_device_or_time_is_a_400_with_a_readable_error(serve: Any, query: str, words: str) -> None:
    status, answer = get(explain_url(serve(), query))
    assert status == 400
    assert words in answer["error"]


def test_an_unknown_path_is_404_and_metrics_and_ready_stay_open(serve: Any, token_file: str) -> None:
    port = serve(HttpAccess(token=read_token(token_file)))
    assert get(f"http://127.0.0.1:{port}/nothing")[0] == 404
    status, metrics = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200 and "poa_alerts_total" in metrics
    assert get(f"http://127.0.0.1:{port}/ready") == (200, "ready\n")  # the probe, unchanged


def test_no_loop_thread_answering_is_a_503_worker_busy(state: FilterState) -> None:
    bridge = ExplainRequests(wait_s=0.2)
    server = serve_local_explain(0, WorkerMetrics(), Readiness(), bridge, HttpAccess())
    assert server is not None
    try:
        status, answer = get(explain_url(server.server_port))
    finally:
        server.shutdown()
        server.server_close()
    assert status == 503 and answer["error"].startswith("worker busy")
    assert bridge.serve(state) == 0  # the abandoned question is not answered later


def test_a_process_without_the_bridge_says_it_does_not_explain(serve: Any) -> None:
    status, answer = get(explain_url(serve(bridge=False)))
    assert status == 503 and "not served" in answer["error"]


def test_an_explanation_that_raises_is_a_500_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenState(FilterState):
        def esmes_on_han(self, chf_id: str) -> Iterator[str]:
            raise RuntimeError("store unavailable")

    broken = BrokenState(StagedStore(MemoryBackend()), WindowPolicy())
    bridge = ExplainRequests()
    loop = LoopThread(broken, bridge)
    loop.thread.start()
    server = serve_local_explain(0, WorkerMetrics(), Readiness(), bridge, HttpAccess())
    assert server is not None
    try:
        status, answer = get(explain_url(server.server_port))
        assert status == 500 and "failed" in answer["error"]
        assert loop.thread.is_alive()
        loop.state = campaign_state()
        assert get(explain_url(server.server_port))[0] == 200
    finally:
        loop.stopping.set()
        server.shutdown()
        server.server_close()
    assert "an explanation failed" in caplog.text


# --- protection -----------------------------------------------------------------------------------------


def test_with_a_token_configured_a_client_without_it_or_with_another_is_refused(serve: Any, token_file: str) -> None:
    port = serve(HttpAccess(token=read_token(token_file)))
    status, answer = get(explain_url(port))
    assert (status, answer["error"]) == (401, "a bearer token is required (Authorization: Bearer <token>)")
    assert get(explain_url(port), token="wrong")[0] == 401
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(explain_url(port), timeout=10)
    assert refused.value.headers["WWW-Authenticate"] == 'Bearer realm="poa-filter"'
    assert get(explain_url(port), token=TOKEN + "x")[0] == 401
    status, answer = get(explain_url(port), token=TOKEN)
    assert status == 200 and answer["decision"]["outcome"] == "suppressed"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("192.0.2.2", False),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("::ffff:10.0.0.1", False),
        ("fe80::1%eth0", False),
        ("fd00::2", False),
        ("localhost", False),  # a name, not an address: the server sees addresses only
        ("", False),
    ],
)
def test_the_loopback_predicate(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("token", "authorization", "over_tls", "status"),
    [
        (None, None, False, 403),  # no token configured: loopback only
        (None, f"Bearer {TOKEN}", True, 403),
        (TOKEN, None, True, 401),
        (TOKEN, "Bearer wrong", True, 401),
        (TOKEN, f"Basic {TOKEN}", True, 401),
        (TOKEN, f"Bearer {TOKEN}", False, 403),  # a token in clear text across a network is refused
        (TOKEN, f"Bearer {TOKEN}", True, None),
        (TOKEN, f"bearer {TOKEN}", True, None),
    ],
)
def test_a_non_loopback_client_is_answered_only_with_the_token_over_tls(
    token: str | None, authorization: str | None, over_tls: bool, status: int | None
) -> None:
    access = HttpAccess(token=None if token is None else token.encode())
    refusal = access.refusal("192.0.2.2", authorization, over_tls)
    assert (refusal.status if refusal else None) == status


def test_over_tls_https_works_with_the_token_and_plain_http_is_refused(
    serve: Any, token_file: str, certificate: tuple[str, str]
) -> None:
    cert, key = certificate
    port = serve(HttpAccess(token=read_token(token_file), tls=server_tls_context(cert, key)))
    context = client_context(cert)
    status, answer = get(explain_url(port, scheme="https"), token=TOKEN, context=context)
    assert status == 200 and answer["decision"]["outcome"] == "suppressed"
    assert get(explain_url(port, scheme="https"), context=context)[0] == 401
    assert get(f"https://127.0.0.1:{port}/metrics", context=context)[0] == 200
    with pytest.raises((http.client.HTTPException, OSError)):
        get(explain_url(port), token=TOKEN)  # plain http to the TLS port: no HTTP answer at all


def test_the_token_never_reaches_a_log_line_an_error_or_a_repr(
    serve: Any, token_file: str, certificate: tuple[str, str], tmp_path: Path,
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    cert, key = certificate
    access = HttpAccess(token=read_token(token_file), tls=server_tls_context(cert, key))
    port = serve(access)
    context = client_context(cert)
    assert get(explain_url(port, scheme="https"), token=TOKEN, context=context)[0] == 200
    assert get(explain_url(port, scheme="https"), token=TOKEN[:-1], context=context)[0] == 401
    with pytest.raises((http.client.HTTPException, OSError)):
        get(explain_url(port), token=TOKEN)
    spaced = tmp_path / "spaced-token"
    spaced.write_text(f"{TOKEN} {TOKEN}")
    with pytest.raises(SettingsError) as error:
        read_token(str(spaced))
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err, repr(access), str(error.value)):
        assert TOKEN not in text


# --- behind a proxy in the pod (issue 18, item 11) --------------------------------------------------------


class Forwarder:
    """A local TCP forwarding proxy, as a sidecar or `socat` in the pod: it accepts on `source` (port 0: a free
    one) and connects on to `target` from `bind` (Istio's passthrough comes from 127.0.0.6)."""

    def __init__(self, target: tuple[str, int], bind: str = "127.0.0.1") -> None:
        self.target, self.bind = target, bind
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(self.target, source_address=(self.bind, 0))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def forwarders() -> Iterator[list[Forwarder]]:
    started: list[Forwarder] = []
    yield started
    for forwarder in started:
        forwarder.close()


@pytest.mark.parametrize("bind", ["127.0.0.1", "127.0.0.6"])
def test_on_the_probe_port_a_request_through_a_proxy_in_the_pod_is_refused_without_a_token(
    serve: Any, forwarders: list[Forwarder], bind: str
) -> None:
    """The proxy's connection comes from loopback (127.0.0.6 for Istio), as anyone's through it would."""
    port = serve(HttpAccess(), host="0.0.0.0")
    proxy = Forwarder(("127.0.0.1", port), bind)
    forwarders.append(proxy)

    status, answer = get(explain_url(proxy.port))

    assert status == 403
    assert answer["error"].startswith("without a token, device state is served only on the local explain port")
    assert get(f"http://127.0.0.1:{proxy.port}/ready") == (200, "ready\n")  # probes go through as before


def test_on_the_probe_port_even_a_direct_loopback_client_needs_the_token(serve: Any, token_file: str) -> None:
    """It cannot be told from a proxy; with the token configured it is answered over loopback."""
    assert get(explain_url(serve(HttpAccess(), host="0.0.0.0")))[0] == 403
    port = serve(HttpAccess(token=read_token(token_file)), host="0.0.0.0")
    assert get(explain_url(port))[0] == 401
    status, answer = get(explain_url(port), token=TOKEN)
    assert status == 200 and answer["decision"]["outcome"] == "suppressed"


def test_through_a_proxy_the_token_still_opens_the_probe_port(
    serve: Any, forwarders: list[Forwarder], token_file: str
) -> None:
    port = serve(HttpAccess(token=read_token(token_file)), host="0.0.0.0")
    proxy = Forwarder(("127.0.0.1", port), "127.0.0.6")
    forwarders.append(proxy)
    assert get(explain_url(proxy.port))[0] == 401
    assert get(explain_url(proxy.port), token=TOKEN)[0] == 200


def test_the_local_explain_port_answers_loopback_without_a_token_and_only_on_127_0_0_1(serve: Any) -> None:
    """A proxy forwards to the pod's address or the port it is told: bound to 127.0.0.1 alone, this listener
    is not on another address (127.0.0.2 stands for the pod's)."""
    port = serve(local=True)
    assert get(explain_url(port))[0] == 200
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", port), timeout=5).close()


def test_with_a_token_configured_the_local_explain_port_asks_it_of_everyone(serve: Any, token_file: str) -> None:
    port = serve(HttpAccess(token=read_token(token_file)), local=True)
    assert get(explain_url(port))[0] == 401
    assert get(explain_url(port), token=TOKEN)[0] == 200


def test_the_local_explain_port_follows_the_metrics_port_unless_set() -> None:
    assert Settings().local_explain_port == 9109
    assert replace(Settings(), metrics_port=9200).local_explain_port == 9201
    assert replace(Settings(), metrics_port=0).local_explain_port == 0  # a free one, as the metrics port's
    assert replace(Settings(), explain_port=0).local_explain_port is None  # turned off
    assert Settings.from_env({"POA_EXPLAIN_PORT": "7001"}).local_explain_port == 7001
    with pytest.raises(SettingsError, match=r"POA_EXPLAIN_PORT='70000' is out of range"):
        Settings.from_env({"POA_EXPLAIN_PORT": "70000"})


def test_a_local_explain_port_already_taken_is_logged_and_the_worker_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert serve_local_explain(port, WorkerMetrics(), Readiness(), ExplainRequests(), HttpAccess()) is None
    assert f"cannot listen on 127.0.0.1:{port} for local /explain" in caplog.text
    assert serve_local_explain(None, WorkerMetrics(), Readiness(), ExplainRequests(), HttpAccess()) is None


# --- settings -------------------------------------------------------------------------------------------


def test_the_protection_settings_name_variable_and_file_when_a_file_cannot_be_read(
    tmp_path: Path, token_file: str, certificate: tuple[str, str]
) -> None:
    missing = str(tmp_path / "missing")
    with pytest.raises(SettingsError, match=r"\$POA_HTTP_TOKEN_FILE.*missing.*cannot read the file"):
        Settings.from_env({"POA_HTTP_TOKEN_FILE": missing})
    cert, key = certificate
    with pytest.raises(SettingsError, match=r"\$POA_HTTP_TLS_KEY_FILE.*missing"):
        Settings.from_env({"POA_HTTP_TLS_CERT_FILE": cert, "POA_HTTP_TLS_KEY_FILE": missing})
    with pytest.raises(SettingsError, match="set together"):
        Settings.from_env({"POA_HTTP_TLS_CERT_FILE": cert})
    with pytest.raises(SettingsError, match="POA_HTTP_TLS_CERT_FILE.*not a usable"):
        HttpAccess.from_settings(Settings(http_tls_cert_file=token_file, http_tls_key_file=key))
    settings = Settings.from_env(
        {"POA_HTTP_TOKEN_FILE": token_file, "POA_HTTP_TLS_CERT_FILE": cert, "POA_HTTP_TLS_KEY_FILE": key}
    )
    access = HttpAccess.from_settings(settings)
    assert access.token == TOKEN.encode() and access.tls is not None
    assert HttpAccess.from_settings(Settings()) == HttpAccess()


# --- poa-filter explain ---------------------------------------------------------------------------------


def test_poa_filter_explain_prints_the_han_activations_decision_and_rule_for_a_person(
    serve: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("POA_HTTP_TOKEN_FILE", "POA_HTTP_TLS_CERT_FILE", "POA_HTTP_TLS_KEY_FILE"):
        monkeypatch.delenv(variable, raising=False)
    port = serve()
    assert cli.main(["explain", ESME.lower(), "--at", "2026-03-01T00:05:00Z", "--explain-port", str(port)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{ESME}: ESME on the HAN of CH Function {CHF}"
    assert lines[1] == f"at 2026-03-01T00:05:00.000Z ({BASE + 300_000} ms)"
    assert f"  ESME {ESME} (this device): tracked yes" in lines
    assert (
        f"    activation {REQUEST_ID}: received 2026-03-01T00:00:00.000Z, "
        "window 2026-03-01T00:00:00.000Z to 2026-03-01T00:30:00.000Z; in force at that time"
    ) in lines
    assert f"decision for an AD1 from {CHF} at 2026-03-01T00:05:00.000Z: SUPPRESSED" in lines
    assert f"  suppressed by activation {REQUEST_ID} of ESME {ESME} " in "\n".join(lines)
    assert "outage evidence from 2026-02-28T23:55:00.000Z to 2026-03-01T00:08:00.000Z (rule 9):" in lines
    assert "  no evidence releases it" in lines
    assert cli.main(["explain", CHF, "--at", str(BASE + 300_000), "--url", f"http://127.0.0.1:{port}", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {**explain(campaign_state(), CHF, BASE + 300_000), "worker": {"ready": True, "status": "ready"}}


def test_poa_filter_explain_sends_the_token_over_https_with_the_certificate_as_ca(
    serve: Any, token_file: str, certificate: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = certificate
    port = serve(HttpAccess(token=read_token(token_file), tls=server_tls_context(cert, key)))
    settings = replace(Settings(), metrics_port=port, explain_port=0, http_token_file=token_file,
                       http_tls_cert_file=cert, http_tls_key_file=key)  # fmt: skip
    answer = explain_client.ask(settings, CHF, BASE + 300_000)
    assert answer["decision"]["outcome"] == "suppressed"
    without_token = replace(settings, http_token_file=None)
    with pytest.raises(explain_client.ExplainError, match="answered 401: a bearer token is required"):
        explain_client.ask(without_token, CHF, None)
    with pytest.raises(explain_client.ExplainError, match="clear text to 192.0.2.9"):
        explain_client.ask(settings, CHF, None, url="http://192.0.2.9:9108")


def test_poa_filter_explain_reports_an_unreachable_worker_or_a_bad_id_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("POA_HTTP_TOKEN_FILE", "POA_HTTP_TLS_CERT_FILE", "POA_HTTP_TLS_KEY_FILE"):
        monkeypatch.delenv(variable, raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: nobody answers
        assert cli.main(["explain", CHF, "--explain-port", str(port)]) == 2
    assert capsys.readouterr().err.startswith("poa-filter explain: error: cannot ask the worker at http://127.0.0.1:")
    with pytest.raises(SystemExit):
        cli.main(["explain", "00-DB"])
    assert "is not an EUI-64 device ID" in capsys.readouterr().err


class EvidenceIncomplete:
    """The evidence reader while no alert partition is read past t + A."""

    policy = EvidencePolicy()

    def complete(self, t: int) -> bool:
        return False


@pytest.mark.parametrize(("evidence", "pending"), [(None, False), (EvidenceIncomplete(), True)])
def test_the_loop_explains_with_what_the_evidence_reader_knows(
    state: FilterState, evidence: EvidenceIncomplete | None, pending: bool
) -> None:
    """A suppression whose evidence is not complete yet is pending (rule 7): the worker decides it later."""
    bridge = ExplainRequests(wait_s=5.0)
    answers: list[Any] = []
    asking = threading.Thread(target=lambda: answers.append(bridge.ask(CHF, BASE + 300_000)))
    asking.start()
    while not answers:
        bridge.serve(state, None, evidence)
        asking.join(0.005)
    assert answers[0]["decision"]["outcome"] == "suppressed"
    assert answers[0]["decision"]["pending"] is pending


class EvidenceComplete(EvidenceIncomplete):
    def complete(self, t: int) -> bool:
        return True


class Frontier:
    """The loop's read frontier as an explanation sees it (`InputsSeen`)."""

    def __init__(self, read_past: bool) -> None:
        self.batch, self.covered_up_to, self._read_past = 7, 0, read_past
        self.requested: list[int] = []
        self.asked: list[tuple[int, int]] = []

    def inputs(self) -> InputsSeen:
        return InputsSeen(lambda: self.batch, self.requested.append, lambda b: b <= self.covered_up_to, self.read_past)

    def read_past(self, t: int, batch: int) -> bool:
        self.asked.append((t, batch))
        return self._read_past


def ask_in_background(bridge: ExplainRequests, answers: list[Any]) -> threading.Thread:
    asking = threading.Thread(target=lambda: answers.append(bridge.ask(CHF, BASE + 300_000)))
    asking.start()
    while bridge.waiting() < 1:
        threading.Event().wait(0.001)
    return asking


@pytest.mark.parametrize(("read_past", "pending"), [(False, True), (True, False)])
def test_an_explanation_waits_for_end_offsets_looked_up_after_it_and_is_final_as_the_triage_would_judge(
    state: FilterState, read_past: bool, pending: bool
) -> None:
    """Storm evidence rests on rule 5's decisions up to t + A: the triage takes it as final once evidence is
    complete and the inputs are read past t + A, or to end offsets looked up after that batch; so does the
    explanation, which therefore waits for such a look-up first (issue 18, item 12)."""
    frontier, bridge, answers = Frontier(read_past), ExplainRequests(wait_s=5.0), list[Any]()
    asking = ask_in_background(bridge, answers)
    assert bridge.serve(state, None, EvidenceComplete(), frontier.inputs()) == 0, "no look-up after it yet"
    assert frontier.requested == [7] and not answers
    frontier.batch, frontier.covered_up_to = 9, 8  # batches read since; a look-up after batch 8 is in
    assert bridge.serve(state, None, EvidenceComplete(), frontier.inputs()) == 1
    asking.join()
    assert answers[0]["decision"]["outcome"] == "suppressed"
    assert answers[0]["decision"]["pending"] is pending
    assert frontier.asked == [(EvidencePolicy().complete_after(BASE + 300_000), 7)], "for the batch it was noted in"


def test_evidence_incomplete_when_a_question_is_noted_leaves_it_pending(state: FilterState) -> None:
    frontier, bridge, answers = Frontier(read_past=True), ExplainRequests(wait_s=5.0), list[Any]()
    asking = ask_in_background(bridge, answers)
    frontier.covered_up_to = 7
    assert bridge.serve(state, None, EvidenceIncomplete(), frontier.inputs()) == 1
    asking.join()
    assert answers[0]["decision"]["pending"] is True


def test_each_step_answers_one_question_at_most(state: FilterState) -> None:
    """However many questions wait, one step answers one: the loop goes back to deciding alerts in between."""
    bridge = ExplainRequests(wait_s=5.0)
    answers: list[Any] = []
    askers = [threading.Thread(target=lambda: answers.append(bridge.ask(CHF, BASE))) for _ in range(3)]
    for asker in askers:
        asker.start()
    while bridge.waiting() < 3:
        threading.Event().wait(0.001)
    assert [bridge.serve(state) for _ in range(4)] == [1, 1, 1, 0]
    for asker in askers:
        asker.join()
    assert len(answers) == 3
