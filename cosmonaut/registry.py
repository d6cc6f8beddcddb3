"""Where configs come from: the registry, in process or over HTTP.

``LocalRegistry`` calls the library (``runtime.pipeline.compile_payload``) with a store.
``RemoteRegistry`` POSTs the payload to an HTTP endpoint that runs the same handler (the API
Gateway in front of the Lambda function, or ``lambda-registry serve``) and reads the answer
as the registry's HTTP contract says (``runtime.contract``): JSON or plain text on a 200, a
problem document with diagnostics otherwise.

Timeouts, connection failures, 5xx and 429 are retried with exponential backoff; 4xx are not
(the payload itself was refused, or the request was not authorised).

Authentication: ``BearerToken`` sends ``Authorization: Bearer <token>``
(``lambda-registry serve --token-file``).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from compiler.errors import LocatedError
from compiler.options import RenderOptions
from cosmonaut.errors import RegistryError, UsageError
from runtime import contract
from runtime.backoff import Backoff
from runtime.contract import RegistryResult
from runtime.pipeline import compile_payload
from runtime.stores import Store

USER_AGENT = "cosmonaut/0.1"


class RegistryClient(Protocol):
    """Where Cosmonaut gets its configs: in process or over HTTP."""

    label: str

    def compile(self, payload: dict[str, Any]) -> RegistryResult: ...

    def close(self) -> None:
        """Interrupt waits (retry backoff) in progress; used when the daemon stops."""
        ...


class LocalRegistry:
    """The library call, with a store (by default an embedded SQLite file)."""

    def __init__(self, store: Store, options: RenderOptions | None = None) -> None:
        self.store = store
        self.options = options or RenderOptions()
        self.label = f"local ({getattr(store, 'label', type(store).__name__)})"
        self._lock = threading.Lock()

    def compile(self, payload: dict[str, Any]) -> RegistryResult:
        with self._lock:
            try:
                result = compile_payload(payload, options=self.options, store=self.store)
            except LocatedError as error:
                raise RegistryError(
                    f"the registry refused the payload: {error}",
                    file="registry",
                    diagnostics=error.diagnostics,
                ) from None
        return RegistryResult(result.text, result.diagnostics)

    def close(self) -> None:
        pass


# -- authentication ---------------------------------------------------------------------------


class RequestAuth(Protocol):
    """Adds credentials to one attempt of a request (called again for every retry)."""

    label: str

    def headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        """The headers to add to ``headers`` for sending ``body`` to ``url``."""
        ...


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


# -- over HTTP --------------------------------------------------------------------------------


class RemoteRegistry:
    """POSTs to ``url``, with ``auth`` on every attempt."""

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
    ) -> None:
        if not url.startswith(("http://", "https://")) or not urlsplit(url).hostname:
            raise RegistryError(f"{url!r} is not an http(s) URL", file="--registry-url")
        self.url = url
        self.auth = auth
        self.label = f"remote ({url}, {auth.label})" if auth else f"remote ({url})"
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
                last = RegistryError(
                    f"{self.url}: {error} (after {attempt + 1} attempt(s))", file="registry"
                )
        assert last is not None
        raise last

    def close(self) -> None:
        self._closed.set()

    def _post(self, body: bytes) -> RegistryResult:
        headers = {
            "Content-Type": "application/json",
            "Accept": contract.ACCEPT,
            "User-Agent": USER_AGENT,
        }
        if self.auth is not None:
            headers.update(self.auth.headers("POST", self.url, headers, body))
        request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
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


class _Retryable(Exception):
    pass
