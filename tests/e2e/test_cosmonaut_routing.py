"""End to end with ``cosmonaut once`` (the real CLI, in a subprocess): containers in, traffic
through a real HAProxy container out."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.cosmonaut_cli import cli
from tests.support.cosmonaut_e2e import DockerHost, HaproxyBox, eventually, kill, short


def once(
    host: DockerHost, haproxy: HaproxyBox | None, state: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    name = haproxy.name if haproxy else f"{host.prefix}haproxy"
    return cosmonaut(
        "once",
        "--haproxy-container",
        name,
        "--keyword",
        host.prefix,
        "--table",
        "e2e-test",
        "--state-dir",
        str(state),
        *extra,
    )


def cosmonaut(*args: str) -> subprocess.CompletedProcess[str]:
    return cli(*args, timeout=120)  # a pass on the engine: listing, registry, reload


def log_lines(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def labels(service: str, predicate: str, mode: str = "host", cookie: str | None = None) -> dict:
    found = {
        "cosmonaut.service": service,
        "cosmonaut.mode": mode,
        "cosmonaut.predicate": predicate,
        "cosmonaut.port": "8080",
    }
    if cookie:
        found["cosmonaut.cookie"] = cookie
    return found


def test_host_and_path_services_with_and_without_cookie(host: DockerHost, tmp_path: Path) -> None:
    haproxy = host.haproxy()
    web = host.service("web", labels=labels("web", "web.example"))
    shop = host.service("shop", labels=labels("shop", "shop.example", cookie="SHOP"))
    api = host.service(
        "api",
        environment={"SERVICE_NAME": "api", "CONFIG_MODE": "path", "PREDICATE": "api"},
        labels={"cosmonaut.port": "8080"},
    )
    docs = host.service("docs", labels=labels("docs", "/docs", mode="path", cookie="DOCS"))
    done = once(host, haproxy, tmp_path)
    assert done.returncode == 0, done.stderr
    assert log_lines(done.stderr)[-1]["outcome"] == "applied"
    assert haproxy.get(host="web.example").body == short(web)
    assert haproxy.get(host="WEB.example:80").body == short(web)
    assert haproxy.get(host="shop.example", path="/cgi-bin/id").body == short(shop)
    assert haproxy.get(host="any.example", path="/api/").body == short(api)
    assert haproxy.get(host="any.example", path="/docs/").body == short(docs)
    assert haproxy.get(host="unknown.example").status == 503
    assert haproxy.get(host="any.example", path="/apiary/").status == 503
    # Nothing changed: the second run applies nothing.
    again = once(host, haproxy, tmp_path)
    assert again.returncode == 0
    assert log_lines(again.stderr)[-1]["outcome"] == "unchanged"


def test_a_second_container_shares_the_traffic(host: DockerHost, tmp_path: Path) -> None:
    haproxy = host.haproxy()
    first = host.service("web1", labels=labels("web", "web.example"))
    assert once(host, haproxy, tmp_path).returncode == 0
    assert {haproxy.get(host="web.example").body for _ in range(4)} == {short(first)}
    second = host.service("web2", labels=labels("web", "web.example"))
    assert once(host, haproxy, tmp_path).returncode == 0
    seen = Counter(haproxy.get(host="web.example").body for _ in range(10))
    assert seen == {short(first): 5, short(second): 5}  # round robin


def test_with_a_cookie_a_client_stays_on_its_server(host: DockerHost, tmp_path: Path) -> None:
    haproxy = host.haproxy()
    servers = [
        host.service(f"shop{i}", labels=labels("shop", "shop.example", cookie="SID"))
        for i in range(3)
    ]
    assert once(host, haproxy, tmp_path).returncode == 0
    for _ in range(3):  # three clients, each pinned to the server that answered it first
        reply = haproxy.get(host="shop.example", path="/cgi-bin/id")
        pinned = reply.body
        cookie = reply.headers["set-cookie"].split(";")[0]
        assert cookie == f"SID={pinned}~v"  # the server's id as the prefix of the app's cookie
        for _ in range(6):
            again = haproxy.get(host="shop.example", path="/cgi-bin/id", cookie=cookie)
            assert again.body == pinned
    # Without the cookie, clients are spread over every server.
    assert {haproxy.get(host="shop.example").body for _ in range(6)} == {short(s) for s in servers}


def test_stopped_killed_and_removed_containers_leave(host: DockerHost, tmp_path: Path) -> None:
    haproxy = host.haproxy()
    stays = host.service("stays", labels=labels("web", "web.example"))
    stopped = host.service("stopped", labels=labels("web", "web.example"))
    killed = host.service("killed", labels=labels("web", "web.example"))
    removed = host.service("removed", labels=labels("web", "web.example"))
    assert once(host, haproxy, tmp_path).returncode == 0
    everyone = {short(c) for c in (stays, stopped, killed, removed)}
    assert {haproxy.get(host="web.example").body for _ in range(8)} == everyone

    stopped.stop(timeout=5)
    kill(killed)
    removed.remove(force=True)
    done = once(host, haproxy, tmp_path)
    assert done.returncode == 0, done.stderr
    config = haproxy.config()
    for gone in (stopped, killed):
        assert short(gone) not in config
    assert removed.id[:12] not in config
    assert {haproxy.get(host="web.example").body for _ in range(8)} == {short(stays)}

    kill(stays)
    assert once(host, haproxy, tmp_path).returncode == 0
    assert "backend web" not in haproxy.config()
    assert haproxy.get(host="web.example").status == 503


def test_a_bad_setting_is_reported_and_a_good_container_is_still_routed(
    host: DockerHost, tmp_path: Path
) -> None:
    haproxy = host.haproxy()
    bad = host.service("bad", labels=labels("shop", "not a host"))
    good = host.service("good", labels=labels("web", "web.example"))
    done = once(host, haproxy, tmp_path)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in log_lines(done.stderr) if line["event"] == "container left out"]
    assert [(w["container"], w["setting"]) for w in warnings] == [(bad.name, "cosmonaut.predicate")]
    assert "not a valid host name" in warnings[0]["reason"]
    assert haproxy.get(host="web.example").body == short(good)
    assert short(bad) not in haproxy.config()

    status = cosmonaut("status", "--state-dir", str(tmp_path), "--format", "json")
    assert status.returncode == 0
    document = json.loads(status.stdout)
    assert [c["name"] for c in document["routed"]] == [good.name]
    assert [p["container"] for p in document["problems"]] == [bad.name]
    assert document["last_pass"]["apply"]["outcome"] == "applied"


def test_dry_run_prints_the_diff_and_applies_nothing(host: DockerHost, tmp_path: Path) -> None:
    haproxy = host.haproxy()
    web = host.service("web", labels=labels("web", "web.example"))
    before = haproxy.config()
    done = once(host, haproxy, tmp_path, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"--- {haproxy.name}:/usr/local/etc/haproxy/haproxy.cfg")
    assert f"+    server {short(web)} " in done.stdout
    assert haproxy.config() == before
    assert not (tmp_path / "history").exists()


def test_exit_codes_and_status(host: DockerHost, tmp_path: Path) -> None:
    missing = once(host, None, tmp_path)
    assert missing.returncode == 4
    assert "no container named" in log_lines(missing.stderr)[-1]["error"]
    status = cosmonaut("status", "--state-dir", str(tmp_path))
    assert status.returncode == 1
    assert "FAILED" in status.stdout
    assert cosmonaut("status", "--state-dir", str(tmp_path / "none")).returncode == 2
    usage = cosmonaut("once", "--registry-url", "ftp://x", "--state-dir", str(tmp_path))
    assert usage.returncode == 2
    assert "not an http(s) URL" in usage.stderr


def test_state_keeps_the_last_configs(host: DockerHost, tmp_path: Path) -> None:
    haproxy = host.haproxy()
    containers: list[Any] = []
    for index in range(3):
        containers.append(host.service(f"web{index}", labels=labels("web", "web.example")))
        assert once(host, haproxy, tmp_path, "--keep", "2").returncode == 0
    history = sorted((tmp_path / "history").iterdir())
    assert len(history) == 2
    assert history[-1].read_text() == haproxy.config()
    eventually(lambda: haproxy.get(host="web.example").status == 200)
