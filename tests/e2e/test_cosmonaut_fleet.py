"""A fleet on the real engine: two hosts simulated on one engine, one registry
(``tests.support.fleet_e2e``: each host a ``cosmonaut run`` process with its own HAProxy
container and ``--host-id``, the registry ``lambda-registry serve``'s server over DynamoDB on
moto). Containers are reachable from this machine (and from each other) on the engine's
bridge, so host A's HAProxy can route to host B's containers, as an overlay network would
let it.

Every wait is a condition with a deadline (``eventually``); nothing asserts on elapsed time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cosmonaut.discovery.payload import host_id_for
from tests.support.cosmonaut_e2e import (
    DockerHost,
    cosmonaut_status,
    eventually,
    request,
    short,
)
from tests.support.fleet_e2e import (
    Cosmonaut,
    Registry,
    another_host,
    answers,
    backends,
    fleet_registry,
)

TTL = 4  # LAMBDA_REGISTRY_HOST_TTL of the registry: a silent host leaves after 4 s
# The fleet's bearer token: behind the relay, requests name the relay's port in Host, which a
# tokenless serve refuses (a browser page could send the same).
TOKEN = "fleet-token-" + uuid.uuid4().hex
WEB = {"cosmonaut.service": "web", "cosmonaut.predicate": "web.example", "cosmonaut.port": "8080"}
API = {"cosmonaut.service": "api", "cosmonaut.predicate": "api.example", "cosmonaut.port": "8080"}


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    with fleet_registry(monkeypatch, {"LAMBDA_REGISTRY_HOST_TTL": str(TTL)}, TOKEN) as running:
        assert running.app.config.host_ttl == TTL
        yield running


@pytest.fixture
def second_host(client: Any) -> Iterator[DockerHost]:
    with another_host(client) as box:
        yield box


@pytest.fixture
def fleet(
    host: DockerHost, second_host: DockerHost, registry: Registry, tmp_path: Path
) -> Iterator[tuple[Cosmonaut, Cosmonaut]]:
    table = f"fleet-{uuid.uuid4().hex[:8]}"
    a = Cosmonaut("host-a", host, host.haproxy(), tmp_path / "a", registry.url, table, TOKEN)
    b = Cosmonaut(
        "host-b", second_host, second_host.haproxy(), tmp_path / "b", registry.url, table, TOKEN
    )
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()
        for one in (a, b):
            print(f"--- {one.host_id} log tail ---\n{one.tail()}")


def test_a_container_on_host_b_is_routed_through_host_a_until_b_dies(
    fleet: tuple[Cosmonaut, Cosmonaut],
) -> None:
    a, b = fleet
    web_a = a.docker.service("web1", labels=WEB)
    a.start()
    b.start()
    eventually(lambda: answers(a.haproxy, "web.example") == {short(web_a)}, 60, what="A routed")
    # B's HAProxy routes to A's container too: both read one table.
    eventually(lambda: answers(b.haproxy, "web.example") == {short(web_a)}, 30, what="A's web at B")

    api_b = b.docker.service("api1", labels=API)
    web_b = b.docker.service("web2", labels=WEB)
    eventually(
        lambda: answers(a.haproxy, "api.example") == {short(api_b)},
        30,
        what="B's api container answering through A's HAProxy",
    )
    eventually(
        lambda: answers(a.haproxy, "web.example", 8) == {short(web_a), short(web_b)},
        30,
        what="the web service shared by both hosts, at A",
    )
    assert answers(b.haproxy, "web.example", 8) == {short(web_a), short(web_b)}
    status = a.status()
    assert status["host"] == "host-a"
    assert status["registry_health"]["up"] is True
    assert [item["name"] for item in status["routed"]] == [web_a.name]  # A's own containers

    b.kill()
    eventually(
        lambda: not ({short(api_b), short(web_b)} & backends(a.haproxy)),
        TTL + 30,
        what="B's containers to leave A's config once B's lease expired",
    )
    eventually(lambda: a.haproxy.get(host="api.example").status == 503, what="api gone at A")
    assert answers(a.haproxy, "web.example", 8) == {short(web_a)}
    # How B's expiry reaches A (A resyncs every second here, so either way) is the next test's.
    # B's HAProxy is nobody's now: it keeps serving its last config, untouched.
    assert answers(b.haproxy, "api.example") == {short(api_b)}


def test_a_hosts_expiry_reaches_another_host_through_the_poll(
    fleet: tuple[Cosmonaut, Cosmonaut],
) -> None:
    """B dies; its lease expires at the registry; A, which has no event then and resyncs only
    every 10 minutes here, learns it from the poll: from B's death on, A makes exactly one
    pass, the polled config's, and applies it. (A has no container of its own, so its own
    lease, left to expire, changes nothing in the table's config.)"""
    a, b = fleet
    a.extra = ("--resync-interval", "600")  # the last one given counts
    api_b = b.docker.service("api1", labels=API)
    b.start()
    eventually(lambda: answers(b.haproxy, "api.example") == {short(api_b)}, 60, what="B routed")
    a.start()
    eventually(lambda: answers(a.haproxy, "api.example") == {short(api_b)}, 60, what="B's at A")
    eventually(lambda: a.passes_since(0), what="A's first pass logged")
    before = eventually(a.metrics, what="A's metrics")
    mark = a.log.stat().st_size

    b.kill()
    eventually(
        lambda: a.haproxy.get(host="api.example").status == 503,
        TTL + 30,
        what="B's api gone at A once B's lease expired",
    )
    passes = eventually(lambda: a.passes_since(mark), what="A's pass logged")
    assert [(p["reasons"], p["outcome"]) for p in passes] == [(["poll"], "applied")], passes
    after = a.metrics()
    assert after["cosmonaut_polled_changes_total"] - before["cosmonaut_polled_changes_total"] == 1
    assert after["cosmonaut_reconciles_total"] - before["cosmonaut_reconciles_total"] == 1
    assert short(api_b) not in a.haproxy.config()


def test_registry_outage_leaves_both_haproxies_serving_then_they_converge(
    fleet: tuple[Cosmonaut, Cosmonaut], registry: Registry
) -> None:
    a, b = fleet
    web_a = a.docker.service("web1", labels=WEB)
    api_b = b.docker.service("api1", labels=API)
    a.start()
    b.start()
    for one in (a, b):
        eventually(
            lambda one=one: (
                answers(one.haproxy, "web.example") == {short(web_a)}
                and answers(one.haproxy, "api.example") == {short(api_b)}
            ),
            60,
            what=f"both services at {one.host_id}",
        )
    before = {one.host_id: one.haproxy.config() for one in (a, b)}
    assert before["host-a"] == before["host-b"]

    registry.stop()
    outage = threading.Event()
    outcomes: list[str] = []

    def client() -> None:
        while not outage.is_set():
            for one in (a, b):
                for name in ("web.example", "api.example"):
                    try:
                        reply = request(one.haproxy.ip, host=name, timeout=5)
                        outcomes.append("ok" if reply.status == 200 else f"{reply.status}")
                    except Exception as error:
                        outcomes.append(f"{type(error).__name__}: {error}")

    thread = threading.Thread(target=client)
    thread.start()
    try:
        for one in (a, b):
            eventually(
                lambda one=one: one.status()["registry_health"]["up"] is False,
                30,
                what=f"{one.host_id}'s status to say the registry is unreachable",
            )
            eventually(
                lambda one=one: one.metrics()["cosmonaut_registry_up"] == 0,
                what=f"{one.host_id}'s registry gauge",
            )
        # A change made while the registry is away waits for it; nothing is applied.
        late = b.docker.service("web2", labels=WEB)
        stopped = threading.Event()
        stopped.wait(10)  # the registry stays away ~10 s (a wait, not a measurement)
    finally:
        outage.set()
        thread.join(timeout=30)
    failures = [o for o in outcomes if o != "ok"]
    assert len(outcomes) > 20
    assert failures == [], failures[:5]
    for one in (a, b):
        assert one.haproxy.config() == before[one.host_id]  # HAProxy untouched
        assert one.metrics()["cosmonaut_registry_failures_total"] >= 1
        assert "UNREACHABLE" in cosmonaut_status(one.state_dir)

    registry.start()
    everything = {short(web_a), short(late)}
    for one in (a, b):
        eventually(
            lambda one=one: (
                answers(one.haproxy, "web.example", 8) == everything
                and answers(one.haproxy, "api.example") == {short(api_b)}
            ),
            60,
            what=f"{one.host_id} to converge once the registry is back",
        )
        eventually(
            lambda one=one: one.status()["registry_health"]["up"] is True,
            what=f"{one.host_id}'s status to say the registry is back",
        )
        assert one.metrics()["cosmonaut_registry_up"] == 1
    eventually(
        lambda: a.haproxy.config() == b.haproxy.config(), 30, what="one config at both hosts"
    )


def test_published_mode_reports_the_host_address_and_port(
    host: DockerHost, tmp_path: Path, client: Any
) -> None:
    haproxy = host.haproxy()
    haproxy.container.reload()
    networks = haproxy.container.attrs["NetworkSettings"]["Networks"]
    gateway = next(iter(networks.values()))["Gateway"]  # this machine, as containers see it
    published = host.service("web1", labels=WEB, ports={"8080/tcp": None})
    hidden = host.service("web2", labels=WEB)  # no -p: left out and reported
    published.reload()
    host_port = published.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cosmonaut.cli",
            "once",
            "--haproxy-container",
            haproxy.name,
            "--keyword",
            host.prefix,
            "--table",
            "e2e-published",
            "--host-id",
            "auto",
            "--address-mode",
            "published",
            "--advertise-address",
            gateway,
            "--store",
            "memory",
            "--state-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    config = haproxy.config()
    assert f"server {short(published)} {gateway}:{host_port}" in config
    assert short(hidden) not in config
    eventually(
        lambda: haproxy.get(host="web.example").body == short(published),
        what="a request through HAProxy to the published port",
    )
    status = json.loads(cosmonaut_status(tmp_path, "json"))
    assert status["host"] == host_id_for(client.info()["Name"])
    assert status["address_mode"] == "published"
    assert [item["address"] for item in status["routed"]] == [f"{gateway}:{host_port}"]
    assert [(p["container"], p["setting"]) for p in status["problems"]] == [(hidden.name, "ports")]
    assert "8080/tcp is not published on the host" in status["problems"][0]["reason"]
