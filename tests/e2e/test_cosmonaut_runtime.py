"""The runtime API path on a real HAProxy container: no reload for containers joining and
leaving existing backends, a reload for anything else or when a command fails, and state
that survives a reload."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from compiler.options import RenderOptions, Timeouts
from cosmonaut.apply.runtime_api import RuntimeApi
from cosmonaut.daemon.sync import PassResult
from cosmonaut.discovery.events import EXITED
from cosmonaut.registry.client import LocalRegistry
from runtime.stores.memory import MemoryStore
from tests.support.cosmonaut_e2e import (
    DockerHost,
    Gated,
    HaproxyBox,
    RunningDaemon,
    engine_kind,
    eventually,
    health,
    health_check,
    ip_of,
    load_clients,
    reconciler,
    requests_sent,
    short,
)

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


def test_an_unhealthy_container_is_drained_at_once_then_leaves_without_a_reload(
    host: DockerHost, tmp_path: Path
) -> None:
    haproxy, socket = runtime_haproxy(host, tmp_path)
    api = RuntimeApi(str(socket))
    check = health_check(["CMD", "test", "-e", "/www/index.html"])
    well = host.service("well", labels=WEB, healthcheck=check)
    sick = host.service("sick", labels=WEB, healthcheck=check)
    registry = Gated()
    syncer = reconciler(host, haproxy, runtime_socket=socket, registry=registry)
    with RunningDaemon(syncer) as daemon:
        health(well, "healthy")
        health(sick, "healthy")
        eventually(lambda: answers(haproxy, "web.example") == {short(well), short(sick)})
        eventually(lambda: pass_routing(daemon, well, sick), what="both routed by a pass")
        before = workers(syncer)
        # From here every pass waits in the registry: only the event thread reaches HAProxy.
        registry.hold()
        eventually(lambda: sick.exec_run(["rm", "/www/index.html"]).exit_code == 0, what="rm")
        health(sick, "unhealthy")  # the engine sends a health_status event
        address = ip_of(sick)
        eventually(lambda: admin_state(api, address) & DRAIN, what="drained by the event")
        assert answers(haproxy, "web.example") == {short(well)}
        eventually(registry.holding.is_set, what="the health event's pass waiting")
        registry.release()
        eventually(lambda: answers(haproxy, "web.example") == {short(well)}, what="sick out")
        eventually(lambda: daemon.passes[-1].applied.outcome == "runtime", what="runtime")
        assert workers(syncer) == before
        assert syncer.metrics.values["cosmonaut_drains_total"] == 1  # the pass drained no more


# srv_admin_state's bits: forced maintenance, and drain, as an operator (Cosmonaut) sets them.
MAINT = 0x01
DRAIN = 0x08


def admin_state(api: RuntimeApi, address: str) -> int:
    """The admin state of the server at ``address`` (``show servers state``), 0 if none."""
    for line in api.send("show servers state").splitlines()[2:]:
        row = line.split()
        if len(row) > 6 and row[4] == address:
            return int(row[6])
    return 0


def server_at(api: RuntimeApi, address: str) -> str:
    """``backend/server`` of the server at ``address``, as runtime commands name it."""
    for line in api.send("show servers state").splitlines()[2:]:
        row = line.split()
        if len(row) > 6 and row[4] == address:
            return f"{row[1]}/{row[3]}"
    raise AssertionError(f"no server at {address}")


def pass_routing(daemon: RunningDaemon, *containers: Any) -> PassResult | None:
    """The first pass that succeeded routing exactly ``containers``, once it is recorded (the
    runtime path knows their servers then; HAProxy answering from them says less)."""
    want = {short(c) for c in containers}
    for result in list(daemon.passes):
        if result.ok and result.plan and {c.short_id for c in result.plan.routed} == want:
            return result
    return None


def test_a_stopping_container_is_drained_by_its_events_and_served_again_once_it_runs(
    host: DockerHost, tmp_path: Path
) -> None:
    """``docker stop`` on a routed container, with every pass held in the registry from then
    on, so that only the event thread can reach HAProxy: its server goes to ``drain`` at the
    kill event while the app still finishes its work (the Docker Engine; Podman sends no kill
    event for a stop), and to ``maint`` at ``die``. Started again, it is served again."""
    haproxy, socket = runtime_haproxy(host, tmp_path)
    api = RuntimeApi(str(socket))
    registry = Gated()
    syncer = reconciler(host, haproxy, runtime_socket=socket, registry=registry)
    leaving = host.service("leaving", labels=WEB, stop_delay=3.0)
    staying = host.service("staying", labels=WEB)
    with RunningDaemon(syncer) as daemon:
        eventually(lambda: pass_routing(daemon, leaving, staying), what="both routed")
        address = ip_of(leaving)
        assert not admin_state(api, address) & (MAINT | DRAIN)
        registry.hold()
        stopping = threading.Thread(target=leaving.stop, kwargs={"timeout": 10})
        stopping.start()
        if engine_kind() == "docker":
            eventually(lambda: admin_state(api, address) & DRAIN, what="drain at the kill event")
            leaving.reload()
            assert leaving.status == "running", "drained only once the app had exited"
        stopping.join(timeout=30)
        eventually(lambda: admin_state(api, address) & MAINT, what="maint at the die event")
        assert answers(haproxy, "web.example") == {short(staying)}
        eventually(registry.holding.is_set, what="the stop's pass waiting in the registry")
        leaving.start()
        registry.release()
        eventually(
            lambda: answers(haproxy, "web.example") == {short(leaving), short(staying)},
            what="served again once it runs again",
        )
        assert not admin_state(api, ip_of(leaving)) & (MAINT | DRAIN)


def test_drains_survive_a_reload_cosmonaut_makes(host: DockerHost, tmp_path: Path) -> None:
    """Before a reload Cosmonaut saves the servers' state (``server-state-file``): a server an
    operator drained, and (on the Docker Engine) one the event thread drained at its stop
    signal, stay drained through a reload the daemon makes for another service."""
    haproxy, socket = runtime_haproxy(host, tmp_path)
    api = RuntimeApi(str(socket))
    syncer = reconciler(host, haproxy, runtime_socket=socket)
    docker = engine_kind() == "docker"
    # On SIGTERM it keeps serving for a minute: still running, drained, through the reload.
    stopping = host.service("stopping", labels=WEB, stop_delay=60.0)
    operated, staying = host.service("operated", labels=WEB), host.service("staying", labels=WEB)
    with RunningDaemon(syncer) as daemon:
        eventually(lambda: pass_routing(daemon, stopping, operated, staying), what="routed")
        answer = api.send(f"set server {server_at(api, ip_of(operated))} state drain")
        assert answer.strip() == "", answer
        drained, serving = [operated], {short(staying), short(stopping)}
        if docker:  # Podman's kill event says no signal: nothing to drain it by
            stopping.kill(signal="SIGTERM")  # what docker stop sends first
            eventually(
                lambda: admin_state(api, ip_of(stopping)) & DRAIN, what="drain at the kill event"
            )
            drained.append(stopping)
            serving.remove(short(stopping))
        before = workers(syncer)
        api_container = host.service("a1", labels=API)  # a new service: a reload
        reload = eventually(
            lambda: pass_routing(daemon, stopping, operated, staying, api_container),
            what="the new service routed",
        )
        assert reload.applied is not None and reload.applied.outcome == "applied"
        assert haproxy.get(host="api.example").body == short(api_container)
        assert workers(syncer) != before
        for container in drained:
            assert admin_state(api, ip_of(container)) & DRAIN, container.name
        assert answers(haproxy, "web.example") == serving
        stopping.reload()
        assert stopping.status == "running"


def test_an_exit_seen_after_a_pass_listed_the_container_keeps_it_out_until_it_starts_again(
    host: DockerHost, tmp_path: Path
) -> None:
    """The ``die`` event puts the server in maint; a pass whose listing still shows the
    container running (made just before the exit) must not send traffic back to it. Only a
    start after the exit, as the engine reports it, brings it back."""
    haproxy, socket = runtime_haproxy(host, tmp_path)
    api = RuntimeApi(str(socket))
    syncer = reconciler(host, haproxy, runtime_socket=socket)
    a, b = host.service("a", labels=WEB), host.service("b", labels=WEB)
    assert sync_ok(syncer).outcome == "applied"
    eventually(lambda: answers(haproxy, "web.example") == {short(a), short(b)})
    # What the event thread does at a's "die" event, while a pass still lists a as running.
    assert syncer.drain(a.id, EXITED, time.time())
    sync_ok(syncer)
    assert admin_state(api, ip_of(a)) & MAINT, "a pass sent traffic back to an exited container"
    assert answers(haproxy, "web.example") == {short(b)}
    a.restart(timeout=1)  # Podman gives it a new address, the Docker Engine its old one
    sync_ok(syncer)
    assert not admin_state(api, ip_of(a)) & MAINT
    eventually(lambda: answers(haproxy, "web.example") == {short(a), short(b)}, what="a back")


def test_a_container_given_an_exited_ones_address_in_the_same_pass_is_served(
    host: DockerHost, tmp_path: Path
) -> None:
    """The Docker Engine gives a stopped container's address to the next container at once.
    When the exit and the start fall into one pass, the server keeps its name (same address)
    and the exit had put it in maint: it must be made ready for the new container."""
    haproxy, socket = runtime_haproxy(host, tmp_path)
    network = host.network("reuse", "172.30.99.0/24")
    network.connect(haproxy.container)
    syncer = reconciler(host, haproxy, runtime_socket=socket)
    old = host.service("old", labels=WEB, start=False)
    host.attach(old, network, "172.30.99.10")
    old.start()
    assert sync_ok(syncer).outcome == "applied"
    eventually(lambda: answers(haproxy, "web.example") == {short(old)}, what="old routed")
    old.stop(timeout=1)
    assert syncer.drain(old.id, EXITED, time.time())  # what the event thread does at "die"
    new = host.service("new", labels=WEB, start=False)
    host.attach(new, network, "172.30.99.10")
    new.start()
    sync_ok(syncer)
    assert not admin_state(RuntimeApi(str(socket)), "172.30.99.10") & MAINT
    # Served: on the Docker Engine, which derives a container's MAC address from its IP
    # address. Podman gives the new container a new MAC, and HAProxy's network namespace
    # keeps the old one's neighbour entry for a while, so nothing answers at that address
    # then, whoever routes it (an engine's way, not Cosmonaut's; Podman hands out fresh
    # addresses, so it meets this only with addresses chosen by hand, as here).
    if engine_kind() == "docker":
        eventually(lambda: answers(haproxy, "web.example") == {short(new)}, what="new served")


# Podman 4 sends no "kill" event at "docker stop", so nothing drains the server before the
# container exits there, and a connection HAProxy opens to it in the moment between its exit
# and the "die" event hangs (the address is gone: no reset) until "timeout connect", longer
# than the clients' 5 s with the default 5 s. So on Podman only, as docs/cosmonaut.md advises there,
# the test sets a 1 s connect timeout; on the Docker Engine it runs the default options.
PODMAN_CONNECT_TIMEOUT = "1s"
# Requests each client sends from a stop on before the next replacement: 3 x 34 > 100.
STEP_REQUESTS = 34


@pytest.mark.parametrize("stop_delay", [3.0, 0.0], ids=["finishes-in-flight", "exits-at-once"])
def test_rolling_replace_under_load_fails_no_request(
    host: DockerHost, tmp_path: Path, stop_delay: float
) -> None:
    haproxy, socket = runtime_haproxy(host, tmp_path)
    api = RuntimeApi(str(socket))
    docker = engine_kind() == "docker"
    options = RenderOptions()
    if not docker:
        options = RenderOptions(timeouts=Timeouts(connect=PODMAN_CONNECT_TIMEOUT))
    registry = LocalRegistry(MemoryStore(), options)
    syncer = reconciler(host, haproxy, runtime_socket=socket, registry=registry)

    def start(name: str) -> Any:
        return host.service(name, labels=WEB, stop_delay=stop_delay)

    old = [start(f"old{n}") for n in range(3)]
    with RunningDaemon(syncer) as daemon:
        eventually(lambda: answers(haproxy, "web.example", 20) == {short(c) for c in old})
        clients = load_clients(haproxy, "web.example")
        try:
            assert clients.stdout.readline().strip() == "ready"
            for index, container in enumerate(old):
                new = start(f"new{index}")
                eventually(
                    lambda new=new: short(new) in answers(haproxy, "web.example", 20),
                    what="the new container routed",
                )
                drains = syncer.metrics.values["cosmonaut_drains_total"]
                address = ip_of(container)
                sent = requests_sent(clients)
                # docker stop with a 10 s grace period
                stopping = threading.Thread(target=container.stop, kwargs={"timeout": 10})
                stopping.start()
                if docker and stop_delay:
                    # After the kill event, while the app finishes its in-flight work (before
                    # die), its server takes no new client.
                    eventually(
                        lambda a=address: admin_state(api, a) & DRAIN, what="drain after kill"
                    )
                    container.reload()
                    assert container.status == "running", "drained only after die"
                stopping.join(timeout=30)
                if docker:
                    eventually(
                        lambda d=drains: syncer.metrics.values["cosmonaut_drains_total"] == d + 1,
                        what="the kill event's drain",
                    )
                eventually(
                    lambda c=container: short(c) not in answers(haproxy, "web.example", 20),
                    what="the old one gone",
                )
                # The load went on through the replacement, however slowly the clients run
                # on a loaded machine (a count reached, never a rate).
                eventually(
                    lambda b=sent: all(
                        n - b[k] >= STEP_REQUESTS for k, n in requests_sent(clients).items()
                    ),
                    timeout=60,
                    what=f"{STEP_REQUESTS} requests of each client since the stop",
                )
        finally:
            summary, _ = clients.communicate("", timeout=60)
        outcomes = [p.applied.outcome for p in daemon.passes if p.applied]
    figures = json.loads(summary.strip().splitlines()[-1])
    app = "finishes-in-flight" if stop_delay else "exits-at-once"
    print(f"rolling replace under load [{app}]:", json.dumps(figures), outcomes)  # pytest -rP
    assert (figures["fresh"]["failed"], figures["kept"]["failed"]) == (0, 0), figures
    assert figures["fresh"]["requests"] > 100 and figures["kept"]["requests"] > 100, figures
    # Every replacement went through the runtime API (3 in, 3 out; a die and the next start
    # may share a pass): no reload after the first.
    assert outcomes[0] == "applied" and outcomes.count("applied") == 1, outcomes
    assert set(outcomes[1:]) <= {"runtime", "unchanged"} and outcomes.count("runtime") >= 3


OTHER = {
    "cosmonaut.service": "other",
    "cosmonaut.predicate": "other.example",
    "cosmonaut.port": "8080",
}
EXTRA = {
    "cosmonaut.service": "extra",
    "cosmonaut.predicate": "extra.example",
    "cosmonaut.port": "8080",
}
# 200 is the figure; each change is a container start or stop plus one pass.
CHANGES = int(os.environ.get("COSMONAUT_E2E_CHANGES", "40"))


def test_mixed_changes_under_load_reload_only_for_structural_ones(
    host: DockerHost, tmp_path: Path
) -> None:
    haproxy, socket = runtime_haproxy(host, tmp_path)
    syncer = reconciler(host, haproxy, runtime_socket=socket)
    loaded = [host.service(f"web{n}", labels=WEB) for n in range(2)]
    host.service("other0", labels=OTHER)
    assert sync_ok(syncer).outcome == "applied"
    eventually(lambda: answers(haproxy, "web.example") == {short(c) for c in loaded})
    clients = load_clients(haproxy, "web.example")
    outcomes: list[str] = []
    structural = 0
    joined: Any = None
    extra: Any = None
    reloads = syncer.metrics.values["cosmonaut_reloads_total"]
    try:
        assert clients.stdout.readline().strip() == "ready"
        for index in range(CHANGES):
            step = index % 4
            if step == 0:  # a container joins "other": the runtime path
                joined = host.service(f"other-j{index}", labels=OTHER)
            elif step == 1:  # a new service: a reload
                extra = host.service(f"extra{index}", labels=EXTRA)
                structural += 1
            elif step == 2:  # the container leaves "other": the runtime path
                joined.stop(timeout=1)
            else:  # the service goes away: a reload
                extra.stop(timeout=1)
                structural += 1
            outcomes.append(sync_ok(syncer).outcome)
            if step == 1:
                assert haproxy.get(host="extra.example").body == short(extra)
    finally:
        summary, _ = clients.communicate("", timeout=60)
    figures = json.loads(summary.strip().splitlines()[-1])
    print(f"{CHANGES} mixed changes under load:", json.dumps(figures))  # pytest -rP
    assert (figures["fresh"]["failed"], figures["kept"]["failed"]) == (0, 0), figures
    assert syncer.metrics.values["cosmonaut_reloads_total"] - reloads == structural
    assert outcomes == ["runtime", "applied"] * (CHANGES // 2) + outcomes[CHANGES // 2 * 2 :]


def test_a_backend_out_of_slots_grows_at_a_reload(host: DockerHost, tmp_path: Path) -> None:
    haproxy, socket = runtime_haproxy(host, tmp_path)
    syncer = reconciler(host, haproxy, runtime_socket=socket)
    containers = [host.service("w0", labels=WEB)]
    assert sync_ok(syncer).outcome == "applied"  # 1 server, 3 free slots
    containers += [host.service(f"w{n}", labels=WEB) for n in (1, 2, 3)]
    assert sync_ok(syncer).outcome == "runtime"  # the 3 slots filled: the backend is full
    containers.append(host.service("w4", labels=WEB))
    applied = sync_ok(syncer)
    assert applied.outcome == "applied" and "more slots" in applied.message
    assert syncer.metrics.fallbacks_by_reason["slots"] == 1
    lines = [x for x in haproxy.config().splitlines() if x.startswith("    server ")]
    assert len(lines) == 8 and sum(x.endswith(" disabled") for x in lines) == 3
    want = {short(c) for c in containers}
    eventually(lambda: answers(haproxy, "web.example", 20) == want, what="all 5 routed")
