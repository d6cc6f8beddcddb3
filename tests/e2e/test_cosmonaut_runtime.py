"""The runtime API path on a real HAProxy container: no reload for containers joining and
leaving existing backends, a reload for anything else or when a command fails, and state
that survives a reload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cosmonaut_e2e import DockerHost, HaproxyBox, eventually, reconciler, short

from cosmonaut.runtime_api import RuntimeApi

WEB = {
    "cosmonaut.service": "web",
    "cosmonaut.predicate": "web.example",
    "cosmonaut.port": "8080",
    "cosmonaut.cookie": "SID",
}
API = {
    "cosmonaut.service": "api",
    "cosmonaut.predicate": "api.example",
    "cosmonaut.port": "8080",
}


def runtime_haproxy(host: DockerHost, tmp_path: Path) -> tuple[HaproxyBox, Path]:
    folder = tmp_path / "haproxy-lib"
    folder.mkdir()
    return host.haproxy(runtime_dir=folder), folder / "admin.sock"


def workers(syncer: Any) -> frozenset[int]:
    target = syncer.applier.target
    return frozenset(target.workers(target.locate()).workers)


def answers(haproxy: HaproxyBox, host: str, n: int = 12) -> set[str]:
    return {haproxy.get(host=host).body for _ in range(n)}


def sync_ok(syncer: Any) -> Any:
    result = syncer.sync()
    assert result.ok, (result.error, result.applied and result.applied.message)
    return result.applied


def test_a_third_container_is_routed_without_a_reload_and_a_new_service_reloads(
    host: DockerHost, tmp_path: Path
) -> None:
    haproxy, socket = runtime_haproxy(host, tmp_path)
    syncer = reconciler(host, haproxy, runtime_socket=socket)
    first, second = host.service("w1", labels=WEB), host.service("w2", labels=WEB)
    assert sync_ok(syncer).outcome == "applied"
    eventually(lambda: answers(haproxy, "web.example") == {short(first), short(second)})
    before, reloads = workers(syncer), syncer.metrics.values["cosmonaut_reloads_total"]

    third = host.service("w3", labels=WEB)
    applied = sync_ok(syncer)
    assert applied.outcome == "runtime", applied.message
    eventually(lambda: short(third) in answers(haproxy, "web.example"), what="the third")
    assert workers(syncer) == before  # no new HAProxy worker
    assert syncer.metrics.values["cosmonaut_reloads_total"] == reloads
    assert syncer.metrics.values["cosmonaut_runtime_updates_total"] == 1
    # The file in the container says what runs: the third sits in a slot, enabled.
    assert "server slot-1 " in haproxy.config()
    assert syncer.status()["change_path"] == {"path": "runtime", "reason": None}

    third.stop(timeout=1)
    applied = sync_ok(syncer)
    assert applied.outcome == "runtime", applied.message
    assert answers(haproxy, "web.example") == {short(first), short(second)}
    assert workers(syncer) == before

    api = host.service("a1", labels=API)
    applied = sync_ok(syncer)
    assert applied.outcome == "applied"
    assert "structural" in applied.message
    assert workers(syncer) != before
    assert haproxy.get(host="api.example").body == short(api)
    # Both new services (web at first, api now) reloaded: structural changes.
    assert syncer.metrics.fallbacks_by_reason == {"structural": 2}
    assert syncer.status()["change_path"]["path"] == "reload"


def test_a_failing_runtime_command_falls_back_to_a_reload(host: DockerHost, tmp_path: Path) -> None:
    haproxy, socket = runtime_haproxy(host, tmp_path)
    syncer = reconciler(host, haproxy, runtime_socket=socket)
    first = host.service("w1", labels=WEB)
    assert sync_ok(syncer).outcome == "applied"
    syncer.runtime.api = RuntimeApi(str(tmp_path / "nowhere.sock"))  # unreachable
    second = host.service("w2", labels=WEB)
    applied = sync_ok(syncer)
    assert applied.outcome == "applied", applied.message
    assert "runtime API" in applied.message
    eventually(lambda: answers(haproxy, "web.example") == {short(first), short(second)})
    assert syncer.metrics.fallbacks_by_reason == {"structural": 1, "command": 1}


def test_a_forced_reload_keeps_servers_and_sticky_cookies(host: DockerHost, tmp_path: Path) -> None:
    haproxy, socket = runtime_haproxy(host, tmp_path)
    syncer = reconciler(host, haproxy, runtime_socket=socket)
    containers = [host.service("w1", labels=WEB, cookie="SID")]
    assert sync_ok(syncer).outcome == "applied"
    containers += [host.service(f"w{n}", labels=WEB, cookie="SID") for n in (2, 3)]
    assert sync_ok(syncer).outcome == "runtime"
    api = RuntimeApi(str(socket))

    def cookies() -> dict[str, str]:
        found: dict[str, str] = {}
        for _ in range(30):
            reply = haproxy.get(host="web.example", path="/cgi-bin/id")
            found[reply.body] = reply.headers["set-cookie"].split(";")[0]
        return found

    def all_three() -> dict[str, str] | None:
        found = cookies()
        return found if len(found) == 3 else None

    before = eventually(all_three, what="3 cookies")
    assert len(set(before.values())) == 3  # a cookie value per server
    state = servers_state(api)
    before_workers = workers(syncer)
    haproxy.container.kill(signal="SIGUSR2")  # a reload nobody asked Cosmonaut for
    new_workers = eventually(lambda: workers(syncer) - before_workers, what="a new worker")
    assert new_workers
    assert servers_state(api) == state
    for body, cookie in before.items():
        for _ in range(4):
            assert haproxy.get(host="web.example", path="/", cookie=cookie).body == body


def servers_state(api: RuntimeApi) -> list[tuple[str, ...]]:
    """(backend, server, address, port, in maintenance) of every server. Bit 0x04 of the
    admin state only records that the config said ``disabled`` (a slot filled later)."""
    rows = [line.split() for line in api.send("show servers state").splitlines()[2:]]
    return sorted((r[1], r[3], r[4], r[18], str(int(r[6]) & ~4 != 0)) for r in rows if len(r) > 18)
