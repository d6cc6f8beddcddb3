"""A fleet on the real engine: hosts simulated on one engine, one registry.

Each host is a ``cosmonaut run`` process (``Cosmonaut``) managing its own containers
(``--keyword``, a name prefix of its own), with its own HAProxy container and its own
``--host-id``. They all report to one ``lambda-registry serve`` (``Registry``:
``runtime.server.RegistryServer`` on a port held here, in this process) backed by DynamoDB on
moto's server, reached the standard way (``AWS_ENDPOINT_URL_DYNAMODB``). Containers are
reachable from this machine (and from each other) on the engine's bridge, so host A's HAProxy
can route to host B's containers, as an overlay network would let it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runtime.config import HandlerConfig
from runtime.handler import RegistryApp
from runtime.identity import HostCredential
from runtime.server import RegistryServer
from tests.support.aws import MotoServer, aws_env
from tests.support.cosmonaut_e2e import DockerHost, HaproxyBox, cosmonaut_status, stop_process
from tests.support.net import Relay


class Registry:
    """``lambda-registry serve``'s server over DynamoDB (moto), stoppable and restartable with
    the same app (and so the same table contents) behind one URL: a port held here for the
    whole test (``Relay``), so no other process can take it while the registry is down. It
    takes the operator's bearer ``token`` and the hosts' own ``host_tokens``, as a fleet's
    registry does (behind the relay, requests name the relay's port in Host, which a tokenless
    serve refuses)."""

    def __init__(
        self, app: RegistryApp, token: str, host_tokens: Sequence[HostCredential] = ()
    ) -> None:
        self.app, self.token, self.host_tokens = app, token, tuple(host_tokens)
        self.front = Relay()
        self.url = f"http://127.0.0.1:{self.front.port}/"
        self.server: RegistryServer | None = None
        self.start()

    def stop(self) -> None:
        self.front.target = None
        if self.server is not None:
            self.server.stop()
            self.server = None

    def start(self) -> None:
        self.server = RegistryServer(
            "127.0.0.1", 0, self.app, token=self.token, host_tokens=self.host_tokens
        ).start()
        self.front.target = self.server.address[1]

    def close(self) -> None:
        self.stop()
        self.front.close()


@contextmanager
def fleet_registry(
    monkeypatch: pytest.MonkeyPatch,
    env: Mapping[str, str],
    token: str,
    host_tokens: Sequence[HostCredential] = (),
) -> Iterator[Registry]:
    """A ``Registry`` over a fresh moto server; ``env``: the handler's settings
    (``LAMBDA_REGISTRY_HOST_TTL``, ``LAMBDA_REGISTRY_OPTIONS``, ...)."""
    moto = MotoServer().start()
    try:
        aws_env(monkeypatch, moto.endpoint)
        config = HandlerConfig.from_env({"LAMBDA_REGISTRY_STORE": "dynamodb", **env})
        running = Registry(RegistryApp(config), token, host_tokens)
        try:
            yield running
        finally:
            running.close()
    finally:
        moto.stop()


@contextmanager
def another_host(client: Any) -> Iterator[DockerHost]:
    """One more simulated host on the same engine: containers under a name prefix of its
    own, removed afterwards."""
    box = DockerHost(client, f"cz{uuid.uuid4().hex[:8]}-")
    try:
        yield box
    finally:
        box.cleanup()


@dataclass
class Cosmonaut:
    """``cosmonaut run`` as a process of its own: one simulated host, reporting with
    ``token`` (``COSMONAUT_REGISTRY_TOKEN``)."""

    host_id: str
    docker: DockerHost
    haproxy: HaproxyBox
    state_dir: Path
    url: str
    table: str
    token: str
    extra: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    log_start: int = 0  # where this start's lines begin in the log

    @property
    def log(self) -> Path:
        return self.state_dir / "cosmonaut.log"

    def start(self) -> Cosmonaut:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_start = self.log.stat().st_size if self.log.exists() else 0
        command = [
            sys.executable,
            "-m",
            "cosmonaut.cli",
            "run",
            "--haproxy-container",
            self.haproxy.name,
            "--keyword",
            self.docker.prefix,
            "--table",
            self.table,
            "--host-id",
            self.host_id,
            "--registry-url",
            self.url,
            "--registry-auth",
            "bearer",  # the token from COSMONAUT_REGISTRY_TOKEN
            "--registry-timeout",
            "2",
            "--registry-retries",
            "1",
            "--poll-interval",
            "1",
            "--resync-interval",
            "1",
            "--state-dir",
            str(self.state_dir),
            "--metrics-address",
            "127.0.0.1:0",  # the port it binds is in its 'metrics' log line
            *self.extra,
        ]
        with self.log.open("ab") as log:
            env = {**os.environ, "COSMONAUT_REGISTRY_TOKEN": self.token}
            self.process = subprocess.Popen(command, stderr=log, stdout=log, env=env)
        return self

    def kill(self) -> None:
        """SIGKILL: no final report, nothing said to the registry."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        stop_process(self.process)

    def status(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(cosmonaut_status(self.state_dir, "json"))
        return document

    def metrics_url(self) -> str:
        """The address the 'metrics' log line of this start names."""
        with self.log.open("rb") as log:
            log.seek(self.log_start)
            for line in log:
                if line.startswith(b"{") and line.endswith(b"\n"):  # a complete JSON line
                    entry = json.loads(line)
                    if entry.get("event") == "metrics":
                        return str(entry["address"])
        raise AssertionError(f"{self.host_id}: no 'metrics' log line yet")

    def metrics(self) -> dict[str, float]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(self.metrics_url(), timeout=2) as response:
            text = response.read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def passes_since(self, offset: int) -> list[dict[str, Any]]:
        """The passes logged (``reconciled``, ``reconcile failed``) after byte ``offset``."""
        with self.log.open("rb") as log:
            log.seek(offset)
            lines = log.read().decode(errors="replace").splitlines()
        events = [json.loads(line) for line in lines if line.startswith("{")]
        return [e for e in events if e["event"] in ("reconciled", "reconcile failed")]

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def answers(haproxy: HaproxyBox, name: str, count: int = 6) -> set[str]:
    return {haproxy.get(host=name).body for _ in range(count)}


def backends(haproxy: HaproxyBox) -> set[str]:
    """The names of the servers in ``haproxy``'s config."""
    return {
        line.split()[1] for line in haproxy.config().splitlines() if line.startswith("    server ")
    }
