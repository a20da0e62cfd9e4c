"""`poa-filter explain ID [--at TIME]`: ask a running worker why an AD1 from a HAN would be suppressed or
forwarded, and print its answer for a person (contract 7, "Explanations").

The worker answers from its own state with its own decision code (`GET /explain`); this command only asks
and prints. It asks the worker on this machine by default, on its local explain port
(`http://127.0.0.1:POA_EXPLAIN_PORT`, by default the metrics port + 1), or with that turned off on its metrics
port, with the bearer token of `POA_HTTP_TOKEN_FILE` when one is set, and over https with
`POA_HTTP_TLS_CERT_FILE` as the trusted certificate when TLS is set on the metrics port. It never sends the
token in clear text to another machine, and never follows a redirect (the token would go along wherever it points).
"""

import argparse
import json
import ssl
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode, urlsplit

from pipeline.core.bad_input import BadInput
from pipeline.core.device_ids import canonical_device_id
from pipeline.core.explanation import Json, parse_time
from pipeline.settings import Settings
from pipeline.wire import no_redirects
from pipeline.worker.http_access import is_loopback, read_token

DESCRIPTION = (
    "Asks a running worker's GET /explain why an AD1 from the device's HAN at TIME (default now) would be "
    "suppressed or forwarded: the CH Function, its ESMEs, whether each is tracked, their activations with "
    "windows, cancellations and withdrawals, and the decision with the contract rule that gives it. The "
    "decision is the worker's own, from its state as read so far."
)
TIMEOUT_S = 15.0  # the worker waits up to 5 s for its loop; this leaves room for the network


class ExplainError(Exception):
    """The worker could not be asked or refused to answer; the message says which and why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `explain` subcommand's own arguments (the settings flags come from the CLI's common parser)."""
    parser.add_argument("device", type=_device, metavar="ID", help="a device ID (CH Function or ESME), any case")
    parser.add_argument(
        "--at",
        type=_time,
        metavar="TIME",
        help="event time of the AD1 to explain: ISO-8601 (UTC when it has no offset) or epoch ms; default now",
    )
    parser.add_argument(
        "--url", help="the worker's HTTP port, e.g. https://worker-0:9108 (default: this machine's explain port)"
    )
    parser.add_argument("--json", action="store_true", help="print the worker's JSON answer as it came")


def run(args: argparse.Namespace, settings: Settings) -> int:
    answer = ask(settings, args.device, args.at, args.url)
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        print("\n".join(describe(answer)))
    return 0


def ask(settings: Settings, device_id: str, at_ms: int | None, url: str | None = None) -> Json:
    """The worker's answer to GET /explain; ExplainError with the worker's own message when it refuses."""
    tls = settings.http_tls_cert_file is not None
    hint = ""
    if url is None:
        url = _local_url(settings)
        hint = " (the port POA_METRICS_PORT and POA_EXPLAIN_PORT give here: if the worker runs with others, use --url)"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ExplainError(f"--url {url!r} is not an http:// or https:// address")
    query = {"device": device_id, **({"at": str(at_ms)} if at_ms is not None else {})}
    request = urllib.request.Request(f"{url.rstrip('/')}/explain?{urlencode(query)}")
    if settings.http_token_file is not None:
        if parts.scheme != "https" and not _is_local(parts.hostname):
            raise ExplainError(f"refusing to send the bearer token in clear text to {parts.hostname}: use https")
        request.add_header("Authorization", "Bearer " + read_token(settings.http_token_file).decode())
    context = None
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=settings.http_tls_cert_file)
        # The configured certificate is trusted as it is; asked by its loopback address, it need not name it.
        context.check_hostname = not (tls and _is_local(parts.hostname))
    try:
        with no_redirects.opener(context).open(request, timeout=TIMEOUT_S) as response:
            answer: Json = json.load(response)
            return answer
    except urllib.error.HTTPError as exc:
        raise ExplainError(f"the worker at {url} answered {exc.code}: {_error_of(exc)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ExplainError(f"cannot ask the worker at {url}: {reason}{hint}") from None


def _local_url(settings: Settings) -> str:
    """The worker on this machine: its local explain port (plain http on 127.0.0.1, where no token is needed
    unless one is configured), else its metrics port, which always needs the token (`http_access`)."""
    local = settings.local_explain_port
    if local:
        return f"http://127.0.0.1:{local}"
    if local is None and settings.metrics_port != 0:
        scheme = "https" if settings.http_tls_cert_file is not None else "http"
        return f"{scheme}://127.0.0.1:{settings.metrics_port}"
    raise ExplainError("the worker's ports are free ones (POA_METRICS_PORT or POA_EXPLAIN_PORT 0): give its address "
                       "with --url")  # fmt: skip


def describe(answer: Json) -> list[str]:
    """The answer in a few lines for a person: the HAN, each ESME and its activations, the decision and rule."""
    device, han, decision = answer["device_id"], answer["han"], answer["decision"]
    chf = han["chf_id"]
    role = {
        "ch_function": f"CH Function with {_count(han)} ESME(s) on its HAN",
        "esme": f"ESME on the HAN of CH Function {chf}",
        "unknown": "no ESME on its HAN and on no HAN as an ESME, as far as the filter's state knows"
        + ("" if answer["in_inventory"] else " (not in the inventory)"),
    }[answer["role"]]
    lines = [f"{device}: {role}", f"at {_when(answer['at'])}"]
    worker = answer.get("worker", {})
    if not worker.get("ready", True):
        lines.append(f"the worker is not ready ({worker.get('status')}): its state may be incomplete")
    if han["esmes"]:
        lines.append(f"HAN of CH Function {chf}:")
    for esme in han["esmes"]:
        lines += _esme_lines(esme, device)
    if han["more_esmes"]:
        lines.append(f"  ... and more ESMEs (the first {len(han['esmes'])} are listed)")
    if "unplaced_esme" in answer:
        lines.append("on no HAN in the inventory, so it suppresses nothing:")
        lines += _esme_lines(answer["unplaced_esme"], device)
    outcome = decision["outcome"].upper()
    lines.append(f"decision for an AD1 from {chf} at {decision['alert']['received_at']['iso']}: {outcome}")
    lines.append(f"  {decision['text']} (rule {decision['rule']})")
    if decision.get("pending"):
        lines.append("  pending: evidence of a genuine outage may still come (rule 7)")
    lines += _evidence_lines(answer["evidence"])
    return lines


def _evidence_lines(evidence: Json) -> list[str]:
    span = evidence["span"]
    storm = evidence["storm"]
    lines = [f"outage evidence from {span['from']['iso']} to {span['to']['iso']} (rule 9):"]
    for a in evidence["supply"]:
        lines.append(
            f"  supply: {a['alert_code']} {a['alert_id']} from ESME {a['esme_id']} at {a['received_at']['iso']}"
        )
    sector = storm["sector"] or "unknown (no valid postcode)"
    hans, k = len(storm["hans"]), storm["min_other_hans"]
    lines.append(f"  postcode sector {sector}: AD1s outside windows from {hans} other HAN(s); {k} make a storm")
    if not storm.get("whole_sector", True):
        lines.append(f"  (only the first {storm['hans_looked_at']} other HANs of the sector were looked at)")
    lines.append(f"  {evidence['releases'] or 'no evidence releases it'}")
    return lines


def _esme_lines(esme: Json, device: str) -> list[str]:
    mark = " (this device)" if esme["device_id"] == device else ""
    tracked = "yes" if esme["tracked"] else "no"
    lines = [f"  ESME {esme['device_id']}{mark}: tracked {tracked}"]
    if not esme["activations"]:
        lines.append("    no activations")
    for a in esme["activations"]:
        window = a["window"]
        ends = [_ended(what, a[what]) for what in ("replaced", "cancelled", "withdrawn") if a[what]]
        state = "in force at that time" if a["in_force"] else "not in force at that time"
        lines.append(
            f"    activation {a['request_id']}: received {a['received_at']['iso']}, "
            f"window {window['start']['iso']} to {window['end']['iso']}; {'; '.join([*ends, state])}"
        )
    return lines


def _ended(what: str, end: Json) -> str:
    """E.g. 'cancelled from TIME by request ID': a cancellation names the request that carried it."""
    by = end.get("request_id")
    return f"{what} from {end['from']['iso']}" + (f" by request {by}" if by else "")


def _count(han: Json) -> str:
    return f"{len(han['esmes'])}+" if han["more_esmes"] else str(len(han["esmes"]))


def _when(moment: Json) -> str:
    return f"{moment['iso']} ({moment['epoch_ms']} ms)"


def _is_local(host: str) -> bool:
    return host == "localhost" or is_loopback(host)


def _error_of(exc: urllib.error.HTTPError) -> str:
    try:
        body: Any = json.loads(exc.read())
        return str(body["error"])
    except (ValueError, KeyError, TypeError, OSError):
        return str(exc.reason)


def _device(text: str) -> str:
    try:
        return canonical_device_id(text, "ID")
    except BadInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _time(text: str) -> int:
    try:
        return parse_time(text)
    except BadInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
