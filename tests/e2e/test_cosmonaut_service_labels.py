"""End to end (the real ``cosmonaut once`` on the real engine): per-service settings from
labels, several services on one container's ports, the two label forms, a bad label."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from test_cosmonaut_routing import once

from tests.support.cosmonaut_e2e import BUSYBOX, DockerHost, HaproxyBox, ip_of, short

TWO_PORTS = """
mkdir -p /web /admin
echo "web $HOSTNAME" > /web/index.html
echo "admin $HOSTNAME" > /admin/index.html
trap 'kill $a $b; exit 0' TERM
httpd -f -p 8080 -h /web & a=$!
httpd -f -p 9090 -h /admin & b=$!
wait $a
"""


def two_port_container(host: DockerHost, suffix: str, labels: dict[str, str]) -> Any:
    container = host.client.containers.create(
        BUSYBOX, ["sh", "-c", TWO_PORTS], name=f"{host.prefix}{suffix}", labels=labels
    )
    host.started.append(container)
    container.start()
    return container


def test_two_services_on_two_ports_are_both_routed(host: DockerHost, tmp_path: Path) -> None:
    haproxy = host.haproxy()
    both = two_port_container(
        host,
        "both",
        {
            "cosmonaut.web.predicate": "web.example",
            "cosmonaut.web.port": "8080",
            "cosmonaut.admin.predicate": "admin.example",
            "cosmonaut.admin.port": "9090",
            "cosmonaut.admin.headers.response.X-Admin": "yes",
        },
    )
    done = once(host, haproxy, tmp_path)
    assert done.returncode == 0, done.stderr
    assert haproxy.get(host="web.example").body == f"web {short(both)}"
    admin = haproxy.get(host="admin.example")
    assert admin.body == f"admin {short(both)}"
    assert admin.headers.get("x-admin") == "yes"
    assert "x-admin" not in haproxy.get(host="web.example").headers


SETTINGS = {
    "predicate": "shop.example",
    "port": "8080",
    "weight": "5",
    "maxconn": "40",
    "balance": "leastconn",
    "health.path": "/",
    "health.interval": "1s",
    "timeouts.tunnel": "1h",
    "allow": "0.0.0.0/0, ::/0",
    "headers.request.X-Env": "e2e",
    "headers.response.X-Shop": "open",
}


def normalised(haproxy: HaproxyBox, container: Any) -> str:
    text = haproxy.config().replace(short(container), "ID")
    return re.sub(re.escape(ip_of(container)) + r":\d+", "IP:PORT", text)


def test_namespaced_and_single_service_labels_give_the_same_config(
    host: DockerHost, tmp_path: Path
) -> None:
    haproxy = host.haproxy()
    single = host.service(
        "single",
        labels={"cosmonaut.service": "shop", **{f"cosmonaut.{k}": v for k, v in SETTINGS.items()}},
    )
    done = once(host, haproxy, tmp_path / "one")
    assert done.returncode == 0, done.stderr
    assert haproxy.get(host="shop.example").headers.get("x-shop") == "open"
    first = normalised(haproxy, single)
    assert "weight 5 maxconn 40" in first and "balance leastconn" in first
    single.remove(force=True)

    spaced = host.service("spaced", labels={f"cosmonaut.shop.{k}": v for k, v in SETTINGS.items()})
    done = once(host, haproxy, tmp_path / "two")
    assert done.returncode == 0, done.stderr
    assert normalised(haproxy, spaced) == first
    assert haproxy.get(host="shop.example").headers.get("x-shop") == "open"


def test_a_bad_label_leaves_out_only_that_container(host: DockerHost, tmp_path: Path) -> None:
    haproxy = host.haproxy()
    base = {
        "cosmonaut.service": "web",
        "cosmonaut.predicate": "web.example",
        "cosmonaut.port": "8080",
    }
    good = host.service("good", labels={**base, "cosmonaut.weight": "2"})
    bad = host.service("bad", labels={**base, "cosmonaut.weight": "999"})
    off = host.service("off", labels={**base, "cosmonaut.enable": "false"})
    lost = host.service("lost", labels={**base, "cosmonaut.network": "no-such-network"})
    done = once(host, haproxy, tmp_path)
    assert done.returncode == 0, done.stderr
    config = haproxy.config()
    assert f"server {short(good)} " in config
    for other in (bad, off, lost):
        assert short(other) not in config
    assert haproxy.get(host="web.example").body == short(good)
    assert f"{host.prefix}bad" in done.stderr and "cosmonaut.weight" in done.stderr
    assert f"{host.prefix}lost" in done.stderr and "cosmonaut.network" in done.stderr
    assert f"{host.prefix}off" not in done.stderr
