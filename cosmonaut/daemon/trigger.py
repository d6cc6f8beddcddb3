"""Events from any thread, debounced into batches (the quiet period adapts to bursts), and the
poller's offers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cosmonaut.registry.poll import Polled

# The quiet period a burst starts from (then doubles): longer than the gaps between the
# events of one burst as Podman delivers them (in ticks of 250 ms) needs a few doublings.
BURST_QUIET = 0.1


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
