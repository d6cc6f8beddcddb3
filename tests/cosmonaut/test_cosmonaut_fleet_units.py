"""Cosmonaut in a fleet, its pure and offline parts: host ids, published addresses, payloads
with ``host`` and ``created``, reading the table's config (in process, and over real HTTP
against ``lambda-registry serve``), the poller and what the loop does with what it reads."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from compiler.models import Payload
from cosmonaut import cli as cosmonaut_cli
from cosmonaut.apply.container import HaproxyTarget
from cosmonaut.apply.reload import Applier
from cosmonaut.daemon.loop import Daemon, Schedule
from cosmonaut.daemon.sync import PassResult, Syncer
from cosmonaut.daemon.trigger import Trigger
from cosmonaut.daemon.watcher import Watcher
from cosmonaut.discovery.containers import (
    PUBLISHED,
    Discoverer,
    ManagedContainer,
    Reachable,
    Unreachable,
    published_address,
)
from cosmonaut.discovery.engine import Engine
from cosmonaut.discovery.labels import ServiceSettings
from cosmonaut.discovery.modes import ADDRESS_MODES
from cosmonaut.discovery.payload import build_payload, host_id_for, rfc3339
from cosmonaut.errors import RegistryError, RegistryUnavailable
from cosmonaut.metrics import Metrics
from cosmonaut.registry.client import Fetched, LocalRegistry
from cosmonaut.registry.poll import Polled, Poller, RegistryHealth
from cosmonaut.registry.remote import RemoteRegistry
from cosmonaut.state import status_text
from cosmonaut.wiring import resync_interval
from runtime.config import HandlerConfig
from runtime.contract import etag_of
from runtime.handler import RegistryApp
from runtime.pipeline import compile_payload
from runtime.server import RegistryServer
from runtime.stores.memory import MemoryStore

WEB = ServiceSettings("web", "host", "web.example", None, 8080)
CREATED = 1_796_161_292.436433  # 2026-12-01T21:41:32.436433Z


def container(
    name: str, ip: str = "10.88.0.2", created: float = CREATED, host_port: int | None = None
) -> ManagedContainer:
    network = PUBLISHED if host_port else "podman"
    return ManagedContainer(f"{name:0<12}{'f' * 52}", name, created, WEB, network, ip, host_port)


# -- host ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("vm", "vm"),
        ("ip-10-0-1-17.ec2.internal", "ip-10-0-1-17.ec2.internal"),
        ("docker:host_1", "docker:host_1"),
        ("my host/ä", "my-host--"),
        ("  padded  ", "padded"),
        ("", "host"),
        ("x" * 80, "x" * 64),
    ],
    ids=["short", "dns", "colon-underscore", "bad-characters", "spaces", "empty", "long"],
)
def test_host_id_is_an_haproxy_identifier(name: str, expected: str) -> None:
    host = host_id_for(name)
    assert host == expected
    assert Payload.model_validate({"table": "fleet", "host": host, "running": []}).host == host


def test_host_id_flag() -> None:
    parser = cosmonaut_cli.build_parser()
    assert parser.parse_args(["once", "--host-id", "a-1:b.c_d"]).host_id == "a-1:b.c_d"
    assert parser.parse_args(["once", "--host-id", "auto"]).host_id == "auto"
    assert parser.parse_args(["once"]).host_id is None  # default: host-less, as before
    for bad in ("", "a b", "x" * 65, "é"):
        with pytest.raises(SystemExit):
            parser.parse_args(["once", "--host-id", bad])


def test_published_mode_needs_an_advertised_ip_address() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cosmonaut.cli", "once", "--address-mode", "published"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "--advertise-address" in done.stderr
    parser = cosmonaut_cli.build_parser()
    assert parser.parse_args(["once", "--advertise-address", "[fd00::1]"]).advertise_address == (
        "fd00::1"
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["once", "--advertise-address", "host.example"])
    assert cosmonaut_cli.ADDRESS_MODES == ADDRESS_MODES


def test_resync_interval_defaults_to_three_per_lease_in_fleet_mode() -> None:
    assert resync_interval(None, fleet=None) == 60.0
    assert resync_interval(None, fleet="host-a") == 30.0
    assert resync_interval(7.0, fleet="host-a") == 7.0


# -- published addresses ----------------------------------------------------------------------


def listing(*ports: dict[str, Any]) -> dict[str, Any]:
    return {"Ports": list(ports)}


def test_published_port_on_every_address_is_reached_at_the_advertised_address() -> None:
    summary = listing(
        {"PrivatePort": 8080, "PublicPort": 40715, "Type": "tcp"},
        {"IP": "::", "PrivatePort": 8080, "PublicPort": 40715, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 9090, "PublicPort": 40999, "Type": "tcp"},
    )
    assert published_address(summary, 8080, "192.0.2.2") == Reachable(PUBLISHED, "192.0.2.2", 40715)


def test_of_several_published_ports_the_lowest_usable_one_is_taken() -> None:
    summary = listing(
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8081, "Type": "tcp"},
        {"IP": "192.0.2.2", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 8000, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 7000, "Type": "udp"},
    )
    assert published_address(summary, 80, "192.0.2.2") == Reachable(PUBLISHED, "192.0.2.2", 8080)


def test_the_mapping_of_the_advertised_address_family_is_taken() -> None:
    # As Docker 20.10 lists it once its IPv4 and IPv6 port allocations have drifted apart.
    summary = listing(
        {"IP": "0.0.0.0", "PrivatePort": 8080, "PublicPort": 32775, "Type": "tcp"},
        {"IP": "::", "PrivatePort": 8080, "PublicPort": 32774, "Type": "tcp"},
    )
    assert published_address(summary, 8080, "172.17.0.1") == Reachable(
        PUBLISHED, "172.17.0.1", 32775
    )
    assert published_address(summary, 8080, "2001:db8::2") == Reachable(
        PUBLISHED, "2001:db8::2", 32774
    )


def test_a_port_published_on_loopback_only_is_a_problem() -> None:
    summary = listing({"IP": "127.0.0.1", "PrivatePort": 8080, "PublicPort": 42949})
    found = published_address(summary, 8080, "192.0.2.2")
    assert isinstance(found, Unreachable)
    assert found.setting == "ports"
    assert "published only on 127.0.0.1:42949" in found.reason


@pytest.mark.parametrize(
    "summary",
    [
        {},
        listing({"PrivatePort": 9090, "PublicPort": 40000, "Type": "tcp"}),
        listing({"PrivatePort": 8080, "Type": "tcp"}),  # exposed, not published
        listing({"PrivatePort": 8080, "PublicPort": 40000, "Type": "udp"}),
    ],
    ids=["no-ports", "another-port", "exposed-only", "udp"],
)
def test_a_service_port_not_published_is_a_problem(summary: dict[str, Any]) -> None:
    found = published_address(summary, 8080, "192.0.2.2")
    assert found == Unreachable(
        "ports",
        "8080/tcp is not published on the host (--address-mode published needs -p HOSTPORT:8080)",
    )


def test_a_published_container_is_reported_at_its_host_port() -> None:
    assert container("web1", "192.0.2.2", host_port=40715).address == "192.0.2.2:40715"
    assert container("web1", "fd00::1", host_port=40715).address == "[fd00::1]:40715"
    assert container("web1", "10.88.0.2").address == "10.88.0.2:8080"


# -- payloads ---------------------------------------------------------------------------------


def test_fleet_payload_names_the_host_and_each_containers_creation(
    assert_haproxy_accepts: Callable[[str], None],
) -> None:
    plan = build_payload(
        "fleet",
        [container("web2", "10.88.0.3", created=0.0), container("web1")],
        host="host-a",
    )
    assert plan.payload == {
        "table": "fleet",
        "host": "host-a",
        "running": [
            {"serviceName": "web", "id": "web100000000", "ip": "10.88.0.2:8080"},
            {"serviceName": "web", "id": "web200000000", "ip": "10.88.0.3:8080"},
        ],
        "candidates": [
            {
                "serviceName": "web",
                "configMode": "host",
                "predicate": "web.example",
                "containers": [
                    {
                        "id": "web100000000",
                        "ip": "10.88.0.2:8080",
                        "created": "2026-12-01T21:41:32.436433Z",
                    },
                    {"id": "web200000000", "ip": "10.88.0.3:8080"},  # created unknown
                ],
            }
        ],
    }
    result = compile_payload(plan.payload, store=MemoryStore())
    assert result.diagnostics == ()
    assert "server web100000000 10.88.0.2:8080" in result.text
    assert_haproxy_accepts(result.text)


def test_a_host_less_payload_is_the_seeds() -> None:
    plan = build_payload("fleet", [container("web1")])
    assert "host" not in plan.payload
    assert plan.payload["candidates"][0]["containers"] == [
        {"id": "web100000000", "ip": "10.88.0.2:8080"}
    ]


def test_rfc3339_is_what_the_payload_model_keeps() -> None:
    text = rfc3339(CREATED)
    assert text == "2026-12-01T21:41:32.436433Z"
    model = Payload.model_validate(
        {
            "table": "fleet",
            "host": "h",
            "running": [],
            "candidates": [
                {
                    "serviceName": "web",
                    "predicate": "web.example",
                    "containers": [{"id": "a", "ip": "10.0.0.1:80", "created": text}],
                }
            ],
        }
    )
    assert model.candidates[0].containers[0].created == text


# -- reading the table's config ---------------------------------------------------------------


def fleet_payload(host: str, ip: str, table: str = "fleet") -> dict[str, Any]:
    return build_payload(table, [container(f"{host}web", ip)], host=host).payload


@pytest.mark.parametrize("fleet", [True, False], ids=["fleet", "host-less"])
def test_local_fetch_names_the_config_a_report_gave(fleet: bool) -> None:
    registry = LocalRegistry(MemoryStore())
    payload = fleet_payload("a", "10.88.0.2")
    if not fleet:
        del payload["host"]
    given = registry.compile(payload)
    assert registry.fetch("fleet", etag_of(given.text)) is None  # nothing changed
    fetched = registry.fetch("fleet")
    assert fetched == Fetched(given.text, etag_of(given.text))
    assert registry.fetch("no-such-table") is None


def test_local_fetch_applies_the_lease() -> None:
    clock = [1_800_000_000.0]
    registry = LocalRegistry(MemoryStore(), host_ttl=4, clock=lambda: clock[0])
    registry.compile(fleet_payload("a", "10.88.0.2"))
    both = registry.compile(fleet_payload("b", "10.88.0.3"))
    assert "10.88.0.2:8080" in both.text
    clock[0] += 10
    alone = registry.fetch("fleet", etag_of(both.text))
    assert alone is not None
    assert "10.88.0.2" not in alone.text
    assert "10.88.0.3" not in alone.text  # both expired: no backend any more


@pytest.fixture
def server() -> Iterator[RegistryServer]:
    config = HandlerConfig.from_env({"LAMBDA_REGISTRY_STORE": "memory"})
    registry = RegistryApp(config, store=MemoryStore())  # one that remembers
    running = RegistryServer("127.0.0.1", 0, registry).start()
    try:
        yield running
    finally:
        running.stop()


def test_remote_fetch_over_http(server: RegistryServer) -> None:
    remote = RemoteRegistry(server.url, timeout=5)
    assert remote.fetch("fleet") is None  # 404: nothing reported yet
    given = remote.compile(fleet_payload("a", "10.88.0.2"))
    fetched = remote.fetch("fleet")
    assert fetched is not None
    assert fetched.text == given.text
    assert fetched.etag == etag_of(given.text)  # the server's ETag is the contract's
    assert remote.fetch("fleet", fetched.etag) is None  # 304
    changed = remote.compile(fleet_payload("b", "10.88.0.3"))
    again = remote.fetch("fleet", fetched.etag)
    assert again is not None and again.text == changed.text
    with pytest.raises(RegistryError, match="HTTP 400") as refused:
        remote.fetch("x")  # not a table name
    assert not isinstance(refused.value, RegistryUnavailable)


def test_remote_fetch_keeps_the_urls_query(server: RegistryServer) -> None:
    remote = RemoteRegistry(server.url + "?stage=prod", timeout=5)
    remote.compile(fleet_payload("a", "10.88.0.2"))
    assert remote.fetch("fleet") is not None


def test_an_unreachable_registry_is_unavailable_not_refused(refusing_url: str) -> None:
    remote = RemoteRegistry(refusing_url, retries=1, backoff=0.01, timeout=1)
    with pytest.raises(RegistryUnavailable, match="unreachable"):
        remote.fetch("fleet")
    with pytest.raises(RegistryUnavailable, match="unreachable"):
        remote.compile(fleet_payload("a", "10.88.0.2"))


# -- the poller -------------------------------------------------------------------------------


class Scripted:
    """A registry client that answers ``fetch`` from a script (each entry: a Fetched, None,
    or an exception to raise)."""

    label = "scripted"

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.asked: list[str | None] = []

    def compile(self, payload: dict[str, Any]) -> Any:
        raise AssertionError("the poller never reports")

    def fetch(self, table: str, etag: str | None = None) -> Fetched | None:
        self.asked.append(etag)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    def close(self) -> None:
        pass


def test_poller_hands_over_changes_and_reports_after_an_outage() -> None:
    down = RegistryUnavailable("unreachable: refused", file="registry")
    new = Fetched("global\n", '"new"')
    registry = Scripted(None, new, down, down, new, None)
    health = RegistryHealth(Metrics())
    delivered: list[Polled] = []
    reports: list[str] = []
    changes: list[bool | None] = []
    poller = Poller(
        registry,
        "fleet",
        interval=5,
        health=health,
        state=lambda: (7, '"old"'),
        deliver=delivered.append,
        report=reports.append,
        changed=lambda: changes.append(health.up),
    )
    assert poller.poll() == 5  # 304
    assert health.up is True and delivered == []
    assert poller.poll() == 5
    assert delivered == [Polled("global\n", '"new"', 7)]
    first, second = poller.poll(), poller.poll()
    assert first < second <= 10  # backoff, capped
    assert health.up is False and health.consecutive_failures == 2
    assert changes == [False]  # the status is written when the outage starts
    assert poller.poll() == 5  # back: report first, never apply the polled config
    assert reports == ["registry back"] and len(delivered) == 1
    assert changes == [False, True]
    assert poller.poll() == 5
    assert registry.asked == ['"old"'] * 6
    snapshot = health.metrics.snapshot()
    assert snapshot["cosmonaut_registry_up"] == 1
    assert snapshot["cosmonaut_registry_failures_total"] == 2
    assert snapshot["cosmonaut_polls_total"] == 6
    assert snapshot["cosmonaut_polled_changes_total"] == 1


def test_poller_thread_stops() -> None:
    registry = Scripted(*([None] * 1000))
    poller = Poller(
        registry,
        "fleet",
        interval=0.01,
        health=RegistryHealth(),
        state=lambda: (0, None),
        deliver=lambda polled: None,
        report=lambda reason: None,
    )
    poller.start()
    threading.Event().wait(0.2)
    poller.stop()
    asked = len(registry.asked)
    assert asked > 0
    threading.Event().wait(0.05)
    assert len(registry.asked) == asked


class WaitingClock:
    """The monotonic clock, telling when another thread reads it. The trigger reads it under
    its lock and keeps the lock until it waits, so what the test does under that lock next
    (an offer) happens while that thread waits, however slow the machine: no race decides
    whether the offer came before the wait."""

    def __init__(self) -> None:
        self.read = threading.Event()
        self._test_thread = threading.get_ident()

    def __call__(self) -> float:
        if threading.get_ident() != self._test_thread:
            self.read.set()
        return time.monotonic()


# The loop waits for events up to its next resync. An hour here: only an offer can end the
# wait during the test, whose own waits (a guard against a hang) are a minute at most.
RESYNC = 3600.0
HANG_GUARD = 60.0


def test_an_offer_wakes_the_loop_but_never_closes_a_batch() -> None:
    clock = WaitingClock()
    trigger = Trigger(clock)
    polled = Polled("global\n", '"x"', 0)
    waited: list[object] = []
    waiting = threading.Thread(
        target=lambda: waited.append(trigger.wait_batch(0.01, 1.0, RESYNC)), daemon=True
    )
    waiting.start()
    assert clock.read.wait(HANG_GUARD), "wait_batch never looked at its clock"
    trigger.offer(polled)  # the waiting thread is inside its wait now
    waiting.join(HANG_GUARD)
    if waiting.is_alive():
        trigger.stop()  # let the thread go before failing
        pytest.fail("an offer did not wake the loop: it would wait for the resync")
    assert waited == [None]
    assert trigger.take_offer() == polled
    assert trigger.take_offer() is None
    trigger.notify("start web1", "web1")
    trigger.offer(polled)
    batch = trigger.wait_batch(0.01, 1.0, timeout=HANG_GUARD)
    assert batch is not None and batch.reasons == ("start web1",)


def test_a_polled_config_is_applied_at_once_not_at_the_next_resync() -> None:
    """The daemon, its resync an hour away and no engine to send events: the poller's offer
    (``deliver`` is ``Trigger.offer``) alone makes it apply the polled config."""
    # Nothing answers here: the watcher never connects, so it never wakes the loop, and the
    # apply fails (the pass is recorded all the same).
    engine = Engine(environment={"DOCKER_HOST": "unix:///nonexistent/cosmonaut-test.sock"})
    sync = syncer(engine=engine)
    mine = container("web1")
    listed(sync, mine)
    clock = WaitingClock()
    trigger = Trigger(clock)
    passes: queue.Queue[PassResult] = queue.Queue()
    daemon = Daemon(
        sync,
        trigger,
        Watcher(engine, trigger),
        schedule=Schedule(resync_interval=RESYNC),
        on_pass=passes.put,
    )
    running = threading.Thread(target=daemon.run, daemon=True)
    running.start()
    try:
        assert clock.read.wait(HANG_GUARD), "the loop never waited for a batch"
        text = f"backend web\n    server {mine.short_id} 10.88.0.2:8080\n"
        trigger.offer(Polled(text, '"theirs"', sync.generation))
        try:
            first = passes.get(timeout=HANG_GUARD)
        except queue.Empty:
            pytest.fail("the polled config waited for the resync: the offer did not wake the loop")
    finally:
        daemon.stop()
        running.join(HANG_GUARD)
    assert first.reasons == ("poll",)
    assert sync.etag == '"theirs"'  # apply_polled ran with the offer
    assert first.failure == "docker"


# -- what the loop does with a polled config --------------------------------------------------


def syncer(registry: Any = None, engine: Engine | None = None) -> Syncer:
    engine = engine or Engine()  # by default never connected: these tests make no Docker call
    discoverer = Discoverer(engine, haproxy_container="haproxy")
    applier = Applier(HaproxyTarget(engine, discoverer))
    return Syncer(discoverer, registry or LocalRegistry(MemoryStore()), applier, table="fleet")


def listed(sync: Syncer, *containers: ManagedContainer) -> None:
    """As if a pass had listed ``containers`` and reported them."""
    plan = build_payload("fleet", containers, host="a")
    sync.last_sync = PassResult(("test",), 0.0, 0.0, plan=plan)
    sync.reported = True
    sync.etag = '"mine"'


def test_poll_action_decides_and_says_why() -> None:
    sync = syncer()
    mine = container("web1")
    listed(sync, mine)
    text = f"backend web\n    server {mine.short_id} 10.88.0.2:8080\n    server other 10.1.0.9:80\n"
    assert sync.poll_action(Polled(text, '"theirs"', 0)) == (
        "apply",
        "another host's report changed the table's config",
    )
    assert sync.poll_action(Polled(text, '"mine"', 0))[0] == "skip"
    sync.generation = 1
    assert sync.poll_action(Polled(text, '"theirs"', 0)) == (
        "skip",
        "a pass finished after the poll was sent",
    )
    action, why = sync.poll_action(Polled("backend web\n", '"theirs"', 1))
    assert action == "report"
    assert "lacks 1 of this host's containers (web1)" in why
    sync.reported = False
    assert sync.poll_action(Polled(text, '"theirs"', 1)) == (
        "report",
        "this host's last report did not reach the registry",
    )


def test_registry_health_in_the_status() -> None:
    sync = syncer()
    sync.host = "host-a"
    sync.health.failed("http://registry/: unreachable: refused")
    status = json.loads(json.dumps(sync.status()))
    assert status["host"] == "host-a"
    assert status["registry_health"]["up"] is False
    text = status_text(status)
    assert "host:       host-a (fleet mode)" in text
    assert "UNREACHABLE since" in text and "HAProxy keeps its last config" in text
    sync.health.answered()
    assert status_text(sync.status()).splitlines()[2].endswith("  up")
