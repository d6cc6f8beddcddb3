"""Polling the registry: what other hosts' reports changed reaches this host's HAProxy.

In a fleet, a host learns of another host's change only by asking. ``Poller`` runs in its own
thread, so the event path never waits for it: every ``--poll-interval`` seconds it reads the
table's config (``RegistryClient.fetch``: ``GET ?table=NAME`` with ``If-None-Match``, or
``render_table`` in process), naming the config this host last had from the registry, and
hands a changed one to the loop, which applies it through the same safe path as every other
config (``Syncer.apply_polled``). Nothing is applied from this thread.

``RegistryHealth`` is fed by every registry call, the passes' and the polls': it says whether
the registry answers, since when it does not, and why; the status file and the metrics
(``cosmonaut_registry_up``, ``cosmonaut_registry_failures_total``) show it. While the registry
is unreachable the poller retries with backoff and HAProxy keeps its config untouched; once it
answers again, the poller asks the loop for a full pass (this host reports first, then applies
what the registry gives), never for the polled config itself: after an outage the registry
may have expired this host's report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cosmonaut import logs
from cosmonaut.errors import RegistryError, RegistryUnavailable
from cosmonaut.metrics import Metrics
from cosmonaut.registry.client import RegistryClient
from runtime.backoff import Backoff


@dataclass(frozen=True, slots=True)
class Polled:
    """A changed config the poller read; ``generation`` is the syncer's when it asked (a
    pass that ran since then supersedes it)."""

    text: str
    etag: str
    generation: int
    maps: tuple[tuple[str, str], ...] = ()  # the config's map files (name, text), if any


class RegistryHealth:
    """Whether the registry answers, from every call made to it; thread-safe."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics or Metrics()
        self._lock = threading.Lock()
        self.up: bool | None = None  # None: not asked yet
        self.since: float | None = None  # unix time of the last change of ``up``
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self.last_answer: float | None = None

    def answered(self) -> bool:
        """The registry answered (a config, a 304, or a refusal). True when that ends an
        outage."""
        with self._lock:
            now = time.time()
            recovered = self.up is False
            down_for = now - (self.since or now) if recovered else 0.0
            if self.up is not True:
                self.up, self.since = True, now
            self.consecutive_failures = 0
            self.last_answer = now
        self.metrics.set("cosmonaut_registry_up", 1)
        if recovered:
            logs.info("registry back", down_seconds=round(down_for, 2))
        return recovered

    def failed(self, error: str) -> bool:
        """A call found the registry unavailable. True when that starts an outage."""
        with self._lock:
            started = self.up is not False
            if started:
                self.up, self.since = False, time.time()
            self.consecutive_failures += 1
            self.last_error = error
            failures = self.consecutive_failures
        self.metrics.set("cosmonaut_registry_up", 0)
        self.metrics.inc("cosmonaut_registry_failures_total")
        if started:
            logs.warning("registry unavailable", error=error)
        else:
            logs.debug("registry still unavailable", error=error, failures=failures)
        return started

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "up": self.up,
                "since": _iso(self.since),
                "consecutive_failures": self.consecutive_failures,
                "last_error": self.last_error,
                "last_answer": _iso(self.last_answer),
            }


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")


class Poller:
    """Reads the table's config every ``interval`` seconds in a thread of its own.

    ``state()`` gives the syncer's generation and the entity tag of the config this host last
    had from the registry; a changed config goes to ``deliver``; ``report(reason)`` asks the
    loop for a full pass (once the registry answers again after an outage); ``changed()``
    is called when the registry's health changes (to write the status file).
    """

    def __init__(
        self,
        registry: RegistryClient,
        table: str,
        *,
        interval: float,
        health: RegistryHealth,
        state: Callable[[], tuple[int, str | None]],
        deliver: Callable[[Polled], None],
        report: Callable[[str], None],
        changed: Callable[[], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("the poll interval must be positive")
        self.registry = registry
        self.table = table
        self.interval = interval
        self.health = health
        self.metrics = health.metrics
        self.state = state
        self.deliver = deliver
        self.report = report
        self.changed = changed
        self.backoff = backoff or Backoff(min(interval, 1.0), max(interval, 10.0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cosmonaut-poll", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def poll(self) -> float:
        """One poll; returns how long to wait before the next."""
        generation, etag = self.state()
        self.metrics.inc("cosmonaut_polls_total")
        try:
            fetched = self.registry.fetch(self.table, etag)
        except RegistryUnavailable as error:
            if self.health.failed(str(error)) and self.changed is not None:
                self.changed()
            return self.backoff.next()
        except RegistryError as error:  # it answered, but not with a config
            logs.warning("registry poll refused", error=str(error))
            self._answered()
            return self.interval
        self.backoff.reset()
        if self._answered():
            self.report("registry back")
        elif fetched is not None:
            self.metrics.inc("cosmonaut_polled_changes_total")
            self.deliver(Polled(fetched.text, fetched.etag, generation, fetched.maps))
        return self.interval

    def _answered(self) -> bool:
        recovered = self.health.answered()
        if recovered and self.changed is not None:
            self.changed()
        return recovered

    def _run(self) -> None:
        delay = self.interval
        while not self._stop.wait(delay):
            try:
                delay = self.poll()
            except Exception:  # a bug: keep polling, say what happened
                logs.LOGGER.exception("poll failed", extra={"cosmonaut_fields": {}})
                delay = self.backoff.next()
