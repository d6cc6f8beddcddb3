"""HTTPS with automatic certificates, end to end on the real engine.

``cosmonaut run`` (a process of its own, with the in-process registry on SQLite) manages a
HAProxy container and a container labelled ``cosmonaut.tls=redirect`` and
``cosmonaut.tls.acme=true``. pebble (``tests.support.pebble``) validates HTTP-01 against that
HAProxy on the engine's bridge, where HAProxy answers from its config: Cosmonaut writes no challenge
file. Certificates reach the HAProxy container through the Docker API (nothing is mounted).

Also here: a certificate a user adds to a mounted folder is loaded without a failed request,
and two hosts sharing one registry order one certificate and both serve it.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.cosmonaut_e2e import (
    DockerHost,
    HaproxyBox,
    cosmonaut_status,
    eventually,
    load_clients,
    request,
    short,
    stop_process,
)
from tests.support.pebble import Pebble, require_pebble
from tests.support.tls_certs import http_get, https_get, write_pem

NAME = "shop.example.test"
PLAIN = "plain.example.test"
OPTIONS = {"tls": {"certs_dir": "/certs"}}


def acme_labels(service: str, name: str) -> dict[str, str]:
    return {
        "cosmonaut.service": service,
        "cosmonaut.predicate": name,
        "cosmonaut.port": "8080",
        "cosmonaut.tls": "redirect",
        "cosmonaut.tls.acme": "true",
    }


def verified(ip: str, name: str, roots: str) -> tuple[int, str, int]:
    """HTTPS to ``ip`` with SNI ``name``, the certificate verified against ``roots`` (and the
    name): the status, the body and the certificate's serial."""
    context = ssl.create_default_context(cadata=roots)
    with (
        socket.create_connection((ip, 443), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as conn,
    ):
        serial = int(str(conn.getpeercert()["serialNumber"]), 16)
        conn.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode().strip(), serial


@dataclass
class Daemon:
    """``cosmonaut run`` with ACME, as a process of its own."""

    docker: DockerHost
    haproxy: HaproxyBox
    state_dir: Path
    pebble: Pebble
    extra: tuple[str, ...] = ()
    registry_url: str | None = None  # a remote registry; else one in process, on SQLite
    process: subprocess.Popen[bytes] | None = None
    log_lines: list[str] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.state_dir / "cosmonaut.log"

    def start(self) -> Daemon:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        options = self.state_dir / "options.json"
        options.write_text(json.dumps(OPTIONS))
        if self.registry_url is None:
            registry = ["--options", str(options)]
            if not any(arg == "--store" for arg in self.extra):
                registry += ["--store", f"sqlite:{self.state_dir / 'registry.db'}"]
        else:
            registry = ["--registry-url", self.registry_url, "--certs-dir", "/certs"]
        command = [
            *(sys.executable, "-m", "cosmonaut.cli", "run"),
            *("--haproxy-container", self.haproxy.name, "--keyword", self.docker.prefix),
            *("--state-dir", str(self.state_dir), *registry),
            *("--resync-interval", "2", "--poll-interval", "1"),
            *("--acme-directory", self.pebble.directory, "--acme-accept-tos"),
            *("--acme-ca-bundle", str(self.pebble.ca), "--acme-email", "ops@example.test"),
            *("--acme-retry-min", "1", "--acme-retry-max", "2"),
            *self.extra,
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stderr=log, stdout=log)
        return self

    def stop(self) -> None:
        stop_process(self.process)

    def acme(self) -> dict[str, Any]:
        status = json.loads(cosmonaut_status(self.state_dir, "json"))
        return {entry["name"]: entry for entry in status.get("acme") or []} | {
            "metrics": status.get("metrics", {})
        }

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def events(self) -> list[dict[str, Any]]:
        """The daemon's log lines (JSON), oldest first."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def reconciles(self) -> float:
        return float(self.acme()["metrics"].get("cosmonaut_reconciles_total", 0))


@pytest.fixture
def pebble_for(tmp_path: Path) -> Iterator[Any]:
    require_pebble()
    started: list[Pebble] = []

    def start(address: str, **options: Any) -> Pebble:
        folder = tmp_path / f"pebble{len(started)}"
        folder.mkdir()
        server = Pebble(folder, address=address, http_port=80, **options).start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def test_labelled_container_gets_a_certificate_refusals_retried_renewed(
    host: DockerHost, tmp_path: Path, pebble_for: Any
) -> None:
    haproxy = host.haproxy()
    # Every request refused at first; certificates live 40 s, so renewal is due after 27 s.
    pebble = pebble_for(haproxy.ip, reject=100, validity=40)
    shop = host.service("shop", labels=acme_labels("shop", NAME))
    host.service(
        "plain",
        labels={
            "cosmonaut.service": "plain",
            "cosmonaut.predicate": PLAIN,
            "cosmonaut.port": "8080",
        },
    )
    daemon = Daemon(host, haproxy, tmp_path / "state", pebble).start()
    try:
        # Refused: retried and reported; the service waits on HTTP, the other is untouched.
        failed = eventually(
            lambda: (s := daemon.acme().get(NAME)) and s["failures"] >= 2 and s,
            timeout=60,
            what="two failed orders in the status",
        )
        assert failed["state"] == "failed" and "badNonce" in failed["last_error"], failed
        assert request(haproxy.ip, host=NAME).status == 200  # on HTTP, no redirect yet
        assert request(haproxy.ip, host=PLAIN).status == 200
        assert daemon.acme()["metrics"]["cosmonaut_acme_names_failed"] == 1

        pebble.restart(reject=0)
        eventually(
            lambda: (
                http_get(80, NAME, path="/a?b=c", address=haproxy.ip).headers.get("location")
                == f"https://{NAME}/a?b=c"
            ),
            timeout=60,
            what="the redirect once the certificate is there",
        )
        roots = pebble.roots()
        status, body, first = verified(haproxy.ip, NAME, roots)
        assert (status, body) == (200, short(shop))
        assert daemon.acme()[NAME]["state"] == "valid"
        assert daemon.acme()[NAME]["last_error"] is None
        # The plain service is still on HTTP only; an unknown name gets the default.
        assert request(haproxy.ip, host=PLAIN).status == 200
        assert https_get(443, "other.example.test", address=haproxy.ip).common_name == (
            "cosmonaut-default.invalid"
        )
        mode = haproxy.container.exec_run(["stat", "-c", "%a %u", f"/certs/{NAME}.acme.pem"])
        assert mode.output.decode().split() == ["600", "0"]  # HAProxy runs as root here

        # Renewal, when a third of the lifetime is left: a new certificate, served.
        renewed = eventually(
            lambda: (answer := verified(haproxy.ip, NAME, roots))[2] != first and answer,
            timeout=90,
            interval=0.5,
            what="the renewed certificate",
        )
        assert renewed[:2] == (200, short(shop))
        assert daemon.acme()["metrics"]["cosmonaut_acme_certificates_issued_total"] >= 2
    except BaseException:
        print(daemon.tail())
        raise
    finally:
        daemon.stop()
    assert "PRIVATE KEY" not in daemon.log.read_text()


@pytest.mark.parametrize("change_path", ["reload", "runtime API"])
def test_a_certificate_added_to_the_folder_is_loaded_without_a_failed_request(
    host: DockerHost, tmp_path: Path, change_path: str
) -> None:
    from test_cosmonaut_tls import haproxy_with_certs

    from compiler.options import RenderOptions
    from cosmonaut.acme.certfolder import CertFolder
    from cosmonaut.acme.policy import Https
    from cosmonaut.registry.client import LocalRegistry
    from runtime.stores.memory import MemoryStore
    from tests.support.cosmonaut_e2e import RunningDaemon, reconciler

    certs = tmp_path / "certs"
    certs.mkdir()
    certs.chmod(0o755)
    write_pem(certs, "00-default.pem", "default.invalid")
    (certs / "00-default.pem").chmod(0o644)  # the container's haproxy user reads the mount
    runtime_dir = tmp_path / "haproxy-lib" if change_path == "runtime API" else None
    if runtime_dir is not None:
        runtime_dir.mkdir()
    haproxy = haproxy_with_certs(host, certs, runtime_dir)
    host.service(
        "web",
        labels={
            "cosmonaut.service": "web",
            "cosmonaut.predicate": NAME,
            "cosmonaut.port": "8080",
            "cosmonaut.tls": "on",  # HTTP answers too: the load runs on it
        },
    )
    registry = LocalRegistry(
        MemoryStore(), RenderOptions.model_validate({"tls": {"certs_dir": "/certs"}})
    )
    socket_path = runtime_dir / "admin.sock" if runtime_dir is not None else None
    syncer = reconciler(host, haproxy, registry=registry, runtime_socket=socket_path)
    target = syncer.applier.target
    syncer.https = Https(CertFolder(target.engine, "/certs"), target)
    with RunningDaemon(syncer, resync_interval=60, folder_interval=0.5) as daemon:
        eventually(lambda: request(haproxy.ip, host=NAME).status == 200, what="routing")
        assert https_get(443, NAME, address=haproxy.ip).common_name == "default.invalid"
        clients = load_clients(haproxy, NAME)
        assert clients.stdout is not None and clients.stdin is not None
        assert clients.stdout.readline().strip() == "ready"
        reloads = daemon.reloads()
        write_pem(certs, f"{NAME}.pem", NAME)
        (certs / f"{NAME}.pem").chmod(0o644)
        eventually(
            lambda: https_get(443, NAME, address=haproxy.ip).common_name == NAME,
            timeout=30,
            what="the new certificate served",
        )
        clients.stdin.close()
        summary = json.loads(clients.stdout.read())
        clients.wait(timeout=30)
    assert daemon.reloads() == reloads + 1
    reasons = [p.reasons for p in daemon.passes if p.applied and p.applied.outcome == "applied"]
    assert reasons[-1] == ("certificate folder changed",)
    failures = [f for client in summary.values() for f in client["failures"]]
    assert failures == [], summary
    assert sum(client["requests"] for client in summary.values()) > 20


@dataclass(frozen=True)
class Seen:
    """One look at a host: HTTP's status and redirect, then HTTPS verified for the name
    (None when the certificate does not verify, or the connection fails)."""

    at: float
    http: int | None
    location: str | None
    https: int | None


def look(ip: str, roots: str) -> Seen:
    at = time.monotonic()
    try:
        answer = http_get(80, NAME, address=ip, timeout=3)
        http, location = answer.status, answer.headers.get("location")
    except OSError:
        http, location = None, None
    try:
        https: int | None = verified(ip, NAME, roots)[0]
    except (OSError, ssl.SSLError):
        https = None
    return Seen(at, http, location, https)


def test_two_hosts_sharing_a_registry_order_one_certificate_and_both_serve_it(
    host: DockerHost, client: Any, tmp_path: Path, pebble_for: Any
) -> None:
    """One order for the fleet; while the hosts switch to HTTPS, neither ever fails an HTTP
    request, redirects to an HTTPS that does not answer, or stops serving HTTPS once it has."""
    other = DockerHost(client, f"cz{uuid.uuid4().hex[:8]}-")
    daemons: list[Daemon] = []
    seen: dict[str, list[Seen]] = {}
    stop = threading.Event()
    try:
        boxes = [host, other]
        haproxies = [box.haproxy() for box in boxes]
        # The CA reaches host B's HAProxy only; host A may be the one that orders.
        pebble = pebble_for(haproxies[1].ip)
        roots = pebble.roots()
        shared = tmp_path / "shared.db"
        table = f"acme-{uuid.uuid4().hex[:8]}"
        for index, (box, haproxy) in enumerate(zip(boxes, haproxies, strict=True)):
            box.service("shop", labels=acme_labels("shop", NAME))
            extra = ("--host-id", f"host-{index}", "--table", table, "--store", f"sqlite:{shared}")
            daemons.append(
                Daemon(box, haproxy, tmp_path / f"state{index}", pebble, extra=extra).start()
            )
        for haproxy in haproxies:
            eventually(lambda h=haproxy: request(h.ip, host=NAME).status in (200, 301), timeout=60)  # type: ignore[misc]

        def watch(ip: str) -> None:
            looks = seen.setdefault(ip, [])
            while not stop.is_set():
                looks.append(look(ip, roots))
                stop.wait(0.1)

        watchers = [threading.Thread(target=watch, args=(h.ip,)) for h in haproxies]
        for watcher in watchers:
            watcher.start()
        for haproxy in haproxies:
            eventually(
                lambda h=haproxy: seen.get(h.ip) and seen[h.ip][-1].https == 200,  # type: ignore[misc]
                timeout=90,
                interval=0.5,
                what=f"HTTPS on {haproxy.name}",
            )
        time.sleep(3)  # a few looks more: HTTPS must stay
        stop.set()
        for watcher in watchers:
            watcher.join(timeout=30)
        serials = {verified(h.ip, NAME, roots)[2] for h in haproxies}
        assert len(serials) == 1
        issued = [d.acme()["metrics"]["cosmonaut_acme_certificates_issued_total"] for d in daemons]
        assert sorted(issued) == [0, 1], issued

        firsts = []
        for looks in seen.values():
            assert all(s.http in (200, 301) for s in looks), [
                s for s in looks if s.http not in (200, 301)
            ]
            redirected = [s for s in looks if s.location == f"https://{NAME}/"]
            assert all(s.https == 200 for s in redirected), [
                s for s in redirected if s.https != 200
            ]
            first = next(i for i, s in enumerate(looks) if s.https == 200)
            assert all(s.https == 200 for s in looks[first:]), looks[first:]
            firsts.append(looks[first].at)
        print(f"the second host served HTTPS {max(firsts) - min(firsts):.2f} s after the first")
    except BaseException:
        for daemon in daemons:
            print(daemon.tail())
        raise
    finally:
        stop.set()
        for daemon in daemons:
            daemon.stop()
        other.cleanup()


def test_once_orders_installs_and_routes_in_one_run(
    host: DockerHost, tmp_path: Path, pebble_for: Any
) -> None:
    """``cosmonaut once`` (cron): one pass, one ordering round, one pass that installs."""
    haproxy = host.haproxy()
    pebble = pebble_for(haproxy.ip)
    shop = host.service("shop", labels=acme_labels("shop", NAME))
    state = tmp_path / "state"
    state.mkdir()
    (state / "options.json").write_text(json.dumps(OPTIONS))
    done = subprocess.run(
        [
            *(sys.executable, "-m", "cosmonaut.cli", "once"),
            *("--haproxy-container", haproxy.name, "--keyword", host.prefix),
            *("--state-dir", str(state), "--options", str(state / "options.json")),
            *("--store", f"sqlite:{state / 'registry.db'}"),
            *("--acme-directory", pebble.directory, "--acme-accept-tos"),
            *("--acme-ca-bundle", str(pebble.ca)),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "acme certificate issued" in done.stderr
    assert "PRIVATE KEY" not in done.stderr
    answer = http_get(80, NAME, address=haproxy.ip)
    assert (answer.status, answer.headers.get("location")) == (301, f"https://{NAME}/")
    assert verified(haproxy.ip, NAME, pebble.roots())[:2] == (200, short(shop))


class Served:
    """``lambda-registry serve``'s server on loopback over SQLite, restartable on its port
    with other render options (what an operator does to add the ACME thumbprint)."""

    def __init__(self, database: Path, options: dict[str, Any]) -> None:
        self.database = database
        self.server = self._serve(0, options)
        self.port = self.server.address[1]
        self.url = f"http://127.0.0.1:{self.port}/"

    def _serve(self, port: int, options: dict[str, Any]) -> Any:
        from runtime.config import HandlerConfig
        from runtime.handler import RegistryApp
        from runtime.server import RegistryServer

        environ = {
            "LAMBDA_REGISTRY_STORE": f"sqlite:{self.database}",
            "LAMBDA_REGISTRY_OPTIONS": json.dumps(options),
        }
        app = RegistryApp(HandlerConfig.from_env(environ))
        return RegistryServer("127.0.0.1", port, app).start()

    def restart(self, options: dict[str, Any]) -> None:
        self.server.stop()
        self.server = self._serve(self.port, options)

    def stop(self) -> None:
        self.server.stop()


def test_a_remote_registry_without_the_thumbprint_gets_no_order_until_its_options_carry_it(
    host: DockerHost, tmp_path: Path, pebble_for: Any
) -> None:
    """With ``--registry-url`` the registry renders the challenge answer only once its render
    options carry the account's thumbprint (the log says which). Until then no order is sent:
    the CA would fail it (HAProxy cannot answer) and count it against its rate limits. The
    account and certificates live in ``--acme-store``, a store the fleet shares."""
    haproxy = host.haproxy()
    pebble = pebble_for(haproxy.ip)
    shop = host.service("shop", labels=acme_labels("shop", NAME))
    registry = Served(tmp_path / "registry.db", OPTIONS)
    extra = ("--acme-store", f"sqlite:{tmp_path / 'acme.db'}")
    daemon = Daemon(host, haproxy, tmp_path / "state", pebble, extra, registry.url).start()
    try:
        said = eventually(
            lambda: [e for e in daemon.events() if "does not answer challenges" in e["event"]],
            timeout=60,
            what="the log saying the config does not answer challenges",
        )
        thumbprint = said[0]["acme_thumbprint"]
        needed = [e for e in daemon.events() if e["event"].endswith("need this thumbprint")]
        assert [e["acme_thumbprint"] for e in needed] == [thumbprint]
        # Passes go on (the service is routed on HTTP) and order nothing.
        passes = daemon.reconciles()
        eventually(lambda: daemon.reconciles() >= passes + 3, timeout=60, what="three passes")
        assert [e for e in daemon.events() if e["event"] == "acme ordering"] == []
        assert daemon.acme()["metrics"]["cosmonaut_acme_failures_total"] == 0
        assert request(haproxy.ip, host=NAME).status == 200  # on HTTP, no redirect

        registry.restart({**OPTIONS, "acme_thumbprint": thumbprint})
        eventually(
            lambda: (
                http_get(80, NAME, address=haproxy.ip).headers.get("location") == f"https://{NAME}/"
            ),
            timeout=90,
            what="the redirect once the certificate is there",
        )
        assert verified(haproxy.ip, NAME, pebble.roots())[:2] == (200, short(shop))
        orders = [e for e in daemon.events() if e["event"] == "acme ordering"]
        assert [e["name"] for e in orders] == [NAME]
        assert daemon.acme()["metrics"]["cosmonaut_acme_failures_total"] == 0
    except BaseException:
        print(daemon.tail())
        raise
    finally:
        daemon.stop()
        registry.stop()
