"""Discovery on the real engine: settings from labels/env, addresses, what is left out."""

from __future__ import annotations

from typing import Any

import pytest

from cosmonaut.discovery.containers import Discoverer
from cosmonaut.discovery.engine import Engine
from cosmonaut.discovery.labels import ContainerProblem
from cosmonaut.discovery.payload import build_payload
from runtime.pipeline import compile_payload
from tests.support.cosmonaut_e2e import (
    DockerHost,
    eventually,
    health,
    health_check,
    ip_of,
    kill,
    short,
)

WEB = {"cosmonaut.service": "web", "cosmonaut.predicate": "web.example", "cosmonaut.port": "8080"}


def discoverer(host: DockerHost, **options: Any) -> Discoverer:
    """Limited to the test's containers; addresses on the network the first one is on."""
    options.setdefault("haproxy_container", f"{host.prefix}haproxy")
    options.setdefault("keyword", host.prefix)
    if "network" not in options:
        host.started[0].reload()
        options["network"] = next(iter(host.started[0].attrs["NetworkSettings"]["Networks"]))
    return Discoverer(Engine(), **options)


def test_labels_become_settings_and_address(host: DockerHost) -> None:
    web = host.service("web", labels={**WEB, "cosmonaut.cookie": "SID"})
    found = discoverer(host).discover()
    assert [c.name for c in found.containers] == [web.name]
    container = found.containers[0]
    assert container.id == web.id
    assert (container.settings.service, container.settings.mode) == ("web", "host")
    assert container.settings.predicate == "web.example"
    assert container.settings.cookie == "SID"
    assert container.address == f"{ip_of(web)}:8080"
    assert found.problems == ()


def test_environment_as_in_the_original_and_labels_win(host: DockerHost) -> None:
    env_only = host.service(
        "api",
        environment={
            "SERVICE_NAME": "api",
            "CONFIG_MODE": "Path",
            "PREDICATE": "api/v1",
            "PORT": "9000",
        },
        port=9000,
    )
    both = host.service(
        "both",
        labels={"cosmonaut.service": "from-label", "cosmonaut.port": "8080"},
        environment={"SERVICE_NAME": "from-env", "PREDICATE": "both.example", "PORT": "1"},
    )
    found = {c.name: c for c in discoverer(host).discover().containers}
    api = found[env_only.name].settings
    assert (api.service, api.mode, api.predicate, api.port) == ("api", "path", "/api/v1", 9000)
    mixed = found[both.name].settings
    assert (mixed.service, mixed.predicate, mixed.port) == ("from-label", "both.example", 8080)


def test_keyword_keeps_only_matching_names_case_insensitively(host: DockerHost) -> None:
    host.service("Asteroid-web", labels=WEB)
    host.service("other", labels={**WEB, "cosmonaut.service": "other"})
    found = discoverer(host, keyword=f"{host.prefix}ASTEROID").discover()
    assert [c.settings.service for c in found.containers] == ["web"]


def test_bad_settings_are_reported_with_container_and_setting(host: DockerHost) -> None:
    good = host.service("good", labels=WEB)
    bad = host.service(
        "bad",
        environment={"SERVICE_NAME": "shop", "CONFIG_MODE": "tcp", "PORT": "http"},
    )
    unrelated = host.service("plain", environment={"PORT": "8080"})  # PORT alone: not managed
    found = discoverer(host).discover()
    assert [c.name for c in found.containers] == [good.name]
    assert set(found.problems) == {
        ContainerProblem(bad.name, "cosmonaut.predicate / PREDICATE", "missing (required)"),
        ContainerProblem(bad.name, "PORT", "'http' is not a port number (1 to 65535)"),
        ContainerProblem(bad.name, "CONFIG_MODE", "Input should be 'host' or 'path'"),
    }
    assert unrelated.name not in {p.container for p in found.problems}


def test_address_on_the_network_shared_with_haproxy(host: DockerHost) -> None:
    haproxy = host.haproxy()
    web = host.service("web", labels=WEB)
    found = discoverer(host, network=None, haproxy_container=haproxy.name).discover()
    assert found.haproxy is not None and found.haproxy.name == haproxy.name
    assert [c.address for c in found.containers] == [f"{ip_of(web)}:8080"]
    assert found.containers[0].network in found.haproxy.networks
    # The HAProxy container itself is never a service, whatever it carries.
    assert haproxy.name not in {c.name for c in found.containers}


def test_not_on_the_configured_network_is_reported(host: DockerHost) -> None:
    web = host.service("web", labels=WEB)
    found = discoverer(host, network="backend-net").discover()
    assert found.containers == ()
    assert [(p.container, p.setting) for p in found.problems] == [(web.name, "network")]
    assert "not attached to network backend-net" in found.problems[0].reason


def test_stopped_and_paused_containers_are_not_routed(host: DockerHost) -> None:
    running = host.service("running", labels=WEB)
    host.service("created", labels=WEB, start=False)
    paused = host.service("paused", labels=WEB)
    paused.pause()
    found = discoverer(host).discover()
    assert [c.name for c in found.containers] == [running.name]
    assert [(e.container, e.reason) for e in found.excluded] == [
        (paused.name, "container is paused")
    ]


def test_unhealthy_container_is_taken_out_of_rotation(host: DockerHost) -> None:
    # Healthy while it serves its index page; "sick" loses it. (No spaces in the command:
    # Podman's compat API splits CMD words that contain spaces.)
    check = health_check(["CMD", "test", "-e", "/www/index.html"])
    sick = host.service("sick", labels=WEB, healthcheck=check)
    well = host.service("well", labels=WEB, healthcheck=check)
    eventually(lambda: sick.exec_run(["rm", "/www/index.html"]).exit_code == 0, what="rm")
    health(sick, "unhealthy")
    health(well, "healthy")
    found = discoverer(host).discover()
    assert [c.name for c in found.containers] == [well.name]
    assert [(e.container, e.reason) for e in found.excluded] == [
        (sick.name, "Docker health check says unhealthy")
    ]


def test_payload_from_real_containers_compiles(host: DockerHost) -> None:
    a = host.service("a", labels={**WEB, "cosmonaut.cookie": "SID"})
    b = host.service("b", labels={**WEB, "cosmonaut.cookie": "SID"})
    docs = host.service(
        "docs",
        environment={"SERVICE_NAME": "docs", "CONFIG_MODE": "path", "PREDICATE": "/docs/"},
        labels={"cosmonaut.port": "8080"},
    )
    plan = build_payload("e2e-test", discoverer(host).discover().containers)
    result = compile_payload(plan.payload)
    assert result.diagnostics == ()
    assert [s.name for s in result.services] == ["docs", "web"]
    text = result.text
    for container in (a, b, docs):
        assert f"server {short(container)} {ip_of(container)}:8080" in text
    assert "cookie SID" in text


@pytest.mark.parametrize("state", ["die", "remove"])
def test_gone_containers_leave_the_listing(host: DockerHost, state: str) -> None:
    web = host.service("web", labels=WEB)
    finder = discoverer(host)
    assert len(finder.discover().containers) == 1
    if state == "die":
        kill(web)
    else:
        web.remove(force=True)
    assert finder.discover().containers == ()
