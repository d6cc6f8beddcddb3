"""Where configs come from: the registry client's protocol, and the registry in process.

``LocalRegistry`` calls the library (``runtime.pipeline.compile_payload``) with a store;
``remote.RemoteRegistry`` speaks the HTTP contract to the same handler. ``fetch`` reads what a
table renders now without reporting anything (``render_table`` in process): the daemon polls
it to apply what other hosts' reports changed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from compiler.errors import LocatedError
from compiler.options import RenderOptions
from cosmonaut.errors import RegistryError, RegistryUnavailable
from runtime import contract
from runtime.contract import RegistryResult
from runtime.fleet import DEFAULT_TTL
from runtime.pipeline import compile_payload, render_table
from runtime.stores import Store, StoreError, TableModeError


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


# -- over HTTP --------------------------------------------------------------------------------
