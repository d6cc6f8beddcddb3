"""examples/compose.yaml on the real engine: its two services, started with the file's labels,
commands and images (read with PyYAML), are routed by ``cosmonaut once`` through HAProxy.

The engine here has no registry to pull from, so each image of the file is mapped to the
local test image of the same program (busybox, haproxy); Compose's own labels
(``com.docker.compose.service``) and its ``$$`` escape are applied as Compose would.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from test_cosmonaut_routing import once

from tests.support.cosmonaut_e2e import BUSYBOX, ROOT, DockerHost, request
from tests.support.required import require

LOCAL_IMAGES = {"busybox": BUSYBOX}


def compose_file() -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        require("PyYAML", "not installed; it is in the 'test' extra (scripts/bootstrap)")
    data: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "compose.yaml").read_text())
    return data


def test_compose_example_services_are_routed(host: DockerHost, tmp_path: Path) -> None:
    services = compose_file()["services"]
    assert {"haproxy", "cosmonaut", "web", "admin"} <= set(services)
    assert services["haproxy"]["image"].startswith("haproxy:")
    haproxy = host.haproxy()
    for name in ("web", "admin"):
        spec = services[name]
        labels = {k: str(v).replace("$$", "$") for k, v in spec["labels"].items()}
        labels["com.docker.compose.service"] = name  # as Compose sets it
        image = LOCAL_IMAGES[spec["image"].split(":", 1)[0]]
        container = host.client.containers.create(
            image, spec["command"], name=f"{host.prefix}{name}", labels=labels
        )
        host.started.append(container)
        container.start()
    done = once(host, haproxy, tmp_path)
    assert done.returncode == 0, done.stderr
    web = haproxy.get(host="web.localhost")
    assert (web.status, web.body, web.headers.get("x-served-by")) == (200, "web", "web")
    assert request(haproxy.ip, host="admin.localhost").status == 401
    token = base64.b64encode(b"admin:change-me").decode()
    admin = authorised(haproxy.ip, token)
    assert (admin.status, admin.body) == (200, "admin")


def authorised(ip: str, token: str) -> Any:
    import http.client

    from tests.support.cosmonaut_e2e import Reply

    connection = http.client.HTTPConnection(ip, 80, timeout=5)
    try:
        connection.request(
            "GET", "/", headers={"Host": "admin.localhost", "Authorization": f"Basic {token}"}
        )
        response = connection.getresponse()
        return Reply(response.status, response.read().decode().strip(), {})
    finally:
        connection.close()
