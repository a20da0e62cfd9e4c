"""Who may ask the worker's HTTP port for device state, and over what (contract 7, "Explanations").

Device state is operational data about people's homes, so `/explain` answers only the loopback interface,
unless `POA_HTTP_TOKEN_FILE` names a file holding a bearer token: then it answers any client presenting that
token and no one else, loopback included. A token is accepted only over TLS (`POA_HTTP_TLS_CERT_FILE` and
`POA_HTTP_TLS_KEY_FILE`) or from loopback: in clear text across a network it could be read on the way.
`/metrics` and `/ready` carry no device IDs and stay open for scrapers and probes.

Behind a sidecar or a proxy in the same pod (Istio's passthrough connects from 127.0.0.6, oauth2-proxy or
`socat` from 127.0.0.1), every client of the probe and scrape port looks like loopback. So loopback is taken
for a person on this machine only where no proxy can stand in between: on a listener bound to 127.0.0.1
alone (`POA_EXPLAIN_PORT`; a proxy forwards to the pod's address, or to the port it was told). On the probe
and scrape port, `/explain` always needs the token (`loopback_trusted` False).

The token is compared in constant time and never appears in a log line, an error message or a repr.
"""

import hmac
import ipaddress
import ssl
from dataclasses import dataclass, field, replace

from pipeline.settings import Settings, SettingsError

BEARER = "bearer "


def is_loopback(host: str) -> bool:
    """True for a client address on the loopback interface (127.0.0.0/8, ::1, or IPv4-mapped 127.x)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


@dataclass(frozen=True)
class HttpAccess:
    """The port's protection: an optional bearer token (never shown) and an optional TLS context."""

    token: bytes | None = field(default=None, repr=False)
    tls: ssl.SSLContext | None = None
    loopback_trusted: bool = False  # True only on the listener bound to 127.0.0.1 alone (module docstring)

    @classmethod
    def from_settings(cls, settings: Settings) -> "HttpAccess":
        """Read the token file and load the certificate and key; SettingsError naming the variable and file
        (never the file's content) when one cannot be used."""
        token = None
        if settings.http_token_file is not None:
            token = read_token(settings.http_token_file)
        tls = None
        if settings.http_tls_cert_file is not None and settings.http_tls_key_file is not None:
            tls = server_tls_context(settings.http_tls_cert_file, settings.http_tls_key_file)
        return cls(token, tls)

    def local(self) -> "HttpAccess":
        """The same protection for the listener bound to 127.0.0.1 alone: loopback is a person on this machine
        there, and TLS adds nothing (the token still required from everyone when one is configured)."""
        return replace(self, tls=None, loopback_trusted=True)

    def refusal(self, client_host: str, authorization: str | None, over_tls: bool) -> Refusal | None:
        """None when a request for device state from this client may be answered, else why not."""
        loopback = is_loopback(client_host)
        if self.token is None:
            if loopback and self.loopback_trusted:
                return None
            if loopback:
                return Refusal(
                    403,
                    "without a token, device state is served only on the local explain port (POA_EXPLAIN_PORT, "
                    "127.0.0.1 alone): a client of this port may be a proxy in front of it; or set "
                    "POA_HTTP_TOKEN_FILE",
                )
            return Refusal(403, "device state is served only to the loopback interface (no POA_HTTP_TOKEN_FILE)")
        presented = _bearer(authorization)
        if presented is None:
            return Refusal(401, "a bearer token is required (Authorization: Bearer <token>)")
        if not (over_tls or loopback):
            return Refusal(403, "a bearer token is accepted only over TLS or from the loopback interface")
        if not hmac.compare_digest(presented, self.token):
            return Refusal(401, "the bearer token is not the one configured")
        return None


def server_tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        raise SettingsError(
            f"POA_HTTP_TLS_CERT_FILE={cert_file!r} and POA_HTTP_TLS_KEY_FILE={key_file!r} are not a usable "
            f"PEM certificate and private key ({reason})"
        ) from None
    return context


def read_token(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            token = f.read().strip()
    except OSError as exc:
        raise SettingsError(f"POA_HTTP_TOKEN_FILE={path!r}: cannot read the file ({exc.strerror})") from None
    if not token or any(c < 0x21 or c > 0x7E for c in token):
        raise SettingsError(f"POA_HTTP_TOKEN_FILE={path!r} must hold one bearer token: printable ASCII without spaces")
    return token


def _bearer(authorization: str | None) -> bytes | None:
    if authorization is None or authorization[: len(BEARER)].lower() != BEARER:
        return None
    return authorization[len(BEARER) :].strip().encode("utf-8", "replace")
