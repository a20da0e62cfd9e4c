"""A tiny client for a Confluent-compatible schema registry (contract section 4, optional framing).

Only the two calls the codec needs: register a schema under a subject, and fetch a schema by ID.
Plain urllib, so the registry adds no dependency. Answers are cached: a registered schema's ID
and an ID's schema never change in a Confluent registry. Failures are not cached: a registry that
comes back is asked again.

Two outcomes of a failed call, because callers must treat them in opposite ways: NoSuchAvroSchema, the
registry answered that no Avro schema has that ID (the input names a schema nobody wrote: bad input);
RegistryUnavailable, anything else (unreachable, timed out, a server error, a refusal, an answer that is
not the API's): the input may be fine, so the caller waits and retries.

A caller that must not block (the worker's decision loop) gives `wait_s`: each call then runs on a thread of
its own and is waited for that long at most; one not answered by then is RegistryUnavailable at once, goes on
in the background, and its answer is there for the caller's next try. While a call is under way others are
not waited for at all, so a hanging registry holds the loop `wait_s` once per HTTP timeout, not the timeout
on every try.
"""

import base64
import http.client
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from pipeline.wire import no_redirects

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
MAX_IN_FLIGHT = 8  # background calls at once: inputs naming many schema IDs cannot start a thread each


class SchemaRegistryError(Exception):
    """Any failed registry call: NoSuchAvroSchema or RegistryUnavailable."""


class NoSuchAvroSchema(SchemaRegistryError):
    """The registry answered, but has no Avro schema with that ID: the input names a schema nobody wrote."""


class RegistryUnavailable(SchemaRegistryError):
    """The registry cannot serve the call now: unreachable, timed out, HTTP 5xx, a refusal (401, 403, 409,
    ...) or an answer that is not the API's. Not the input's fault: wait and retry; never dead-letter for it."""


class RegistryAuthFileError(Exception):
    """POA_SCHEMA_REGISTRY_AUTH_FILE is not `user:password` (the message never shows the file's content)."""


class SchemaRegistryClient:
    """register() and get_schema() against one registry URL, with a timeout and a cache.

    Credentials (`user:password`, from POA_SCHEMA_REGISTRY_AUTH_FILE or in the URL as
    `https://user:password@host`) are sent as HTTP basic authentication and kept out of `url`, which every
    error message names.
    """

    def __init__(
        self, url: str, timeout: float = 10.0, user_password: str | None = None, wait_s: float | None = None
    ) -> None:
        parts = urllib.parse.urlsplit(url.rstrip("/"))
        self.url = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        self.timeout = timeout
        self.wait_s = wait_s  # None: calls block their caller (up to `timeout`); see the module docstring
        self._in_flight: dict[tuple[str, str], Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._headers = {"Content-Type": _CONTENT_TYPE, "Accept": f"{_CONTENT_TYPE}, application/json"}
        if user_password is None and parts.username is not None:
            user_password = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        if user_password is not None:
            self._headers["Authorization"] = "Basic " + base64.b64encode(user_password.encode()).decode()
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, str] = {}

    def register(self, subject: str, schema: str) -> int:
        """ID of `schema` under `subject` (POST /subjects/{subject}/versions); registers it if new."""
        key = (subject, schema)
        schema_id = self._ids.get(key)
        if schema_id is None:
            path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions"
            answer = self._call("POST", path, {"schema": schema})
            schema_id = answer.get("id")
            if not isinstance(schema_id, int) or isinstance(schema_id, bool):
                raise RegistryUnavailable(
                    f"schema registry {self.url} answered POST {path} without an integer id: {answer!r}"
                )
            self._ids[key] = schema_id
            self._schemas.setdefault(schema_id, schema)
        return schema_id

    def get_schema(self, schema_id: int) -> str:
        """The Avro schema text with this ID (GET /schemas/ids/{id}); NoSuchAvroSchema if there is none."""
        schema = self._schemas.get(schema_id)
        if schema is None:
            path = f"/schemas/ids/{schema_id}"
            answer = self._call("GET", path, None)
            schema_type = answer.get("schemaType", "AVRO")
            if schema_type != "AVRO":
                raise NoSuchAvroSchema(f"schema ID {schema_id} in registry {self.url} is {schema_type}, not Avro")
            schema = answer.get("schema")
            if not isinstance(schema, str):
                raise RegistryUnavailable(
                    f"schema registry {self.url} answered GET {path} without a schema: {answer!r}"
                )
            self._schemas[schema_id] = schema
        return schema

    def _call(self, method: str, path: str, body: dict[str, str] | None) -> dict[str, Any]:
        """`_request` on the caller's thread, or with `wait_s` on a background one, waited for at most that long
        when no other call is under way (one that is means a slow registry: the caller is not held again until
        it is answered or times out), and not at all while it is itself still under way."""
        if self.wait_s is None:
            return self._request(method, path, body)
        key = (method, path if body is None else f"{path} {body['schema']}")
        with self._lock:
            future = self._in_flight.get(key)
            waits = future is None and not self._in_flight
            if future is None:
                if len(self._in_flight) >= MAX_IN_FLIGHT:
                    raise RegistryUnavailable(
                        f"schema registry {self.url}: {MAX_IN_FLIGHT} calls are still waiting for an answer "
                        f"({method} {path} not sent)"
                    )
                future = self._in_flight[key] = _in_background(lambda: self._request(method, path, body))
        try:
            return future.result(timeout=self.wait_s if waits else 0)
        except FutureTimeout:
            raise RegistryUnavailable(
                f"schema registry {self.url} has not answered {method} {path} "
                f"{'within ' + format(self.wait_s, 'g') + ' s' if waits else 'yet'}; still waiting for it"
            ) from None
        finally:
            if future.done():
                with self._lock:
                    self._in_flight.pop(key, None)

    def _request(self, method: str, path: str, body: dict[str, str] | None) -> dict[str, Any]:
        """One JSON call; every failure but a GET's 404 is RegistryUnavailable, saying what was asked of whom."""
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers=self._headers,
        )
        try:
            with no_redirects.opener().open(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            if exc.code == 404 and method == "GET":
                raise NoSuchAvroSchema(f"schema registry {self.url} has no {path}: {detail}") from exc
            raise RegistryUnavailable(f"schema registry {self.url} refused {method} {path}: {detail}") from exc
        except (OSError, http.client.HTTPException) as exc:  # refused, unreachable, DNS, timeout, garbled
            reason = getattr(exc, "reason", exc)
            raise RegistryUnavailable(f"cannot reach schema registry {self.url} ({method} {path}): {reason}") from exc
        try:
            answer = json.loads(raw)
        except ValueError as exc:
            raise RegistryUnavailable(
                f"schema registry {self.url} answered {method} {path} with something other than JSON: {raw[:200]!r}"
            ) from exc
        if not isinstance(answer, dict):
            raise RegistryUnavailable(f"schema registry {self.url} answered {method} {path} with {answer!r}")
        return answer


def _in_background(call: Callable[[], dict[str, Any]]) -> "Future[dict[str, Any]]":
    """`call` on a daemon thread (a registry that hangs must not keep the process from exiting)."""
    future: Future[dict[str, Any]] = Future()

    def run() -> None:
        try:
            future.set_result(call())
        except BaseException as exc:  # handed to whoever asks for the answer
            future.set_exception(exc)

    threading.Thread(target=run, name="schema-registry", daemon=True).start()
    return future


def _error_detail(exc: urllib.error.HTTPError) -> str:
    """HTTP status plus the registry's own error_code and message when the body has them."""
    try:
        body = json.loads(exc.read())
    except (ValueError, OSError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(body, dict) and "message" in body:
        return f"HTTP {exc.code}, error {body.get('error_code')}: {body['message']}"
    return f"HTTP {exc.code} {exc.reason}"
