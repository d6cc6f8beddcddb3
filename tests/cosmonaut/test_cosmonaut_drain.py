"""Which Docker events drain a container's server at once (``cosmonaut.loop.drain_reason``).

The events are spelled as the engines send them: Docker's ``kill`` carries the signal number
in its attributes; Podman 4's compatible API sends ``kill`` without it (and none at all for
``docker stop``), and its health events as ``health_status`` with the status in an attribute.
"""

from __future__ import annotations

from typing import Any

import pytest

from cosmonaut.discovery.events import EXITED, HEALTH_UNKNOWN, drain_reason, relevant


def event(action: str, **attributes: str) -> dict[str, Any]:
    return {
        "Type": "container",
        "Action": action,
        "Actor": {"ID": "f" * 64, "Attributes": {"name": "web-1", **attributes}},
    }


@pytest.mark.parametrize("signal", ["15", "2", "3", "SIGTERM", "SIGINT", "SIGQUIT", "TERM"])
def test_a_stop_signal_drains(signal: str) -> None:
    assert drain_reason(event("kill", signal=signal)) == f"signal {signal}"


@pytest.mark.parametrize("signal", ["1", "SIGHUP", "10", "SIGUSR2", "9", "28"])
def test_other_signals_do_not(signal: str) -> None:
    assert drain_reason(event("kill", signal=signal)) is None


def test_a_kill_without_its_signal_does_not_drain() -> None:
    assert drain_reason(event("kill")) is None  # Podman 4: SIGHUP and SIGTERM look alike


def test_unhealthy_drains_as_docker_and_podman_say_it() -> None:
    assert drain_reason(event("health_status: unhealthy")) == "unhealthy"
    assert drain_reason(event("health_status", health_status="unhealthy")) == "unhealthy"
    assert drain_reason(event("health_status: healthy")) is None
    assert drain_reason(event("health_status", health_status="healthy")) is None
    assert drain_reason(event("health_status")) == HEALTH_UNKNOWN  # Podman 4: inspect it


def test_other_containers_and_other_events_do_not_drain() -> None:
    assert drain_reason(event("kill", signal="15"), keyword="api") is None
    assert drain_reason(event("start")) is None
    assert drain_reason({"Type": "network", "Action": "disconnect"}) is None


def test_a_kill_still_starts_no_pass() -> None:
    assert relevant(event("kill", signal="15")) is None


def test_an_exited_container_leaves_at_once() -> None:
    assert drain_reason(event("die", exitCode="0")) == EXITED
