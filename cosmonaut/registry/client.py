"""Where configs come from: the registry, in process or over HTTP.

``LocalRegistry`` calls the library (``runtime.pipeline.compile_payload``) with a store.
``RemoteRegistry`` POSTs the payload to an HTTP endpoint that runs the same handler (the API
Gateway in front of the Lambda function, or ``lambda-registry serve``) and reads the answer
as the registry's HTTP contract says (``runtime.contract``): JSON or plain text on a 200, a
problem document with diagnostics otherwise.

Timeouts, connection failures, 5xx and 429 are retried with exponential backoff; 4xx are not
(the payload itself was refused, or the request was not authorised).

``fetch`` reads what a table renders now without reporting anything (``render_table`` in
process, ``GET ?table=NAME`` with ``If-None-Match`` over HTTP): the daemon polls it to apply
what other hosts' reports changed. One attempt per call: the poller paces its own retries.

Authentication (``registry_auth`` chooses, from ``--registry-auth``): ``SigV4Signer`` signs
each attempt anew with botocore's signer and the standard AWS credential chain (the default
for API Gateway and Lambda function URLs, ``aws_endpoint``); ``BearerToken`` sends
``Authorization: Bearer <token>`` (``lambda-registry serve --token-file``).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

from compiler.errors import LocatedError
from compiler.options import RenderOptions
from cosmonaut.errors import RegistryError, RegistryUnavailable, UsageError
from runtime import contract
from runtime.backoff import Backoff
from runtime.contract import RegistryResult
from runtime.fleet import DEFAULT_TTL
from runtime.pipeline import compile_payload, render_table
from runtime.stores import Store, StoreError, TableModeError

USER_AGENT = "cosmonaut/0.1"
TOKEN_ENV = "COSMONAUT_REGISTRY_TOKEN"
AuthKind = Literal["sigv4", "bearer", "none"]

# API Gateway (REST and HTTP APIs, also through a VPC endpoint) and Lambda function URLs.
_AWS_HOSTS = (
    (re.compile(r"[a-z0-9-]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"), "execute-api"),
    (re.compile(r"[a-z0-9-]+\.lambda-url\.([a-z0-9-]+)\.on\.aws"), "lambda"),
)


@dataclass(frozen=True, slots=True)
class Fetched:
    """A table's config as ``fetch`` read it, with its entity tag."""

    text: str
    etag: str
    maps: tuple[tuple[str, str], ...] = ()  # the config's map files (name, text), if any


class RegistryClient(Protocol):
    """Where Cosmonaut gets its configs: in process or over HTTP."""

    label: str

    def compile(self, payload: dict[str, Any]) -> RegistryResult: ...

    def fetch(self, table: str, etag: str | None = None) -> Fetched | None:
        """The table's config now, or None when it is the one ``etag`` names or the table
        holds nothing yet. Raises ``RegistryUnavailable`` when the registry cannot answer."""
        ...

    def close(self) -> None:
        """Interrupt waits (retry backoff) in progress; used when the daemon stops."""
        ...


class LocalRegistry:
    """The library call, with a store (by default an embedded SQLite file)."""

    def __init__(
        self,
        store: Store,
        options: RenderOptions | None = None,
        *,
        host_ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.options = options or RenderOptions()
        self.host_ttl = host_ttl
        self.clock = clock
        self.label = f"local ({getattr(store, 'label', type(store).__name__)})"
        self._lock = threading.Lock()

    def compile(self, payload: dict[str, Any]) -> RegistryResult:
        with self._lock:
            try:
                result = compile_payload(
                    payload,
                    options=self.options,
                    store=self.store,
                    clock=self.clock,
                    host_ttl=self.host_ttl,
                )
            except TableModeError as error:
                raise RegistryError(
                    f"the registry refused the payload: {error}", file="registry"
                ) from None
            except StoreError as error:
                raise RegistryUnavailable(f"the store failed: {error}", file="registry") from None
            except LocatedError as error:
                raise RegistryError(
                    f"the registry refused the payload: {error}",
                    file="registry",
                    diagnostics=error.diagnostics,
                ) from None
        return RegistryResult(result.text, result.diagnostics, maps=contract.maps_of(result.files))

    def fetch(self, table: str, etag: str | None = None) -> Fetched | None:
        with self._lock:
            try:
                rendered = render_table(
                    self.store,
                    table,
                    options=self.options,
                    clock=self.clock,
                    host_ttl=self.host_ttl,
                )
            except StoreError as error:
                raise RegistryUnavailable(f"the store failed: {error}", file="registry") from None
        if rendered is None or rendered.etag == etag:
            return None
        return Fetched(rendered.text, rendered.etag, contract.maps_of(rendered.files))

    def close(self) -> None:
        pass


# -- authentication ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AwsEndpoint:
    """What SigV4 signs for: the service and, when the host name says it, the region."""

    service: str
    region: str | None


def aws_endpoint(url: str) -> AwsEndpoint | None:
    """The AWS endpoint ``url`` names: ``execute-api`` for API Gateway
    (``<id>.execute-api.<region>.amazonaws.com``), ``lambda`` for a function URL
    (``<id>.lambda-url.<region>.on.aws``); ``None`` for any other host."""
    host = (urlsplit(url).hostname or "").lower()
    for pattern, service in _AWS_HOSTS:
        match = pattern.fullmatch(host)
        if match:
            return AwsEndpoint(service, match.group(1))
    return None


class RequestAuth(Protocol):
    """Adds credentials to one attempt of a request (called again for every retry)."""

    label: str

    def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        """The headers to add to ``headers`` for sending ``body`` to ``url``."""
        ...


class SigningError(Exception):
    """Credentials could not be had for this attempt (a refresh failed); retried."""


class BearerToken:
    label = "bearer"

    def __init__(self, token: str) -> None:
        if not token or not (token.isascii() and token.isprintable()) or " " in token:
            raise UsageError(
                "the registry token must be printable ASCII without spaces",
                file="--registry-token-file",
            )
        self._value = contract.bearer_credentials(token)

    def __repr__(self) -> str:
        return "BearerToken(***)"

    def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        return {contract.AUTHORIZATION_HEADER: self._value}


class SigV4Signer:
    """AWS Signature Version 4 through botocore's own signer (``SigV4Auth`` on an
    ``AWSRequest``): the method, path, query, every header sent and the SHA-256 of the exact
    body. Credentials come from ``credentials`` or the standard chain (environment, shared
    files, SSO, container and instance roles), refreshed as botocore refreshes them."""

    label = "sigv4"

    def __init__(self, service: str, region: str, credentials: Any) -> None:
        self.service = service
        self.region = region
        self._credentials = credentials

    @classmethod
    def from_environment(
        cls, endpoint: AwsEndpoint | None, environ: Mapping[str, str]
    ) -> SigV4Signer:
        """For ``endpoint`` (API Gateway's ``execute-api`` when the URL is not an AWS one,
        as behind a custom domain), with the region from the URL, else ``AWS_REGION``, else
        botocore's (``AWS_DEFAULT_REGION``, the profile). No credentials: a ``UsageError``."""
        try:
            import botocore.session  # type: ignore[import-untyped]
        except ImportError:
            raise UsageError(
                "--registry-auth sigv4 needs botocore: pip install 'lambda-registry[cosmonaut]'",
                file="--registry-auth",
            ) from None
        session = botocore.session.Session()
        region = (
            (endpoint.region if endpoint else None)
            or environ.get("AWS_REGION")
            or session.get_config_variable("region")
        )
        if not region:
            raise UsageError(
                "sigv4: the registry URL names no AWS region; set AWS_REGION",
                file="--registry-auth",
            )
        credentials = session.get_credentials()
        if credentials is None:
            raise UsageError(
                "sigv4: no AWS credentials found (environment, shared credentials or config "
                "file, SSO, container or instance role)",
                file="--registry-auth",
            )
        return cls(endpoint.service if endpoint else "execute-api", str(region), credentials)

    def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
        from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
        from botocore.exceptions import BotoCoreError  # type: ignore[import-untyped]

        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        try:
            frozen = self._credentials.get_frozen_credentials()
            SigV4Auth(frozen, self.service, self.region).add_auth(request)
        except BotoCoreError as error:
            raise SigningError(str(error)) from None
        given = {name.lower() for name in headers}
        return {
            str(name): str(value)
            for name, value in request.headers.items()
            if name.lower() not in given
        }


def registry_auth(
    kind: AuthKind | None,
    url: str,
    *,
    token_file: Path | None = None,
    environ: Mapping[str, str] = os.environ,
) -> RequestAuth | None:
    """The authentication ``--registry-auth`` asks for; by default ``sigv4`` for API Gateway
    and function URLs, ``none`` otherwise. A missing token or missing AWS credentials is a
    ``UsageError`` (at start-up, not at the first pass)."""
    endpoint = aws_endpoint(url)
    chosen = kind or ("sigv4" if endpoint is not None else "none")
    if token_file is not None and chosen != "bearer":
        raise UsageError(
            f"a token file is for --registry-auth bearer, not {chosen}",
            file="--registry-token-file",
        )
    if chosen == "none":
        return None
    if chosen == "sigv4":
        return SigV4Signer.from_environment(endpoint, environ)
    if token_file is None:
        token = (environ.get(TOKEN_ENV) or "").strip()
        if not token:
            raise UsageError(
                f"bearer: give --registry-token-file or set {TOKEN_ENV}", file="--registry-auth"
            )
        return BearerToken(token)
    try:
        lines = token_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise UsageError(
            f"cannot read {token_file}: {reason}", file="--registry-token-file"
        ) from None
    if not lines or not lines[0].strip():
        raise UsageError(f"{token_file} holds no token", file="--registry-token-file")
    return BearerToken(lines[0].strip())


# -- over HTTP --------------------------------------------------------------------------------


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
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = response.status
                headers = dict(response.headers.items())
                data = response.read()
        except urllib.error.HTTPError as error:
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
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = response.status
                answer = dict(response.headers.items())
                data = response.read()
        except urllib.error.HTTPError as error:
            if error.code == 304:
                return None
            data = error.read() if error.fp is not None else b""
            content_type = error.headers.get("Content-Type", "") if error.headers else ""
            if error.code == 404 and contract.problem_slug(content_type, data) == "unknown-table":
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
