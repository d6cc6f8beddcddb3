"""The event loop's pure parts: which events matter, debouncing, backoff (no Docker needed)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from cosmonaut.daemon.trigger import Batch, Trigger
from cosmonaut.discovery.events import FreshEvents, relevant
from runtime.backoff import Backoff


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            {"Type": "container", "Action": "start", "Actor": {"Attributes": {"name": "a"}}},
            "start a",
        ),
        (
            {"Type": "container", "Action": "die", "Actor": {"ID": "0123456789abcdef"}},
            "die 0123456789ab",
        ),
        (
            {"Type": "container", "Action": "remove", "Actor": {"Attributes": {"name": "a"}}},
            "remove a",
        ),
        (
            {"Type": "container", "Action": "destroy", "Actor": {"Attributes": {"name": "a"}}},
            "destroy a",
        ),
        (
            {
                "Type": "container",
                "Action": "health_status: unhealthy",
                "Actor": {"Attributes": {"name": "a"}},
            },
            "health_status a",
        ),
        (
            {"Type": "container", "status": "pause", "Actor": {"Attributes": {"name": "a"}}},
            "pause a",
        ),
        (
            {
                "Type": "network",
                "Action": "connect",
                "Actor": {"Attributes": {"container": "c" * 64}},
            },
            "network connect cccccccccccc",
        ),
        # Not relevant: our own reload signal, exec sessions, creation, images.
        (
            {"Type": "container", "Action": "kill", "Actor": {"Attributes": {"name": "haproxy"}}},
            None,
        ),
        ({"Type": "container", "Action": "exec_start: sh -c x", "Actor": {}}, None),
        ({"Type": "container", "Action": "create", "Actor": {}}, None),
        ({"Type": "image", "Action": "pull", "Actor": {}}, None),
    ],
)
def test_relevant_events(event: dict, expected: str | None) -> None:
    assert relevant(event) == expected


def test_keyword_filters_events_but_never_the_haproxy_container() -> None:
    def event(name: str) -> dict:
        return {"Type": "container", "Action": "start", "Actor": {"Attributes": {"name": name}}}

    assert relevant(event("Asteroid-web"), "asteroid", "haproxy") == "start Asteroid-web"
    assert relevant(event("other"), "asteroid", "haproxy") is None
    assert relevant(event("haproxy"), "asteroid", "haproxy") == "start haproxy"
    assert relevant(event("other")) == "start other"


# --- debouncing, replayed on a clock the test moves ------------------------------------------
#
# No wall clock: the trigger reads a FakeClock, which only the test moves. After each step (the
# clock moves, or an event arrives) the test waits until the thread taking batches has judged
# the new state: it read the clock twice since (so its first look ended in a wait), or it took
# the batch. A stalled machine only makes a test slower, never changes what it sees.


class FakeClock:
    """Seconds that pass only when the test says so; counts the reads of other threads."""

    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0
        self._test_thread = threading.get_ident()
        self._read = threading.Condition()

    def __call__(self) -> float:
        if threading.get_ident() != self._test_thread:
            with self._read:
                self.reads += 1
                self._read.notify_all()
        return self.now

    def judged(self, trigger: Trigger, guard: int = 1000) -> None:
        """Return once the batch-taking thread has looked at the current state."""
        target = self.reads + 2
        for _ in range(guard):  # a hang guard: about 10 s
            if self.reads >= target or not trigger.pending():
                return
            with self._read:
                self._read.wait(0.01)  # woken by every read
        pytest.fail("the thread taking batches neither looked at the clock nor took the batch")


def replay(
    events: list[tuple[float, str]], *, until: float, quiet: float, maximum: float
) -> list[tuple[float, tuple[str, ...]]]:
    """Events as (time, reason), fed to a trigger while another thread takes batches from it
    as the daemon does; the batches closed by ``until``, as (time of the first event, reasons).
    """
    clock = FakeClock()
    trigger = Trigger(clock)
    batches: list[Batch] = []

    def take() -> None:
        while (batch := trigger.wait_batch(quiet, maximum, timeout=None)) is not None:
            batches.append(batch)

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    for at, reason in events:
        clock.now = at
        clock.judged(trigger)
        trigger.notify(reason, reason.split()[-1])
        clock.judged(trigger)
    clock.now = until
    clock.judged(trigger)
    trigger.stop()
    thread.join(timeout=10)
    assert not thread.is_alive(), "wait_batch did not return after stop()"
    return [(batch.first, batch.reasons) for batch in batches]


# Times in ticks of a power of two seconds, exact in binary: no rounding decides a comparison.
TICK = 1 / 1024  # about 1 ms: the thread under test waits for real only tick-sized spans


def test_a_lone_event_closes_when_the_quiet_period_is_over() -> None:
    lone = [(0.0, "start a")]
    assert replay(lone, until=3 * TICK, quiet=4 * TICK, maximum=64 * TICK) == []
    assert replay(lone, until=4 * TICK, quiet=4 * TICK, maximum=64 * TICK) == [(0.0, ("start a",))]


def test_the_batch_carries_its_subjects() -> None:
    clock = FakeClock()
    trigger = Trigger(clock)
    trigger.notify("start a", "a")
    trigger.notify("die b", "b")
    trigger.notify("connected")
    clock.now = 1.0
    batch = trigger.wait_batch(quiet=0.5, maximum=5, timeout=None)
    assert batch == Batch(("start a", "die b", "connected"), frozenset({"a", "b"}), 0.0)
    assert not trigger.pending()


def test_a_burst_is_one_batch_until_it_is_quiet() -> None:
    # Ten events 2 ticks apart, a quiet period of 6: one batch, closed 6 ticks after the last.
    burst = [(2 * k * TICK, f"start {k}") for k in range(10)]
    reasons = tuple(reason for _, reason in burst)
    assert replay(burst, until=23 * TICK, quiet=6 * TICK, maximum=64 * TICK) == []
    assert replay(burst, until=24 * TICK, quiet=6 * TICK, maximum=64 * TICK) == [(0.0, reasons)]


def test_a_quiet_gap_splits_batches() -> None:
    events = [(0.0, "start a"), (2 * TICK, "start b"), (8 * TICK, "start c"), (9 * TICK, "die c")]
    assert replay(events, until=32 * TICK, quiet=5 * TICK, maximum=64 * TICK) == [
        (0.0, ("start a", "start b")),
        (8 * TICK, ("start c", "die c")),
    ]


def test_a_batch_never_waits_longer_than_the_maximum() -> None:
    # An event every tick, never quiet: batches close every 16 ticks, from their first event.
    endless = [(k * TICK, f"start {k}") for k in range(40)]
    batches = replay(endless, until=64 * TICK, quiet=4 * TICK, maximum=16 * TICK)
    assert batches == [
        (0.0, tuple(f"start {k}" for k in range(16))),
        (16 * TICK, tuple(f"start {k}" for k in range(16, 32))),
        (32 * TICK, tuple(f"start {k}" for k in range(32, 40))),  # closed by the quiet period
    ]


def test_events_queued_before_the_wait_close_at_once() -> None:
    clock = FakeClock()
    trigger = Trigger(clock)
    for k in range(5):
        clock.now = k * TICK
        trigger.notify(f"start {k}", str(k))
    clock.now = 20 * TICK  # past the maximum since the first: no wait at all
    done: list[Batch | None] = []
    waiter = threading.Thread(target=lambda: done.append(trigger.wait_batch(TICK, 8 * TICK, None)))
    waiter.start()
    waiter.join(timeout=10)
    assert not waiter.is_alive(), "wait_batch waited although the batch was already closed"
    assert done[0] is not None and len(done[0].reasons) == 5


def test_timeout_and_stop() -> None:
    trigger = Trigger()
    assert trigger.wait_batch(quiet=0.01, maximum=1, timeout=0.05) is None
    threading.Timer(0.05, trigger.stop).start()
    assert trigger.wait_batch(quiet=0.01, maximum=1, timeout=None) is None
    assert trigger.stopped


def test_backoff_grows_to_its_maximum_and_resets() -> None:
    backoff = Backoff(0.1, 1.0)
    delays = [backoff.next() for _ in range(8)]
    assert 0.08 <= delays[0] <= 0.12
    assert all(d <= 1.2 for d in delays)
    assert delays[-1] >= 0.8
    backoff.reset()
    assert backoff.next() <= 0.12


def test_quiet_period_adapts_to_bursts() -> None:
    from cosmonaut.daemon.loop import Daemon

    daemon = Daemon.__new__(Daemon)  # only the debounce state is exercised here
    daemon.debounce_min, daemon.debounce_max, daemon.quiet = 0.02, 2.0, 0.02
    daemon.trigger = Trigger()
    many = Batch(("start a", "start b"), frozenset({"a", "b"}), 0.0)
    single = Batch(("start a",), frozenset({"a"}), 0.0)
    seen = []
    for _ in range(6):
        daemon._adapt(many)
        seen.append(daemon.quiet)
    assert seen == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]  # from 0.1, doubling, up to max/2
    daemon._adapt(single)
    assert daemon.quiet == 0.5
    for _ in range(10):
        daemon._adapt(single)
    assert daemon.quiet == 0.02


def _event(action: str, container: str, nano: int) -> dict[str, Any]:
    return {
        "Type": "container",
        "Action": action,
        "Actor": {"ID": container, "Attributes": {"name": f"x-{container}"}},
        "time": nano // 10**9,
        "timeNano": nano,
    }


def test_a_stream_admits_each_event_once_and_none_from_before_it_began() -> None:
    began = 1_796_000_000 * 10**9
    fresh = FreshEvents(began / 1e9)
    ms = 10**6
    live = [_event("start", "a", began + 5 * ms), _event("die", "a", began + 9 * ms)]
    old = _event("die", "b", began - ms)
    # The live events, then a rotation replaying the old one and both live ones again.
    admitted = [fresh.admit(e) for e in [*live, old, *live, _event("start", "b", began + 12 * ms)]]
    assert admitted == [True, True, False, False, False, True]


def test_without_the_engine_clock_only_repeats_are_dropped() -> None:
    fresh = FreshEvents(None)
    event = _event("start", "a", 1)
    assert [fresh.admit(event), fresh.admit(dict(event)), fresh.admit(_event("die", "a", 1))] == [
        True,
        False,
        True,
    ]
