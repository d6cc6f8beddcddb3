"""Where configs come from: the registry, in process or over HTTP.

``LocalRegistry`` calls the library (``runtime.pipeline.compile_payload``) with a store.
``RemoteRegistry`` POSTs the payload to an HTTP endpoint that runs the same handler (the API
Gateway in front of the Lambda function, or ``lambda-registry serve``), following its contract:

* request: ``POST`` the payload as JSON, ``Accept: application/json``;
* 200: ``{"config", "diagnostics": [{"path", "message", "severity"}], ...}``; a plain-text
  body is accepted too, with the diagnostics in the ``Lambda-Registry-Diagnostics-Detail``
  header;
* errors: ``application/problem+json`` (RFC 9457) with a ``diagnostics`` extension member.

Timeouts, connection failures, 5xx and 429 are retried with exponential backoff; 4xx are not
(the payload itself was refused).
"""

from __future__ import annotations

import json
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from compiler.errors import Diagnostic, LocatedError
from compiler.options import RenderOptions
from cosmonaut.errors import RegistryError
from runtime.pipeline import compile_payload
from runtime.stores import Store

DETAIL_HEADER = "Lambda-Registry-Diagnostics-Detail"
USER_AGENT = "cosmonaut/0.1"


@dataclass(frozen=True, slots=True)
class RegistryResult:
    text: str
    diagnostics: tuple[Diagnostic, ...]


class Registry(Protocol):
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
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._closed = threading.Event()
        self._sleep = sleep or self._closed.wait
        self.attempts = 0  # of the last call

    def compile(self, payload: dict[str, Any]) -> RegistryResult:
        body = json.dumps(payload).encode()
        last: RegistryError | None = None
        self.attempts = 0
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                self._sleep(delay * random.uniform(0.8, 1.2))
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
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json, text/plain;q=0.5",
                "User-Agent": USER_AGENT,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = response.status
                content_type = response.headers.get("Content-Type", "")
                detail = response.headers.get(DETAIL_HEADER)
                data = response.read()
        except urllib.error.HTTPError as error:
            data = error.read() if error.fp is not None else b""
            content_type = error.headers.get("Content-Type", "") if error.headers else ""
            message, diagnostics = _problem(data, content_type, error.code)
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
        if "json" in content_type:
            try:
                document = json.loads(data)
                text = document["config"]
                diagnostics = _diagnostics(document.get("diagnostics"))
            except (ValueError, KeyError, TypeError):
                raise RegistryError(
                    f"{self.url}: a 200 answer without a 'config' member", file="registry"
                ) from None
            if not isinstance(text, str):
                raise RegistryError(f"{self.url}: 'config' is not text", file="registry")
            return RegistryResult(text, diagnostics)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise RegistryError(f"{self.url}: the config is not UTF-8", file="registry") from None
        parsed: Any = None
        if detail:
            try:
                parsed = json.loads(detail)
            except ValueError:
                parsed = None
        return RegistryResult(text, _diagnostics(parsed))


class _Retryable(Exception):
    pass


def _problem(data: bytes, content_type: str, status: int) -> tuple[str, tuple[Diagnostic, ...]]:
    if "json" in content_type:
        try:
            document = json.loads(data)
        except ValueError:
            document = None
        if isinstance(document, dict):
            message = str(document.get("detail") or document.get("title") or f"HTTP {status}")
            return message, _diagnostics(document.get("diagnostics"))
    text = data.decode("utf-8", "replace").strip()
    return (text[:300] or f"HTTP {status}"), ()


def _diagnostics(value: Any) -> tuple[Diagnostic, ...]:
    if not isinstance(value, list):
        return ()
    found = []
    for item in value:
        if isinstance(item, dict) and isinstance(item.get("message"), str):
            path = str(item.get("path", "$"))
            if item.get("severity") == "warning":
                found.append(Diagnostic(path, item["message"], "warning"))
            else:
                found.append(Diagnostic(path, item["message"]))
    return tuple(found)
