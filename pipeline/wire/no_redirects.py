"""HTTP requests that never follow a redirect, for the clients that carry credentials.

urllib follows a redirect with every header of the request, `Authorization` included, to wherever the
`Location` points: another host, or plain http. A client holding a bearer token (`poa-filter explain`) or a
registry's basic authentication refuses instead; the error names where it was sent, never the credentials.
"""

import ssl
import urllib.error
import urllib.request
from email.message import Message
from typing import IO


class Redirected(urllib.error.URLError):
    """The server answered with a redirect, which was not followed. An OSError, as urllib's own failures."""

    def __init__(self, code: int, location: str) -> None:
        super().__init__(f"answered {code}, a redirect to {location}: not followed, as the credentials would go along")
        self.code = code
        self.location = location


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: Message, newurl: str
    ) -> urllib.request.Request | None:
        raise Redirected(code, newurl)


def opener(context: ssl.SSLContext | None = None) -> urllib.request.OpenerDirector:
    """An opener like urlopen's (with `context` for https), except that it refuses every redirect."""
    handlers: list[urllib.request.BaseHandler] = [_RefuseRedirects()]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)
