"""The event loop's pure parts: which events matter, debouncing, backoff (no Docker needed)."""

from __future__ import annotations

import threading
import time

import pytest

from cosmonaut.loop import Backoff, Batch, Trigger, relevant


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


def test_a_lone_event_closes_after_the_quiet_period() -> None:
    trigger = Trigger()
    trigger.notify("start a", "a")
    started = time.monotonic()
    batch = trigger.wait_batch(quiet=0.05, maximum=5, timeout=1)
    assert batch is not None
    assert batch.reasons == ("start a",)
    assert batch.subjects == frozenset({"a"})
    assert 0.04 <= time.monotonic() - started < 0.5
    assert not trigger.pending()


def test_a_burst_is_one_batch_until_it_is_quiet() -> None:
    trigger = Trigger()

    def burst() -> None:
        for index in range(10):
            trigger.notify(f"start {index}", str(index))
            time.sleep(0.02)

    thread = threading.Thread(target=burst)
    thread.start()
    batch = trigger.wait_batch(quiet=0.1, maximum=5, timeout=2)
    thread.join()
    assert batch is not None
    assert len(batch.reasons) == 10


def test_a_batch_never_waits_longer_than_the_maximum() -> None:
    trigger = Trigger()
    stop = threading.Event()

    def endless() -> None:
        while not stop.is_set():
            trigger.notify("start x", "x")
            time.sleep(0.01)

    thread = threading.Thread(target=endless)
    thread.start()
    try:
        started = time.monotonic()
        batch = trigger.wait_batch(quiet=0.05, maximum=0.3, timeout=2)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
    assert batch is not None
    assert elapsed < 0.6


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
    from cosmonaut.loop import Daemon

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
