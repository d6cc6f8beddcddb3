"""Engine events: which ones can change the routing, which ones drain a server at once, and
dropping the ones an engine sends twice."""

from __future__ import annotations

from typing import Any

from cosmonaut.discovery.engine import JSON

# Why a container's server goes to maint at once: it exited (die).
EXITED = "exited"


def event_time(event: JSON) -> float | None:
    """When the engine says an event happened (``timeNano``, else ``time``), in seconds."""
    nano = event.get("timeNano")
    if isinstance(nano, int) and nano > 0:
        return nano / 1e9
    seconds = event.get("time")
    return float(seconds) if isinstance(seconds, int | float) and seconds > 0 else None


class FreshEvents:
    """Lets each event of one subscription through once, and none from before it began.

    Podman 4.3 rotates its event log by keeping the newer half, and a stream open across the
    rotation reads that half again (podman#17665): events from minutes ago, and events this
    stream already delivered. Replayed, an old ``die`` would drain a container that has run
    since, so they are dropped here. ``since`` is the engine's clock when the subscription
    began (None when it could not be read: then only repeats are dropped).
    """

    def __init__(self, since: float | None, *, memory: int = 8192) -> None:
        self.since = since
        self._memory = memory
        self._seen: dict[tuple[Any, ...], None] = {}

    def admit(self, event: JSON) -> bool:
        at = event_time(event)
        if at is not None and self.since is not None and at < self.since:
            return False
        actor = event.get("Actor") or {}
        key = (
            event.get("timeNano") or event.get("time"),
            event.get("Type"),
            event.get("Action"),
            actor.get("ID") if isinstance(actor, dict) else None,
        )
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self._memory:
            del self._seen[next(iter(self._seen))]
        return True


# Container actions that can change what is routed. Docker says "destroy", Podman "remove";
# health events are "health_status: healthy" (Docker) or "health_status" (Podman). "kill" does
# not start a pass (every reload signals HAProxy, and a kill that stops a container is followed
# by "die"), but a stop signal drains the container's server at once (``drain_reason``).
RELEVANT_ACTIONS = frozenset(
    {"start", "die", "stop", "destroy", "remove", "pause", "unpause", "rename"}
)


RELEVANT_NETWORK_ACTIONS = frozenset({"connect", "disconnect"})


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
    attribute for ``docker kill`` and no status in health events (docs/cosmonaut.md)."""
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
