"""Cosmonaut paths the other end-to-end tests do not reach, on the real engine: an HAProxy image
without ``sh``, HAProxy restarted or replaced, the table named after the Docker host, a registry
that answers ``429``, and the ``rename``, ``unpause`` and network ``disconnect`` events."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cosmonaut.daemon.sync import PassResult
from cosmonaut.discovery.engine import Engine
from cosmonaut.registry.remote import RemoteRegistry
from runtime.config import HandlerConfig
from runtime.handler import RegistryApp
from runtime.pipeline import compile_payload
from runtime.server import RegistryServer
from tests.support.cosmonaut_e2e import (
    DockerHost,
    HaproxyBox,
    RegistryFront,
    RunningDaemon,
    eventually,
    ip_of,
    leftovers,
    reconciler,
    short,
    web_config,
)

WEB = {"cosmonaut.service": "web", "cosmonaut.predicate": "web.example", "cosmonaut.port": "8080"}
COMMAND = ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]


def routes(haproxy: HaproxyBox, *containers: Any) -> Callable[[], bool]:
    """A check: ``web.example`` answers from exactly ``containers`` (503 when none)."""

    def check() -> bool:
        replies = [haproxy.get(host="web.example") for _ in range(2 * len(containers) + 2)]
        if not containers:
            return all(r.status == 503 for r in replies)
        return all(r.status == 200 for r in replies) and {r.body for r in replies} == {
            short(c) for c in containers
        }

    return check


def pass_for(daemon: RunningDaemon, start: int, word: str) -> PassResult:
    """The first successful pass after the first ``start`` that an event starting with ``word``
    caused (waited for: a pass is recorded once its reload is confirmed)."""

    def found() -> PassResult | None:
        for result in daemon.passes[start:]:
            if result.ok and any(r.startswith(word) for r in result.reasons):
                return result
        return None

    return eventually(found, what=f"a pass caused by a {word!r} event")


# -- an image without sh ----------------------------------------------------------------------


def test_image_without_sh_checks_then_moves_and_never_applies_a_refused_config(
    host: DockerHost,
) -> None:
    haproxy = host.haproxy(command=COMMAND, image=host.haproxy_image_without_sh())
    assert not has_shell(haproxy)
    web = host.service("web", labels=WEB)
    apply = reconciler(host, haproxy).applier
    good = web_config(web)

    applied = apply.apply(good)
    assert applied.outcome == "applied", applied.message
    assert apply.target._shell is False  # it found no sh: haproxy -c, then mv, two execs
    eventually(routes(haproxy, web), what="routing through the image without sh")
    assert haproxy.config() == good

    # haproxy -c refuses it (an undefined backend): it must never reach the config file.
    refused = apply.apply(good.replace("bind :80", "bind :80\n    use_backend nowhere"))
    assert refused.outcome == "rejected", refused.message
    assert "haproxy -c refused the config" in refused.message and "nowhere" in refused.message
    assert haproxy.config() == good
    assert leftovers(haproxy) == []
    assert routes(haproxy, web)()

    # haproxy -c accepts it but the reload fails (an address this host lacks): rolled back.
    rolled = apply.apply(good.replace("bind :80", "bind 192.0.2.77:80"))
    assert rolled.outcome == "rolled-back", rolled.message
    assert haproxy.config() == good
    assert leftovers(haproxy) == []
    assert routes(haproxy, web)()


# -- HAProxy restarted or replaced -------------------------------------------------------------


def started_at(container: Any) -> str:
    container.reload()
    return str(container.attrs["State"]["StartedAt"])


def test_haproxy_restarted_or_replaced_has_its_running_config_read_again(
    host: DockerHost,
) -> None:
    haproxy = host.haproxy()
    web = host.service("web", labels=WEB)
    with RunningDaemon(reconciler(host, haproxy)) as daemon:
        eventually(routes(haproxy, web), what="routed")
        wanted = haproxy.config()

        # Restarted, its config untouched: read again, equal, so nothing is applied.
        mark = len(daemon.passes)
        haproxy.container.restart(timeout=5)
        now = started_at(haproxy.container)
        haproxy.ip = ip_of(haproxy.container)  # a restart may give it another address

        def after_restart(outcome: str) -> Callable[[], list[PassResult]]:
            def check() -> list[PassResult]:
                return [
                    p
                    for p in daemon.passes[mark:]
                    if p.discovery
                    and p.discovery.haproxy
                    and p.discovery.haproxy.started_at == now
                    and p.applied
                    and p.applied.outcome == outcome
                ]

            return check

        eventually(after_restart("unchanged"), timeout=30, what="an unchanged pass")
        eventually(routes(haproxy, web), what="routed after the restart")

        # Restarted with another config (changed behind Cosmonaut's back): read again, so
        # Cosmonaut's config is applied again. Kept from before, it would look unchanged.
        empty = compile_payload({"table": "e2e-test", "running": []}).text
        directory = "/usr/local/etc/haproxy"
        Engine().put_file(haproxy.container.id, directory, "haproxy.cfg", empty.encode())
        mark = len(daemon.passes)
        haproxy.container.restart(timeout=5)
        now = started_at(haproxy.container)
        haproxy.ip = ip_of(haproxy.container)  # a restart may give it another address
        eventually(after_restart("applied"), timeout=30, what="the config applied again")
        assert haproxy.config() == wanted
        eventually(routes(haproxy, web), what="routed again after the restart")

        # Replaced by a new container of the same name, with an empty config.
        mark = len(daemon.passes)
        haproxy.container.remove(force=True)
        replacement = host.haproxy()
        assert replacement.container.id != haproxy.container.id
        eventually(routes(replacement, web), timeout=30, what="the replacement routed")

        def applied_to_the_replacement() -> bool:
            return any(
                p.applied
                and p.applied.outcome == "applied"
                and p.discovery
                and p.discovery.haproxy
                and p.discovery.haproxy.id == replacement.container.id
                for p in daemon.passes[mark:]
            )

        eventually(applied_to_the_replacement, what="a pass that applied to the replacement")
        assert replacement.config() == wanted


# -- the table named after the Docker host ----------------------------------------------------


def test_table_defaults_to_the_docker_host_name(
    host: DockerHost, client: Any, tmp_path: Path
) -> None:
    haproxy = host.haproxy()
    web = host.service("web", labels=WEB)
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
            "--state-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # The rule the --table help states: the host's name, other characters made '-', and
    # 'host-' before a name shorter than three characters.
    name = str(client.info()["Name"])
    expected = re.sub(r"[^A-Za-z0-9_.-]", "-", name)[:255] or "host"
    expected = expected if len(expected) >= 3 else f"host-{expected}"
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["table"] == expected, (name, status["table"])
    with contextlib.closing(sqlite3.connect(tmp_path / "registry.db")) as database:
        tables = [row[0] for row in database.execute("SELECT DISTINCT tbl FROM services")]
    assert tables == [expected]  # the registry stored the service under that table
    assert routes(haproxy, web)()


# -- a registry answering 429 -----------------------------------------------------------------


def test_registry_429_is_retried_and_the_config_applied(host: DockerHost) -> None:
    registry = RegistryApp(HandlerConfig.from_env({"LAMBDA_REGISTRY_STORE": "memory"}))
    server = RegistryServer("127.0.0.1", 0, registry).start()
    front = RegistryFront(server.url)
    front.throttle = 2
    remote = RemoteRegistry(front.url, timeout=5, retries=3, backoff=0.05)
    haproxy = host.haproxy()
    web = host.service("web", labels=WEB)
    try:
        with RunningDaemon(reconciler(host, haproxy, registry=remote)) as daemon:
            first = daemon.passes[0]
            assert first.ok and first.failure is None, first.error
            assert first.applied is not None and first.applied.outcome == "applied"
            assert front.answers[:3] == [429, 429, 200]
            eventually(routes(haproxy, web), what="routed")
            assert not [p for p in daemon.passes if p.failure == "registry"]
    finally:
        front.stop()
        server.stop()


# -- rename, unpause, network disconnect ------------------------------------------------------


def test_rename_into_and_out_of_the_keyword(host: DockerHost) -> None:
    haproxy = host.haproxy()
    web = host.service("web", labels=WEB)
    outside = f"other{uuid.uuid4().hex[:8]}-web"  # lacks the keyword: not managed
    web.rename(outside)
    with RunningDaemon(reconciler(host, haproxy)) as daemon:
        assert routes(haproxy)()
        mark = len(daemon.passes)
        web.rename(f"{host.prefix}web")
        eventually(routes(haproxy, web), what="routed once renamed into the keyword")
        pass_for(daemon, mark, "rename")
        mark = len(daemon.passes)
        web.rename(outside)
        eventually(routes(haproxy), what="left once renamed out of the keyword")
        pass_for(daemon, mark, "rename")


def test_pause_then_unpause(host: DockerHost) -> None:
    haproxy = host.haproxy()
    web = host.service("web", labels=WEB)
    with RunningDaemon(reconciler(host, haproxy)) as daemon:
        eventually(routes(haproxy, web), what="routed")
        mark = len(daemon.passes)
        web.pause()
        eventually(routes(haproxy), what="out of rotation while paused")
        excluded = pass_for(daemon, mark, "pause").discovery.excluded
        assert [(e.container, e.reason) for e in excluded] == [(web.name, "container is paused")]
        mark = len(daemon.passes)
        web.unpause()
        eventually(routes(haproxy, web), what="back once unpaused")
        pass_for(daemon, mark, "unpause")


def test_network_disconnect_then_connect(host: DockerHost, client: Any) -> None:
    haproxy = host.haproxy()
    web = host.service("web", labels=WEB)
    web.reload()
    network = client.networks.get(next(iter(web.attrs["NetworkSettings"]["Networks"])))
    with RunningDaemon(reconciler(host, haproxy)) as daemon:
        eventually(routes(haproxy, web), what="routed")
        mark = len(daemon.passes)
        network.disconnect(web)
        eventually(routes(haproxy), what="left once disconnected from HAProxy's network")
        disconnected = pass_for(daemon, mark, "network disconnect")
        problems = [(p.container, p.setting) for p in disconnected.problems]
        assert problems == [(web.name, "network")]
        mark = len(daemon.passes)
        network.connect(web)
        eventually(routes(haproxy, web), what="routed again once connected")
        pass_for(daemon, mark, "network connect")


def has_shell(haproxy: HaproxyBox) -> bool:
    """Whether ``sh -c true`` runs in the HAProxy container (an engine may refuse the exec
    of a missing binary outright, or run it and report a failure)."""
    import docker

    try:
        return haproxy.container.exec_run(["sh", "-c", "true"]).exit_code == 0
    except docker.errors.APIError:
        return False
