"""Whatever answers as the registry cannot run anything in the HAProxy container: a remote
registry that serves a config with a ``program`` section (which ``haproxy -c`` accepts, and
the master would start as root at the reload) gets nothing written and nothing run, and
``cosmonaut once`` says why: exit 1, the log names the line and the keyword, the status and
the failure metric say ``refused``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from cosmonaut.discovery.engine import Engine
from runtime.contract import RegistryResult, encode_result
from tests.support.cosmonaut_cli import cli
from tests.support.cosmonaut_e2e import DockerHost, cosmonaut_status, leftovers, web_config
from tests.support.net import ServedHttp

WEB = {"cosmonaut.service": "web", "cosmonaut.predicate": "web.example", "cosmonaut.port": "8080"}
PWNED = "/tmp/pwned-by-the-registry"


class FakeRegistry:
    """Answers every POST with ``config``, as a registry does (the JSON contract)."""

    def __init__(self) -> None:
        self.config = ""
        self.posts = 0
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                registry.posts += 1
                encoded = encode_result(RegistryResult(registry.config, ()), as_json=True)
                body = encoded.body.encode()
                self.send_response(200)
                for name, value in encoded.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.served = ServedHttp(Handler)
        self.url = self.served.url

    def stop(self) -> None:
        self.served.stop()


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    server = FakeRegistry()
    yield server
    server.stop()


def test_a_registry_config_with_a_program_section_is_neither_written_nor_run(
    host: DockerHost, registry: FakeRegistry, tmp_path: Path
) -> None:
    haproxy = host.haproxy()
    web = host.service("web", labels=WEB)
    before = haproxy.config()
    routed = web_config(web)
    registry.config = (
        routed.replace("global\n", "global\n    master-worker\n", 1)
        + f"\nprogram pwn\n    command /bin/touch {PWNED}\n"
    )
    program_line = registry.config.splitlines().index("program pwn") + 1
    # Only the allow-list stands in the way: haproxy -c, in the container, accepts it.
    Engine().put_file(haproxy.container.id, "/tmp", "hostile.cfg", registry.config.encode())
    checked = haproxy.container.exec_run(["haproxy", "-c", "-f", "/tmp/hostile.cfg"])
    assert checked.exit_code == 0, checked.output.decode()
    haproxy.container.exec_run(["rm", "-f", "/tmp/hostile.cfg"])

    done = cli(
        "once",
        "--haproxy-container",
        haproxy.name,
        "--keyword",
        host.prefix,
        "--table",
        "e2e-test",
        "--registry-url",
        registry.url,
        "--state-dir",
        str(tmp_path),
        timeout=120,
    )

    assert registry.posts == 1
    assert haproxy.container.exec_run(["test", "-e", PWNED]).exit_code == 1, "it ran"
    assert done.returncode == 1, done.stderr
    assert haproxy.config() == before
    assert leftovers(haproxy) == []
    logged = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    [refusal] = [entry for entry in logged if entry["event"] == "config refused"]
    assert (refusal["line"], refusal["keyword"]) == (program_line, "program")
    [failed] = [entry for entry in logged if entry["event"] == "reconcile failed"]
    assert failed["failure"] == "refused"
    status = json.loads(cosmonaut_status(tmp_path, "json"))
    last = status["last_pass"]
    assert last["ok"] is False and last["apply"]["outcome"] == "refused"
    assert f"line {program_line}: 'program'" in last["apply"]["message"]
    assert status["metrics"]["failures_by_reason"] == {"refused": 1}
    # The running config still serves: the registry's next sound config is applied.
    registry.config = routed
    again = cli(
        "once",
        "--haproxy-container",
        haproxy.name,
        "--keyword",
        host.prefix,
        "--table",
        "e2e-test",
        "--registry-url",
        registry.url,
        "--state-dir",
        str(tmp_path),
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert haproxy.config() == routed
