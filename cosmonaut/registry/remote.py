"""The registry over HTTP: ``RemoteRegistry`` POSTs the payload to an endpoint that runs the
same handler (the API Gateway in front of the Lambda function, or ``lambda-registry serve``)
and reads the answer as the registry's HTTP contract says (``runtime.contract``): JSON or
plain text on a 200, a problem document with diagnostics otherwise.

Timeouts, connection failures, 5xx and 429 are retried with exponential backoff; 4xx are not
(the payload itself was refused, or the request was not authorised). A redirect (3xx) is
never followed: it is an error naming where it pointed, so neither the payload nor the
credentials (a bearer token, a SigV4 signature) ever reach another host, and no config comes
from one. ``fetch`` reads what a
table renders now (``GET ?table=NAME`` with ``If-None-Match``), one attempt per call: the
poller paces its own retries."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cosmonaut.errors import RegistryError, RegistryUnavailable
from cosmonaut.registry.auth import (
    RequestAuth,
    SigningError,
)
from cosmonaut.registry.client import Fetched
from runtime import contract
from runtime.backoff import Backoff
from runtime.contract import RegistryResult

USER_AGENT = "cosmonaut/0.1"


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Turns every redirect into the ``HTTPError`` of its 3xx answer (urllib would follow
    301, 302 and 303 with the request's headers, ``Authorization`` included)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _redirect(url: str, error: urllib.error.HTTPError) -> RegistryError:
    location = error.headers.get("Location", "") if error.headers else ""
    return RegistryError(
        f"{url}: HTTP {error.code} redirects to {location[:200]!r}, which Cosmonaut does not "
        "follow: give --registry-url the registry's own address",
        file="registry",
    )


class RemoteRegistry:
    """POSTs to ``url``, with ``auth`` on every attempt. ``connect_to`` (host, port) sends
    the requests there instead of to the URL's host, which stays the ``Host`` header and what
    a signature covers (as ``curl --connect-to``; tests use it for AWS host names)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], object] | None = None,
        auth: RequestAuth | None = None,
        connect_to: tuple[str, int] | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")) or not urlsplit(url).hostname:
            raise RegistryError(f"{url!r} is not an http(s) URL", file="--registry-url")
        self.url = url
        self.auth = auth
        self.label = f"remote ({url}, {auth.label})" if auth else f"remote ({url})"
        parts = urlsplit(url)
        self._host = parts.netloc.rpartition("@")[2]
        self._target = (
            urlunsplit(
                (parts.scheme, f"{connect_to[0]}:{connect_to[1]}", parts.path, parts.query, "")
            )
            if connect_to
            else url
        )
        self.timeout = timeout
        self.retries = retries
        self.backoff = Backoff(backoff, max_backoff)
        # Without urllib's redirect handler; proxies from the environment, as urlopen's.
        self._opener = urllib.request.build_opener(_RefuseRedirects)
        self._closed = threading.Event()
        self._sleep = sleep or self._closed.wait
        self.attempts = 0  # of the last call

    def compile(self, payload: dict[str, Any]) -> RegistryResult:
        body = json.dumps(payload).encode()
        last: RegistryError | None = None
        self.attempts = 0
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff.jittered(self.backoff.delay(attempt)))
                if self._closed.is_set():
                    break
            self.attempts += 1
            try:
                return self._post(body)
            except _Retryable as error:
                last = RegistryUnavailable(
                    f"{self.url}: {error} (after {attempt + 1} attempt(s))", file="registry"
                )
        assert last is not None
        raise last

    def close(self) -> None:
        self._closed.set()

    def _post(self, body: bytes) -> RegistryResult:
        headers = {
            "Host": self._host,  # set here, so that a signature covers what is sent
            "Content-Type": "application/json",
            "Accept": contract.ACCEPT,
            "User-Agent": USER_AGENT,
        }
        if self.auth is not None:
            try:
                headers.update(self.auth.headers("POST", self.url, headers, body))
            except SigningError as error:
                raise _Retryable(f"cannot sign the request: {error}") from None
        request = urllib.request.Request(self._target, data=body, method="POST", headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = response.status
                headers = dict(response.headers.items())
                data = response.read()
        except urllib.error.HTTPError as error:
            if 300 <= error.code < 400:
                raise _redirect(self.url, error) from None
            data = error.read() if error.fp is not None else b""
            content_type = error.headers.get("Content-Type", "") if error.headers else ""
            message, diagnostics = contract.decode_problem(error.code, content_type, data)
            if error.code >= 500 or error.code in (408, 429):
                raise _Retryable(f"HTTP {error.code}: {message}") from None
            raise RegistryError(
                f"{self.url}: HTTP {error.code}: {message}",
                file="registry",
                diagnostics=diagnostics,
            ) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise _Retryable(f"unreachable: {reason}") from None
        if status != 200:
            raise _Retryable(f"unexpected HTTP {status}")
        try:
            return contract.decode_result(headers, data)
        except contract.ContractError as error:
            raise RegistryError(f"{self.url}: {error}", file="registry") from None

    def fetch(self, table: str, etag: str | None = None) -> Fetched | None:
        """``GET ?table=NAME`` with ``If-None-Match: etag``: None on 304, and on 404 for a
        table that holds nothing yet; a 5xx, 408, 429, a timeout or no connection raise
        ``RegistryUnavailable``, any other answer ``RegistryError``."""
        url, target = (self._with_table(where, table) for where in (self.url, self._target))
        headers = {
            "Host": self._host,  # as for POST: what a signature covers is what is sent
            "Accept": contract.ACCEPT,
            "User-Agent": USER_AGENT,
        }
        if etag:
            headers[contract.IF_NONE_MATCH_HEADER] = etag
        if self.auth is not None:
            try:
                headers.update(self.auth.headers("GET", url, headers, b""))
            except SigningError as error:
                raise RegistryUnavailable(
                    f"{url}: cannot sign the request: {error}", file="registry"
                ) from None
        request = urllib.request.Request(target, method="GET", headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = response.status
                answer = dict(response.headers.items())
                data = response.read()
        except urllib.error.HTTPError as error:
            if error.code == 304:
                return None
            if 300 <= error.code < 400:
                raise _redirect(url, error) from None
            data = error.read() if error.fp is not None else b""
            content_type = error.headers.get("Content-Type", "") if error.headers else ""
            if (
                error.code == 404
                and contract.problem_slug(content_type, data)
                == contract.PROBLEMS.unknown_table.slug
            ):
                return None
            message, diagnostics = contract.decode_problem(error.code, content_type, data)
            kind = (
                RegistryUnavailable
                if error.code >= 500 or error.code in (408, 429)
                else RegistryError
            )
            raise kind(
                f"{url}: HTTP {error.code}: {message}", file="registry", diagnostics=diagnostics
            ) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RegistryUnavailable(f"{url}: unreachable: {reason}", file="registry") from None
        if status != 200:
            raise RegistryUnavailable(f"{url}: unexpected HTTP {status}", file="registry")
        try:
            result = contract.decode_result(answer, data)
        except contract.ContractError as error:
            raise RegistryError(f"{url}: {error}", file="registry") from None
        lowered = {name.lower(): value for name, value in answer.items()}
        tag = lowered.get(contract.ETAG_HEADER.lower()) or contract.etag_of(
            result.text, result.files
        )
        return Fetched(result.text, tag, result.maps)

    @staticmethod
    def _with_table(url: str, table: str) -> str:
        parts = urllib.parse.urlsplit(url)
        query = [*urllib.parse.parse_qsl(parts.query), (contract.TABLE_PARAMETER, table)]
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


class _Retryable(Exception):
    pass
