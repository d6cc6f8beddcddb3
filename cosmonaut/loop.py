"""The daemon: Docker events -> debounced batches -> one reconcile pass per batch.

Level-triggered: an event only says "look again". Each batch of relevant events leads to one
full listing and one payload, so a missed or reordered event cannot leave a wrong config
behind. Passes also run at start-up, after every reconnection to the Docker API, periodically
(``--resync-interval``), and, after a failure worth retrying, with exponential backoff.

Debounce. A batch closes once no event arrived for the *quiet period*, or at the latest
``--debounce-max`` after its first event. The quiet period adapts: it is ``--debounce-min``
while the host is calm, so a single container start is routed quickly, and doubles (up to half
of ``--debounce-max``) while a burst goes on (a batch touched several containers, or events
arrived while the previous pass was applying), then halves again once batches are single.
The measurements behind the defaults are in the README's Cosmonaut section.

Polling (``--poll-interval``). The poller's thread reads the table's config and offers a
changed one to the loop; the loop applies it between passes (one apply at a time, always on
this thread). An offer never delays or closes a batch of events: a batch's pass asks the
registry anyway, and supersedes any offer made before it ended. Polls do not count as the
periodic resync, which is what keeps this host's report (its lease) fresh in a fleet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cosmonaut import logs
from cosmonaut.engine import (
    JSON,
    Engine,
    EngineError,
    EngineUnavailable,
    EventStream,
    FreshEvents,
    event_time,
)
from cosmonaut.metrics import Metrics
from cosmonaut.poll import Polled, Poller
from cosmonaut.runtime_api import EXITED
from cosmonaut.sync import PassResult, Syncer
from runtime.backoff import Backoff

# Container actions that can change what is routed. Docker says "destroy", Podman "remove";
# health events are "health_status: healthy" (Docker) or "health_status" (Podman). "kill" does
# not start a pass (every reload signals HAProxy, and a kill that stops a container is followed
# by "die"), but a stop signal drains the container's server at once (``drain_reason``).
RELEVANT_ACTIONS = frozenset(
    {"start", "die", "stop", "destroy", "remove", "pause", "unpause", "rename"}
)
RELEVANT_NETWORK_ACTIONS = frozenset({"connect", "disconnect"})
# The quiet period a burst starts from (then doubles): longer than the gaps between the
# events of one burst as Podman delivers them (in ticks of 250 ms) needs a few doublings.
BURST_QUIET = 0.1


def relevant(event: JSON, keyword: str | None = None, haproxy: str | None = None) -> str | None:
    """A short description of the event when it may change the routing, else None.

    With ``keyword``, events of containers whose name lacks it are ignored, except those of
    the HAProxy container (named ``haproxy``) and renames: a rename can take a container out
    of the keyword, and Podman's event names only the new name.
    """
    kind = event.get("Type")
    action = str(event.get("Action") or event.get("status") or "")
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    if kind == "container":
        base = action.split(":", 1)[0].strip()
        if base in RELEVANT_ACTIONS or base == "health_status":
            name = str(attributes.get("name") or "")
            other = bool(keyword and name and keyword.lower() not in name.lower())
            if other and name != haproxy and base != "rename":
                return None
            return f"{base} {name or str(actor.get('ID', ''))[:12]}"
    elif kind == "network" and action in RELEVANT_NETWORK_ACTIONS:
        container = str(attributes.get("container", ""))[:12]
        return f"network {action} {container}"
    return None


# Signals that ask a process to stop, as Docker's "kill" event names them (its "signal"
# attribute is the number; other engines may spell the name).
STOP_SIGNALS = frozenset({"15", "2", "3", "SIGTERM", "SIGINT", "SIGQUIT", "TERM", "INT", "QUIT"})


HEALTH_UNKNOWN = "health status unknown"


def drain_reason(event: JSON, keyword: str | None = None) -> str | None:
    """Why the event's container should be drained now, else None: a ``kill`` with a stop
    signal (SIGTERM, SIGINT, SIGQUIT; other signals, SIGHUP say, are ignored) or the
    container turning unhealthy (``HEALTH_UNKNOWN`` when the event does not say the status).
    Podman 4's Docker-compatible API sends no ``kill`` event for ``docker stop``, no signal
    attribute for ``docker kill`` and no status in health events (see the README)."""
    if event.get("Type") != "container":
        return None
    action = str(event.get("Action") or event.get("status") or "")
    attributes = (event.get("Actor") or {}).get("Attributes") or {}
    name = str(attributes.get("name") or "")
    if keyword and name and keyword.lower() not in name.lower():
        return None
    base, _, detail = action.partition(":")
    if base == "die":
        return EXITED
    if base == "kill":
        signal = str(attributes.get("signal") or "").upper()
        return f"signal {signal}" if signal in STOP_SIGNALS else None
    if base == "health_status":
        status = (detail.strip() or str(attributes.get("health_status") or "")).lower()
        if not status:
            return HEALTH_UNKNOWN  # Podman 4 does not say which: inspect the container
        return "unhealthy" if status == "unhealthy" else None
    return None


@dataclass(frozen=True, slots=True)
class Batch:
    reasons: tuple[str, ...]
    subjects: frozenset[str]  # containers the events were about
    first: float  # the trigger's clock when the first event arrived


class Trigger:
    """Collects events from any thread; ``wait_batch`` returns them debounced.

    ``clock`` (seconds, monotonic) stamps events and decides when a batch closes; tests pass
    their own to replay an exact sequence of events.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._condition = threading.Condition()
        self._reasons: list[str] = []
        self._subjects: set[str] = set()
        self._first = 0.0
        self._last = 0.0
        self._stopped = False
        self._offer: Polled | None = None

    def offer(self, polled: Polled) -> None:
        """A config the poller read; the newest offer replaces an older one."""
        with self._condition:
            self._offer = polled
            self._condition.notify_all()

    def take_offer(self) -> Polled | None:
        with self._condition:
            polled, self._offer = self._offer, None
            return polled

    def notify(self, reason: str, subject: str | None = None) -> None:
        with self._condition:
            now = self._clock()
            if not self._reasons:
                self._first = now
            self._reasons.append(reason)
            if subject:
                self._subjects.add(subject)
            self._last = now
            self._condition.notify_all()

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def pending(self) -> bool:
        with self._condition:
            return bool(self._reasons)

    def wait_batch(self, quiet: float, maximum: float, timeout: float | None) -> Batch | None:
        """Wait up to ``timeout`` for a first event, then until the batch closes.

        Returns None on timeout, on stop, and when an offer (``offer``) arrives before any
        event. Events that arrived before the call count as the batch's start, so work
        queued during a pass is picked up at once.
        """
        with self._condition:
            deadline = None if timeout is None else self._clock() + timeout
            while not self._reasons and not self._stopped:
                if self._offer is not None:
                    return None
                remaining = None if deadline is None else deadline - self._clock()
                if remaining is not None and remaining <= 0:
                    return None
                self._condition.wait(remaining)
            while not self._stopped:
                now = self._clock()
                closes = min(self._last + quiet, self._first + maximum)
                if now >= closes:
                    break
                self._condition.wait(closes - now)
            if self._stopped:
                return None
            batch = Batch(tuple(self._reasons), frozenset(self._subjects), self._first)
            self._reasons.clear()
            self._subjects.clear()
            return batch


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
            try:
                for event in stream:
                    if not fresh.admit(event):
                        self.metrics.inc("cosmonaut_docker_events_replayed_total")
                        continue
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


class Daemon:
    """``cosmonaut run``: the watcher thread feeds batches to the syncer."""

    def __init__(
        self,
        engine: Engine,
        syncer: Syncer,
        *,
        debounce_min: float = 0.02,
        debounce_max: float = 2.0,
        resync_interval: float = 60.0,
        poll_interval: float = 0.0,
        retry_backoff: Backoff | None = None,
        on_pass: Callable[[PassResult], None] | None = None,
        folder_interval: float = 5.0,
        acme_interval: float = 10.0,
    ) -> None:
        self.engine = engine
        self.syncer = syncer
        self.debounce_min = debounce_min
        self.debounce_max = max(debounce_max, debounce_min)
        self.resync_interval = resync_interval
        self.retry = retry_backoff or Backoff(0.25, 5.0)
        self.on_pass = on_pass
        self.trigger = Trigger()
        self.poller: Poller | None = None
        if poll_interval > 0:
            self.poller = Poller(
                syncer.registry,
                syncer.table,
                interval=poll_interval,
                health=syncer.health,
                state=lambda: (syncer.generation, syncer.etag),
                deliver=self.trigger.offer,
                report=self.trigger.notify,
                changed=syncer.save_status,
            )
        discoverer = syncer.discoverer
        self.watcher = Watcher(
            engine.clone(),
            self.trigger,
            metrics=syncer.metrics,
            keyword=discoverer.keyword,
            haproxy=discoverer.haproxy_name,
            drain=syncer.drain if syncer.runtime is not None else None,
        )
        self.quiet = debounce_min
        self.passes = 0
        # HTTPS: how often the certificate folder is listed (a change is loaded by a pass),
        # and the ACME manager's thread, which asks for a pass when a certificate arrives.
        self.folder_interval = folder_interval
        self.acme_interval = acme_interval
        self._acme_stop = threading.Event()
        self._acme_thread: threading.Thread | None = None
        certificates = syncer.certificates
        if certificates is not None:
            certificates.notify = self.trigger.notify
            self._acme_thread = threading.Thread(
                target=certificates.run,
                args=(self._acme_stop, acme_interval),
                name="cosmonaut-acme",
                daemon=True,
            )

    def stop(self) -> None:
        self._stop_acme()
        self.trigger.stop()
        self.syncer.applier.target.stop()
        self.syncer.registry.close()

    def run(self) -> None:
        self.watcher.start()
        if self.poller is not None:
            self.poller.start()
        if self._acme_thread is not None:
            self._acme_thread.start()
        try:
            self._loop()
        finally:
            self._stop_acme()
            if self.poller is not None:
                self.poller.stop()
            self.watcher.stop()
            if self._acme_thread is not None:
                self._acme_thread.join(timeout=5)

    def _stop_acme(self) -> None:
        """End the ACME thread's wait at once (it may be sleeping until a renewal)."""
        self._acme_stop.set()
        if self.syncer.certificates is not None:
            self.syncer.certificates.wake()

    def _loop(self) -> None:
        next_resync = time.monotonic() + self.resync_interval
        retry_at: float | None = None
        watch_folder = self.syncer.folder is not None and self.folder_interval > 0
        next_folder = time.monotonic() + self.folder_interval if watch_folder else float("inf")
        while not self.trigger.stopped:
            now = time.monotonic()
            wake = min(next_resync, retry_at) if retry_at is not None else next_resync
            wake = min(wake, next_folder)
            batch = self.trigger.wait_batch(
                self.quiet, self.debounce_max, timeout=max(0.0, wake - now)
            )
            if self.trigger.stopped:
                return
            now = time.monotonic()
            offer = self.trigger.take_offer()
            folder_changed = False
            if batch is None and offer is None and now >= next_folder:
                next_folder = now + self.folder_interval
                folder_changed = self.syncer.folder_changed()
                if (
                    not folder_changed
                    and now < next_resync
                    and (retry_at is None or now < retry_at)
                ):
                    continue
            if batch is None and offer is not None:
                result = self._polled(offer)
                if result is None:
                    continue
            else:
                if batch is not None:
                    reasons = batch.reasons
                elif folder_changed:
                    reasons = ("certificate folder changed",)
                elif retry_at is not None and now >= retry_at:
                    reasons = ("retry",)
                else:
                    reasons = ("resync",)
                result = self.syncer.sync(_summary(reasons))
                if batch is not None:
                    self._adapt(batch)
                next_resync = time.monotonic() + self.resync_interval
            self.passes += 1
            if result.retry:
                delay = self.retry.next()
                retry_at = time.monotonic() + delay
                logs.info("retry scheduled", retry_in=round(delay, 2))
            else:
                retry_at = None
                self.retry.reset()
            if self.on_pass is not None:
                self.on_pass(result)

    def _polled(self, offer: Polled) -> PassResult | None:
        """Apply a config the poller read, or report first (a full pass), or skip it."""
        action, why = self.syncer.poll_action(offer)
        if action == "skip":
            logs.debug("polled config skipped", reason=why)
            return None
        if action == "report":
            logs.info("polled config: reporting first", reason=why)
            return self.syncer.sync(("poll",))
        logs.info("polled config changed", reason=why)
        return self.syncer.apply_polled(offer)

    def _adapt(self, batch: Batch) -> None:
        """Lengthen the quiet period during a burst, shorten it when batches are single."""
        burst = len(batch.subjects) > 1 or self.trigger.pending()
        ceiling = max(self.debounce_min, self.debounce_max / 2)
        if burst:
            self.quiet = min(ceiling, max(self.quiet * 2, BURST_QUIET))
        else:
            self.quiet = max(self.debounce_min, self.quiet / 2)


def _summary(reasons: tuple[str, ...], limit: int = 8) -> tuple[str, ...]:
    if len(reasons) <= limit:
        return reasons
    return (*reasons[:limit], f"... {len(reasons) - limit} more")
