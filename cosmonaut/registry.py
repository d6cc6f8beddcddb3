"""Where configs come from: the registry, in process or over HTTP.

``LocalRegistry`` calls the library (``runtime.pipeline.compile_payload``) with a store.
``RemoteRegistry`` POSTs the payload to an HTTP endpoint that runs the same handler (the API
Gateway in front of the Lambda function, or ``lambda-registry serve``) and reads the answer
as the registry's HTTP contract says (``runtime.contract``): JSON or plain text on a 200, a
problem document with diagnostics otherwise.

Timeouts, connection failures, 5xx and 429 are retried with exponential backoff; 4xx are not
(the payload itself was refused).

``fetch`` reads what a table renders now without reporting anything (``render_table`` in
process, ``GET ?table=NAME`` with ``If-None-Match`` over HTTP): the daemon polls it to apply
what other hosts' reports changed. One attempt per call: the poller paces its own retries.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from compiler.errors import LocatedError
from compiler.options import RenderOptions
from cosmonaut.errors import RegistryError, RegistryUnavailable
from runtime import contract
from runtime.backoff import Backoff
from runtime.contract import RegistryResult
from runtime.fleet import DEFAULT_TTL
from runtime.pipeline import compile_payload, render_table
from runtime.stores import Store, StoreError, TableModeError

USER_AGENT = "cosmonaut/0.1"


@dataclass(frozen=True, slots=True)
class Fetched:
    """A table's config as ``fetch`` read it, with its entity tag."""

    text: str
    etag: str


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
        return RegistryResult(result.text, result.diagnostics)

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
        return Fetched(rendered.text, rendered.etag)

    def close(self) -> None:
        pass


class RemoteRegistry:
    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise RegistryError(f"{url!r} is not an http(s) URL", file="--registry-url")
        self.url = url
        self.label = f"remote ({url})"
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
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Accept": contract.ACCEPT,
                "User-Agent": USER_AGENT,
            },
        )
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
        parts = urllib.parse.urlsplit(self.url)
        query = [*urllib.parse.parse_qsl(parts.query), (contract.TABLE_PARAMETER, table)]
        url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
        headers = {"Accept": contract.ACCEPT, "User-Agent": USER_AGENT}
        if etag:
            headers[contract.IF_NONE_MATCH_HEADER] = etag
        request = urllib.request.Request(url, method="GET", headers=headers)
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
        tag = lowered.get(contract.ETAG_HEADER.lower()) or contract.etag_of(result.text)
        return Fetched(result.text, tag)


class _Retryable(Exception):
    pass
