"""HTTPS end to end on the real engine: a certificate folder mounted into the
HAProxy container, a ``cosmonaut.tls=redirect`` container routed by ``cosmonaut once``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_cosmonaut_routing import once

from compiler.options import RenderOptions
from cosmonaut.discovery.engine import Engine
from runtime.pipeline import compile_payload
from tests.support.cosmonaut_e2e import (
    HAPROXY,
    DockerHost,
    HaproxyBox,
    eventually,
    ip_of,
    request,
    short,
)
from tests.support.tls_certs import http_get, https_get, write_pem

NAME = "web.example.test"
OPTIONS = {"tls": {"certs_dir": "/certs", "hsts_max_age": 60}}


def haproxy_with_certs(
    host: DockerHost, certs: Path, runtime_dir: Path | None = None
) -> HaproxyBox:
    """HAProxy with ``certs`` mounted read-only at /certs and an empty HTTPS config; with
    ``runtime_dir``, that folder is its /var/lib/haproxy (the stats socket)."""
    text = compile_payload(
        {"table": "e2e-test", "running": []}, options=RenderOptions.model_validate(OPTIONS)
    ).text
    name = f"{host.prefix}haproxy"
    volumes = {str(certs): {"bind": "/certs", "mode": "ro"}}
    if runtime_dir is not None:
        volumes[str(runtime_dir)] = {"bind": "/var/lib/haproxy", "mode": "rw"}
    container = host.client.containers.create(HAPROXY, name=name, volumes=volumes)
    host.started.append(container)
    Engine().put_file(container.id, "/usr/local/etc/haproxy", "haproxy.cfg", text.encode())
    container.start()
    ip = ip_of(container)
    eventually(lambda: request(ip).status, what="HAProxy to listen")
    return HaproxyBox(container, name, ip)


def test_redirect_container_is_served_over_https_by_sni(host: DockerHost, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    certs.chmod(0o755)
    for file_name, cn in (("00-default.pem", "default.invalid"), (f"{NAME}.pem", NAME)):
        write_pem(certs, file_name, cn)
        (certs / file_name).chmod(0o644)  # the container's haproxy user reads the mount
    haproxy = haproxy_with_certs(host, certs)
    web = host.service(
        "web",
        labels={
            "cosmonaut.service": "web",
            "cosmonaut.predicate": NAME,
            "cosmonaut.port": "8080",
            "cosmonaut.tls": "redirect",
        },
    )
    options = tmp_path / "options.json"
    options.write_text(json.dumps(OPTIONS))
    result = once(host, haproxy, tmp_path / "state", "--options", str(options))
    assert result.returncode == 0, result.stderr

    def redirected() -> Any:
        answer = http_get(80, NAME, path="/a?b=c", address=haproxy.ip)
        return (answer.status, answer.headers.get("location"))

    eventually(lambda: redirected() == (301, f"https://{NAME}/a?b=c"), what="the redirect")
    answer = https_get(443, NAME, address=haproxy.ip)
    assert answer.common_name == NAME
    assert answer.status == 200
    assert answer.body.decode().strip() == short(web)
    assert answer.headers["strict-transport-security"] == "max-age=60"
    # An unknown name gets the folder's first certificate.
    assert https_get(443, "other.example.test", address=haproxy.ip).common_name == "default.invalid"
