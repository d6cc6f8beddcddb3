"""Follows the engine's event stream: drains at once what stops, and tells the trigger what may
change the routing; reconnects with backoff."""

from __future__ import annotations

import threading
from collections.abc import Callable

from cosmonaut import logs
from cosmonaut.daemon.trigger import Trigger
from cosmonaut.discovery.engine import JSON, Engine, EngineError, EngineUnavailable, EventStream
from cosmonaut.discovery.events import (
    HEALTH_UNKNOWN,
    FreshEvents,
    drain_reason,
    event_time,
    relevant,
)
from cosmonaut.metrics import Metrics
from runtime.backoff import Backoff

# The trigger's reason when the stream sends events again (see ``Watcher._run``).
EVENTS_REPLAYED = "events replayed"


class Watcher:
    """Follows the Docker event stream; reconnects with backoff when the API goes away."""

    def __init__(
        self,
        engine: Engine,
        trigger: Trigger,
        *,
        metrics: Metrics | None = None,
        backoff: Backoff | None = None,
        keyword: str | None = None,
        haproxy: str | None = None,
        drain: Callable[[str, str, float | None], object] | None = None,
    ) -> None:
        self.engine = engine
        self.trigger = trigger
        self.drain = drain  # (container id, why, event time): called on this thread, at once
        self.keyword = keyword
        self.haproxy = haproxy
        self.metrics = metrics or Metrics()
        self.backoff = backoff or Backoff(0.1, 5.0)
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._stream: EventStream | None = None
        self._thread = threading.Thread(target=self._run, name="cosmonaut-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        self._thread.join(timeout=5)

    def _drain(self, event: JSON) -> None:
        """Drain the event's container at once when it is stopping or unhealthy."""
        assert self.drain is not None
        why = drain_reason(event, self.keyword)
        container = str((event.get("Actor") or {}).get("ID", ""))
        if why == HEALTH_UNKNOWN:
            try:
                state = self.engine.inspect(container).get("State") or {}
            except EngineError:
                return
            why = "unhealthy" if (state.get("Health") or {}).get("Status") == "unhealthy" else None
        if why is not None and container:
            self.drain(container, why, event_time(event))

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                self.engine.ping()
                fresh = FreshEvents(self.engine.clock())
                stream = self.engine.events({"type": ["container", "network"]})
            except (EngineUnavailable, EngineError) as error:
                delay = self.backoff.next()
                logs.warning("docker unavailable", error=str(error), retry_in=round(delay, 2))
                if self._stop.wait(delay):
                    return
                continue
            self._stream = stream
            self.backoff.reset()
            self.connected.set()
            if first:
                logs.info("docker connected")
            else:
                self.metrics.inc("cosmonaut_docker_reconnects_total")
                logs.info("docker reconnected")
            # Subscribed first, listed second: nothing that happens in between is missed.
            self.trigger.notify("connected" if first else "reconnected")
            first = False
            replaying = False
            try:
                for event in stream:
                    if not fresh.admit(event):
                        self.metrics.inc("cosmonaut_docker_events_replayed_total")
                        if not replaying:
                            # The stream jumped back in the engine's log (Podman 4.3, at a
                            # rotation): a gap may lie beside the jump. One listing, as after
                            # a reconnection, whatever the replay's length.
                            self.trigger.notify(EVENTS_REPLAYED)
                        replaying = True
                        continue
                    replaying = False
                    if self.drain is not None:
                        self._drain(event)
                    reason = relevant(event, self.keyword, self.haproxy)
                    if reason is not None:
                        actor = event.get("Actor") or {}
                        self.trigger.notify(reason, str(actor.get("ID", "")) or None)
            except EngineUnavailable as error:
                if not self._stop.is_set():
                    logs.warning("docker event stream broke", error=str(error))
            finally:
                self._stream = None
                self.connected.clear()
            if self._stop.is_set():
                return
            logs.warning("docker event stream ended; reconnecting")
            self.engine.reset()
