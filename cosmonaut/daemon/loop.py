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
The measurements behind the defaults are in docs/testing.md.

Polling (``--poll-interval``). The poller's thread reads the table's config and offers a
changed one to the loop; the loop applies it between passes (one apply at a time, always on
this thread). An offer never delays or closes a batch of events: a batch's pass asks the
registry anyway, and supersedes any offer made before it ended. Polls do not count as the
periodic resync, which is what keeps this host's report (its lease) fresh in a fleet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cosmonaut import logs
from cosmonaut.acme.policy import Https
from cosmonaut.daemon.sync import PassResult, Syncer
from cosmonaut.daemon.trigger import BURST_QUIET, Batch, Trigger
from cosmonaut.daemon.watcher import Watcher
from cosmonaut.registry.poll import Polled, Poller
from runtime.backoff import Backoff


@dataclass(frozen=True, slots=True)
class Schedule:
    """When passes run besides batches of events (see the module docstring)."""

    debounce_min: float = 0.02
    debounce_max: float = 2.0
    resync_interval: float = 60.0
    folder_interval: float = 5.0  # how often the certificate folder is listed
    acme_interval: float = 10.0  # the ACME thread's round


class Daemon:
    """``cosmonaut run``: batches from the trigger (fed by the watcher, the poller and the
    ACME thread) become passes of the syncer. Built by ``cosmonaut.wiring``."""

    def __init__(
        self,
        syncer: Syncer,
        trigger: Trigger,
        watcher: Watcher,
        *,
        schedule: Schedule | None = None,
        poller: Poller | None = None,
        https: Https | None = None,
        retry_backoff: Backoff | None = None,
        on_pass: Callable[[PassResult], None] | None = None,
        on_stop: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.syncer = syncer
        self.trigger = trigger
        self.watcher = watcher
        self.poller = poller
        self.https = https  # the certificate folder (listed) and the ACME thread
        self.schedule = schedule or Schedule()
        self.debounce_min = self.schedule.debounce_min
        self.debounce_max = max(self.schedule.debounce_max, self.debounce_min)
        self.resync_interval = self.schedule.resync_interval
        self.folder_interval = self.schedule.folder_interval
        self.retry = retry_backoff or Backoff(0.25, 5.0)
        self.on_pass = on_pass
        self.on_stop = tuple(on_stop)  # what else ends with the daemon (reloads, connections)
        self.quiet = self.debounce_min
        self.passes = 0
        self._acme_stop = threading.Event()
        self._acme_thread: threading.Thread | None = None
        certificates = https.certificates if https is not None else None
        if certificates is not None:
            self._acme_thread = threading.Thread(
                target=certificates.run,
                args=(self._acme_stop, self.schedule.acme_interval),
                name="cosmonaut-acme",
                daemon=True,
            )

    def stop(self) -> None:
        self._stop_acme()
        self.trigger.stop()
        for stop in self.on_stop:
            stop()

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
        if self.https is not None and self.https.certificates is not None:
            self.https.certificates.wake()

    def _loop(self) -> None:
        next_resync = time.monotonic() + self.resync_interval
        retry_at: float | None = None
        https = self.https
        watch_folder = https is not None and self.folder_interval > 0
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
                folder_changed = https is not None and https.changed()
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
