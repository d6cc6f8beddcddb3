"""Helpers for tests on the real container engine (never a mock of the Docker API).

The engine is the one ``DOCKER_HOST`` names: the Docker Engine or Podman's Docker-compatible
API. When it is unset, the fixtures bring up the sandbox's engine
(``../shared/tools/container-engine up``, or ``$CONTAINER_ENGINE_TOOL``), the Docker Engine
unless ``CONTAINER_ENGINE`` says ``podman``.
When no engine can be reached the tests skip, except under ``CI=true``, where they fail
(``tests.support.required``).

Every container a test starts carries a unique name prefix and is removed at teardown. The
prefix doubles as Cosmonaut's ``--keyword``, so a test only ever sees its own containers.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import pytest

from tests.support.cosmonaut_cli import cli
from tests.support.required import require

if TYPE_CHECKING:
    from cosmonaut.registry.client import RegistryResult

ROOT = Path(__file__).resolve().parents[2]
TOOL_ENV = "CONTAINER_ENGINE_TOOL"
ENGINE_ENV = "CONTAINER_ENGINE"  # the tool's choice of engine: docker (default here) or podman
BUSYBOX = "localhost/busybox:latest"
HAPROXY = "localhost/haproxy:local"
T = TypeVar("T")


def engine_tool() -> Path | None:
    configured = os.environ.get(TOOL_ENV)
    candidates = [Path(configured)] if configured else []
    candidates.append(ROOT.parent / "shared" / "tools" / "container-engine")
    return next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)


def _unavailable(message: str) -> NoReturn:
    require("container engine", message)


def ensure_engine() -> str:
    """``DOCKER_HOST`` of a running engine with the test images."""
    if not os.environ.get("DOCKER_HOST"):
        tool = engine_tool()
        if tool is None:
            _unavailable("DOCKER_HOST is unset and no container-engine tool was found")
        assert tool is not None
        try:
            # From "/": the API service it starts keeps this as its working directory, and
            # conmon fails every container start once that directory is gone.
            done = subprocess.run(
                [str(tool), "up"],
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
                cwd="/",
                env={**os.environ, "CONTAINER_ENGINE": os.environ.get(ENGINE_ENV, "docker")},
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            _unavailable(f"{tool} up: {error}")
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines or "DOCKER_HOST=" not in lines[-1]:
            _unavailable(f"{tool} up failed: {done.stderr.strip()[-500:]}")
        os.environ["DOCKER_HOST"] = lines[-1].split("DOCKER_HOST=", 1)[1].strip().strip("'\"")
    import docker

    try:
        client = docker.from_env(timeout=30)
        client.ping()
        images = {tag for image in client.images.list() for tag in image.tags}
    except Exception as error:
        _unavailable(f"{os.environ['DOCKER_HOST']}: {error}")
    missing = {BUSYBOX, HAPROXY} - images
    if missing:
        _unavailable(f"images missing: {', '.join(sorted(missing))} (run container-engine up)")
    return os.environ["DOCKER_HOST"]


def eventually(
    check: Callable[[], T | None], timeout: float = 15.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds.

    A falsy answer, or an exception that is not an assertion (connection refused while a
    server starts, a container the engine does not list yet), means "not yet": it is tried
    again, and the last one is shown at the timeout. An ``AssertionError`` (or a pytest
    failure) is a verdict, never "not yet": it propagates at once, with its message."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except AssertionError:
            raise
        except Exception as error:  # not met yet
            last = error
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            message = f"timed out after {timeout} s waiting for {what or check}: last {last!r}"
            cause = last if isinstance(last, Exception) else None
            raise pytest.fail.Exception(message) from cause
        time.sleep(interval)


@dataclass
class Reply:
    status: int
    body: str
    headers: dict[str, str]


def request(
    ip: str,
    *,
    host: str | None = None,
    path: str = "/",
    cookie: str | None = None,
    port: int = 80,
    timeout: float = 3.0,
    authorization: str | None = None,
) -> Reply:
    """One HTTP/1.1 request on a fresh connection, straight to ``ip`` (no proxy)."""
    connection = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        headers = {"Connection": "close"}
        if host:
            headers["Host"] = host
        if cookie:
            headers["Cookie"] = cookie
        if authorization:
            headers["Authorization"] = authorization
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read().decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in response.getheaders()}
        return Reply(response.status, body.strip(), headers)
    finally:
        connection.close()


def backend_script(
    port: int, paths: tuple[str, ...], cookie: str | None, stop_delay: float = 0.0
) -> str:
    """busybox httpd answering with the container's hostname (its short id) on ``/``, on
    ``/<path>/`` for each path, and on ``/cgi-bin/id``, which also sets ``cookie``. On
    SIGTERM it exits at once, or, with ``stop_delay``, keeps serving that long first (an app
    that finishes its in-flight work)."""
    pause = f"sleep {stop_delay:g}; " if stop_delay else ""
    dirs = " ".join(f"/www/{p.strip('/')}" for p in paths)
    set_cookie = f"Set-Cookie: {cookie}=v\\r\\n" if cookie else ""
    return f"""
mkdir -p /www/cgi-bin {dirs}
echo "$HOSTNAME" > /www/index.html
for d in {dirs or "''"}; do [ -n "$d" ] && cp /www/index.html "$d/index.html"; done
cat > /www/cgi-bin/id <<EOF
#!/bin/sh
printf 'Content-Type: text/plain\\r\\n{set_cookie}\\r\\n'
echo $HOSTNAME
EOF
chmod +x /www/cgi-bin/id
trap '{pause}kill $pid; exit 0' TERM
httpd -f -p {port} -h /www & pid=$!
wait $pid
"""


@dataclass
class HaproxyBox:
    container: Any
    name: str
    ip: str

    def get(self, **kwargs: Any) -> Reply:
        return request(self.ip, **kwargs)

    def config(self) -> str:
        result = self.container.exec_run(["cat", "/usr/local/etc/haproxy/haproxy.cfg"])
        return str(result.output.decode())


@dataclass
class DockerHost:
    """Starts containers for one test, all named ``<prefix>...``, and removes them after."""

    client: Any
    prefix: str
    started: list[Any] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # built for the test, removed after it
    networks: list[Any] = field(default_factory=list)  # made for the test, removed after it

    def network(self, suffix: str, subnet: str) -> Any:
        """A bridge network of the engine's own, with ``subnet``, for containers given an
        address of the test's choosing (``attach``)."""
        import docker

        pool = docker.types.IPAMPool(subnet=subnet)
        network = self.client.networks.create(
            f"{self.prefix}{suffix}",
            driver="bridge",
            ipam=docker.types.IPAMConfig(pool_configs=[pool]),
        )
        self.networks.append(network)
        return network

    def attach(self, container: Any, network: Any, address: str) -> None:
        """Put a created (not started) container on ``network`` at ``address`` only."""
        container.reload()
        for name in list(container.attrs["NetworkSettings"]["Networks"]):
            self.client.networks.get(name).disconnect(container)
        network.connect(container, ipv4_address=address)

    def service(
        self,
        suffix: str,
        *,
        labels: dict[str, str] | None = None,
        environment: dict[str, str] | None = None,
        port: int = 8080,
        paths: tuple[str, ...] = (),
        cookie: str | None = None,
        healthcheck: dict[str, Any] | None = None,
        start: bool = True,
        ports: dict[str, Any] | None = None,
        stop_delay: float = 0.0,
    ) -> Any:
        settings = {**(environment or {}), **(labels or {})}
        cookie = cookie or settings.get("cosmonaut.cookie") or settings.get("COOKIE")
        mode = (settings.get("cosmonaut.mode") or settings.get("CONFIG_MODE") or "").lower()
        predicate = settings.get("cosmonaut.predicate") or settings.get("PREDICATE")
        if mode == "path" and predicate:
            paths = (*paths, predicate)
        container = self.client.containers.create(
            BUSYBOX,
            ["sh", "-c", backend_script(port, paths, cookie, stop_delay)],
            name=f"{self.prefix}{suffix}",
            labels=labels or {},
            environment=environment or {},
            healthcheck=healthcheck,
            **({"ports": ports} if ports else {}),
        )
        self.started.append(container)
        if start:
            container.start()
        return container

    def haproxy(
        self,
        config: str | None = None,
        *,
        command: list[str] | None = None,
        image: str = HAPROXY,
        runtime_dir: Path | None = None,
    ) -> HaproxyBox:
        """HAProxy in a container; with ``runtime_dir``, that host folder is its
        ``/var/lib/haproxy`` (the stats socket and the server state), as docs/cosmonaut.md says."""
        from cosmonaut.discovery.engine import Engine
        from runtime.pipeline import compile_payload

        text = config or compile_payload({"table": "e2e-test", "running": []}).text
        name = f"{self.prefix}haproxy"
        volumes = {}
        if runtime_dir is not None:
            volumes[str(runtime_dir)] = {"bind": "/var/lib/haproxy", "mode": "rw"}
        container = self.client.containers.create(image, command, name=name, volumes=volumes)
        self.started.append(container)
        Engine().put_file(container.id, "/usr/local/etc/haproxy", "haproxy.cfg", text.encode())
        container.start()
        container.reload()
        ip = ip_of(container)
        eventually(lambda: request(ip).status, what="HAProxy to listen")
        return HaproxyBox(container, name, ip)

    def haproxy_image_without_sh(self) -> str:
        """``localhost/haproxy:local`` without any shell (``sh``, ``ash``, ``hush``): an image
        like the distroless ones, where Cosmonaut cannot run ``sh -c``."""
        tag = f"localhost/{self.prefix}haproxy-no-sh:latest"
        builder = self.client.containers.create(
            HAPROXY, ["/bin/busybox", "rm", "-f", "/bin/sh", "/bin/ash", "/bin/hush"]
        )
        try:
            builder.start()
            assert builder.wait(timeout=60)["StatusCode"] == 0
            self.images.append(tag)
            builder.commit(repository=tag.rsplit(":", 1)[0], tag="latest")
        finally:
            builder.remove(force=True)
        return tag

    def cleanup(self) -> None:
        for container in reversed(self.started):
            try:
                container.remove(force=True)
            except Exception as error:
                if "No such container" not in str(error) and "no such container" not in str(error):
                    raise
        for network in self.networks:
            with contextlib.suppress(Exception):  # best effort: nothing runs on it any more
                network.remove()
        for image in self.images:
            with contextlib.suppress(Exception):  # best effort: it may never have been built
                self.client.images.remove(image, force=True)


def kill(container: Any) -> None:
    """Kill ``container`` and wait until the engine says it stopped (``kill`` returns once
    the signal is sent, when the container may still be listed as running)."""
    container.kill()
    container.wait(timeout=30)


def ip_of(container: Any) -> str:
    container.reload()
    networks = container.attrs["NetworkSettings"]["Networks"]
    return str(next(iter(networks.values()))["IPAddress"])


def short(container: Any) -> str:
    return str(container.id[:12])


@functools.cache
def engine_kind() -> str:
    """``docker`` or ``podman``: which engine serves ``DOCKER_HOST`` (Podman names itself
    among the version's components; the Docker Engine does not)."""
    import docker

    version = docker.from_env(timeout=30).version()
    names = " ".join(str(c.get("Name", "")) for c in version.get("Components") or [])
    return "podman" if "podman" in names.lower() else "docker"


def tool_environment() -> dict[str, str]:
    """The environment for ``container-engine`` verbs on the engine under test."""
    return {**os.environ, ENGINE_ENV: engine_kind()}


def health_check(test: list[str]) -> dict[str, Any]:
    """A health check the test can drive, as ``host.service(healthcheck=...)`` takes it.

    The engines differ here: the Docker Engine runs checks by itself (every 250 ms here, one
    failure makes it unhealthy), while Podman runs them only when asked, since this sandbox
    lacks the systemd timers it uses (``health`` asks it)."""
    # Podman: an hour, so it runs only when asked.
    interval = 250_000_000 if engine_kind() == "docker" else 3_600_000_000_000
    return {"test": test, "interval": interval, "timeout": 2_000_000_000, "retries": 1}


def health(container: Any, want: str, timeout: float = 15.0) -> str:
    """Wait until the engine says ``container``'s health is ``want``; on Podman, run the check
    first (each run sends a ``health_status`` event, as Docker's own runs do on a change)."""

    def status() -> bool:
        if engine_kind() == "podman":
            podman_healthcheck(container)
        container.reload()
        return str(container.attrs["State"]["Health"]["Status"]) == want

    eventually(status, timeout=timeout, interval=0.1, what=f"{container.name} {want}")
    return want


def podman_cli(why: str) -> list[str]:
    """The podman command line with the sandbox's OCI runtime shim when there is one
    (``container-engine up`` installs both); ``why`` says what needs it when it is missing."""
    podman = shutil.which("podman")
    if podman is None:
        require("podman CLI", why)
    runtime = Path(os.environ.get("CONTAINER_ENGINE_DIR", "/run/container-engine")) / "runc-shim"
    return [str(podman), *(["--runtime", str(runtime)] if runtime.exists() else [])]


def podman_healthcheck(container: Any) -> None:
    """``podman healthcheck run``: Podman runs health checks from systemd timers, which this
    sandbox lacks."""
    command = podman_cli("health checks on Podman need 'podman healthcheck run' here")
    subprocess.run(
        [*command, "healthcheck", "run", container.id],
        capture_output=True,
        timeout=60,
        check=False,
    )


def reconciler(
    host: DockerHost,
    haproxy: HaproxyBox,
    *,
    registry: Any = None,
    state_dir: Path | None = None,
    dry_run: bool = False,
    reload_timeout: float = 10.0,
    table: str = "e2e-test",
    runtime_socket: Path | None = None,
) -> Any:
    """Cosmonaut's parts for one test, limited to the test's containers by ``--keyword``;
    with ``runtime_socket``, the runtime API path too (``--runtime-socket``)."""
    from cosmonaut.apply.container import HaproxyTarget
    from cosmonaut.apply.reload import Applier
    from cosmonaut.daemon.sync import Syncer
    from cosmonaut.discovery.containers import Discoverer
    from cosmonaut.discovery.engine import Engine
    from cosmonaut.registry.client import LocalRegistry
    from cosmonaut.state import History
    from runtime.stores.memory import MemoryStore

    engine = Engine()
    discoverer = Discoverer(engine, haproxy_container=haproxy.name, keyword=host.prefix)
    target = HaproxyTarget(engine, discoverer, reload_timeout=reload_timeout)
    history = History(state_dir / "history", 3) if state_dir else None
    applier = Applier(target, history, dry_run=dry_run)
    syncer = Syncer(
        discoverer,
        registry or LocalRegistry(MemoryStore()),
        applier,
        table=table,
        status_path=state_dir / "status.json" if state_dir else None,
    )
    if runtime_socket is not None:
        from cosmonaut.apply.runtime_api import RuntimeApi, RuntimePath

        syncer.runtime = RuntimePath(
            applier, RuntimeApi(str(runtime_socket)), syncer.metrics, engine
        )
    return syncer


class RunningDaemon:
    """``cosmonaut run`` in a thread of the test process, stopped at exit."""

    def __init__(self, syncer: Any, **options: Any) -> None:
        from cosmonaut.daemon.loop import Schedule
        from cosmonaut.wiring import assemble_daemon

        self.passes: list[Any] = []
        timing = {k: options.pop(k) for k in list(options) if k in Schedule.__dataclass_fields__}
        target = syncer.applier.target
        self.daemon = assemble_daemon(
            syncer,
            target.engine,
            target,
            syncer.discoverer,
            schedule=Schedule(**timing),
            on_pass=self.passes.append,
            **options,
        )
        self.thread = threading.Thread(target=self.daemon.run, daemon=True)

    def __enter__(self) -> RunningDaemon:
        self.thread.start()
        eventually(lambda: self.passes, what="the first reconcile pass")
        return self

    def __exit__(self, *exc: object) -> None:
        self.daemon.stop()
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "the daemon did not stop"

    def reloads(self) -> int:
        return sum(1 for p in self.passes if p.applied and p.applied.outcome == "applied")


class Gated:
    """The in-process registry, but a pass can be held in ``compile`` until ``release()``."""

    def __init__(self) -> None:
        from cosmonaut.registry.client import LocalRegistry
        from runtime.stores.memory import MemoryStore

        self.inner = LocalRegistry(MemoryStore())
        self.label = "gated"
        self.open = threading.Event()
        self.open.set()
        self.holding = threading.Event()

    def hold(self) -> None:
        self.open.clear()

    def release(self) -> None:
        self.open.set()

    def compile(self, payload: dict[str, Any]) -> RegistryResult:
        if not self.open.is_set():
            self.holding.set()
            assert self.open.wait(120), "the test never released the registry"
        return self.inner.compile(payload)

    def close(self) -> None:
        self.open.set()


class RegistryFront:
    """An HTTP registry for one test on a port it binds once (port 0) and keeps: it forwards
    to ``upstream`` (a real ``RegistryServer``), answers ``429`` to the next ``throttle``
    requests, and while ``down`` drops every request without an answer (the registry is
    unreachable), all without ever giving its port up."""

    def __init__(self, upstream: str) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.upstream = upstream
        self.down = False
        self.throttle = 0
        self.answers: list[int | str] = []  # per request: the status sent, or "dropped"
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if front.down:
                    front.answers.append("dropped")
                    self.close_connection = True
                    return
                if front.throttle > 0:
                    front.throttle -= 1
                    self.reply(429, "application/problem+json", b'{"title": "Slow down"}', {})
                    return
                status, content_type, data, extra = front.forward(body, self.headers)
                self.reply(status, content_type, data, extra)

            def reply(
                self, status: int, content_type: str, data: bytes, extra: dict[str, str]
            ) -> None:
                front.answers.append(status)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def forward(self, body: bytes, headers: Any) -> tuple[int, str, bytes, dict[str, str]]:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            self.upstream,
            data=body,
            method="POST",
            headers={k: headers[k] for k in ("Content-Type", "Accept") if headers.get(k)},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=30) as response:
                status, reply_headers, data = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, reply_headers, data = error.code, error.headers, error.read()
        extra = {k: v for k, v in reply_headers.items() if k.lower().startswith("lambda-registry-")}
        return status, reply_headers.get("Content-Type", "text/plain"), data, extra

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def web_config(*containers: Any) -> str:
    """The compiled config routing service ``web`` (``web.example``) to ``containers``."""
    from runtime.pipeline import compile_payload

    payload = {
        "table": "e2e-test",
        "running": [],
        "candidates": [
            {
                "serviceName": "web",
                "predicate": "web.example",
                "containers": [{"id": short(c), "ip": f"{ip_of(c)}:8080"} for c in containers],
            }
        ],
    }
    return compile_payload(payload).text


def leftovers(haproxy: HaproxyBox) -> list[str]:
    """Files in the HAProxy container's config folder other than haproxy.cfg."""
    listing = haproxy.container.exec_run(["ls", "-a", "/usr/local/etc/haproxy"]).output.decode()
    return [name for name in listing.split() if name not in (".", "..", "haproxy.cfg")]


def load_clients(haproxy: HaproxyBox, host: str) -> subprocess.Popen[str]:
    """Start tests/support/load_clients.py against ``haproxy`` for ``host``: continuous GETs with
    and without keep-alive, in a process of their own (in the test's process they would take
    the interpreter lock from the calls under test). It prints ``ready``, then, once its stdin
    closes, a JSON summary; its stdin and stdout are pipes."""
    script = Path(__file__).with_name("load_clients.py")
    clients = subprocess.Popen(
        [sys.executable, str(script), haproxy.ip, host],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert clients.stdin is not None and clients.stdout is not None
    return clients


def requests_sent(clients: subprocess.Popen[str]) -> dict[str, int]:
    """How many requests each of ``load_clients``' clients has sent so far."""
    assert clients.stdin is not None and clients.stdout is not None
    clients.stdin.write("count\n")
    clients.stdin.flush()
    counts: dict[str, int] = json.loads(clients.stdout.readline())
    return counts


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM a ``cosmonaut run`` process (it stops cleanly), SIGKILL after 30 s."""
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def cosmonaut_status(state_dir: Path, format: str = "text") -> str:
    """What ``cosmonaut status`` prints."""
    return cli("status", "--state-dir", str(state_dir), "--format", format).stdout
