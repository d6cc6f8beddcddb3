"""Apply safety without a container engine: a config haproxy refuses never takes the place of
the running one.

``HaproxyTarget`` reaches HAProxy only through the Engine API's calls (exec, copy a file in
and out, signal, processes, logs). Here those calls are answered by a real haproxy (Debian's,
in master-worker mode) running on this machine: the "container's" file system is this one,
and an exec is a local subprocess, so ``haproxy -c`` and ``mv`` are the real programs. Its
configs bind abstract sockets (``abns@``), which no registry may send: the applier here takes
them as the tests' own (``allow=None``); ``tests/cosmonaut/test_registry_trust.py`` holds the
allow-list.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from cosmonaut.apply.container import HaproxyTarget
from cosmonaut.apply.reload import Applier
from cosmonaut.apply.runtime_api import RuntimeApi, RuntimePath
from cosmonaut.discovery.containers import Discoverer, HaproxyContainer
from cosmonaut.discovery.engine import JSON, Engine, ExecResult, NotFound, Process
from cosmonaut.metrics import Metrics
from runtime.bundle import referenced_maps

NAME = "haproxy"


def config(socket: str, frontend_rule: str = "default_backend web") -> str:
    return f"""global
    log stderr format short local0 notice

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend http
    bind abns@{socket}
    {frontend_rule}

backend web
    http-request return status 200 content-type text/plain string ok
"""


class LocalHaproxy(Engine):
    """The Engine calls ``HaproxyTarget`` and ``Discoverer.haproxy`` make, answered by a
    haproxy process on this machine. ``shell``: whether ``sh`` exists "in the container"
    (without it, the target checks and moves in two execs)."""

    def __init__(self, binary: str, config_path: Path, *, shell: bool) -> None:
        super().__init__(environment={"DOCKER_HOST": "unix:///nonexistent/no-engine.sock"})
        self.binary = binary
        self.config_path = config_path
        self.shell = shell
        self.log = config_path.with_name("haproxy.log")
        self.execs: list[list[str]] = []
        self.command = (binary, "-W", "-db", "-f", str(config_path))
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        self.started_at = str(uuid.uuid4())

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def inspect(self, container: str) -> JSON:
        if container != NAME:
            raise NotFound(f"no container {container}", file="docker")
        return {
            "Id": NAME,
            "Name": f"/{NAME}",
            "State": {"Running": self.process.poll() is None, "StartedAt": self.started_at},
            "Config": {"Cmd": list(self.command)},
            "NetworkSettings": {"Networks": {}},
        }

    def exec(self, container: str, command: list[str], *, user: str = "") -> ExecResult:
        self.execs.append(command)
        if command[0] == "sh" and not self.shell:
            return ExecResult(127, 'exec: "sh": executable file not found in $PATH')
        done = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60, check=False
        )
        return ExecResult(done.returncode, done.stdout.decode("utf-8", "replace"))

    def put_files(
        self,
        container: str,
        directory: str,
        files: dict[str, bytes],
        *,
        mode: int = 0o644,
        owner: tuple[int, int] = (0, 0),
    ) -> None:
        for name, data in files.items():
            (Path(directory) / name).write_bytes(data)

    def get_file(self, container: str, path: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{path} in {container}", file="docker") from None

    def kill(self, container: str, signal_name: str) -> None:
        os.kill(self.process.pid, signal.Signals[signal_name])

    def processes(self, container: str) -> list[Process]:
        listed = subprocess.run(
            # -ww: whole command lines (ps cuts them to $COLUMNS otherwise)
            ["ps", "-e", "-ww", "-o", "pid=,ppid=,args="],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        master = self.process.pid
        found = []
        for line in listed.splitlines():
            pid, ppid, args = line.split(None, 2)
            if master in (int(pid), int(ppid)):
                found.append(Process(int(pid), int(ppid), args))
        return found

    def logs(self, container: str, *, tail: int) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-tail:])


@pytest.fixture(params=[True, False], ids=["one-sh-exec", "no-sh-two-execs"])
def running(request: pytest.FixtureRequest, haproxy: str, tmp_path: Path) -> Iterator[LocalHaproxy]:
    """A haproxy in master-worker mode on a good config, its first worker up."""
    path = tmp_path / "haproxy.cfg"
    path.write_text(config(f"cosmonaut-apply-{uuid.uuid4().hex}"))
    engine = LocalHaproxy(haproxy, path, shell=request.param)
    try:
        deadline = time.monotonic() + 30  # a hang guard: haproxy starts in milliseconds
        while "Loading success." not in engine.logs(NAME, tail=50):
            assert engine.process.poll() is None, engine.logs(NAME, tail=50)
            assert time.monotonic() < deadline, "haproxy never said 'Loading success.'"
            time.sleep(0.02)
        yield engine
    finally:
        engine.stop()


def refused_by_haproxy(haproxies: dict[str, str], text: str, tmp_path: Path) -> str:
    """What ``haproxy -c`` 2.6, the one running here, says about ``text``; 2.6 and 2.8 must
    both refuse it."""
    path = tmp_path / "refused.cfg"
    path.write_text(text)
    said = {}
    for version, binary in haproxies.items():
        done = subprocess.run(
            [binary, "-c", "-f", str(path)], capture_output=True, text=True, check=False
        )
        assert done.returncode != 0, f"the test's refused config passes haproxy {version} -c"
        said[version] = [
            line for line in done.stdout.splitlines() + done.stderr.splitlines() if "ALERT" in line
        ]
    path.unlink()
    assert said["2.6"]
    return said["2.6"][0].split(" : ", 1)[1]  # without the pid, which differs from run to run


def test_a_config_haproxy_refuses_never_replaces_the_running_one(
    running: LocalHaproxy, haproxies: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = running.config_path
    before = path.read_bytes()
    inode = path.stat().st_ino
    socket = before.decode().split("abns@")[1].split()[0]
    # Our grammar reads it, haproxy refuses it: only `haproxy -c` stands in the way.
    refused = config(socket, "use_backend missing")
    said = refused_by_haproxy(haproxies, refused, tmp_path_factory.mktemp("oracle"))
    target = HaproxyTarget(running, Discoverer(running, haproxy_container=NAME))
    workers = target.workers(target.locate()).workers

    result = Applier(target, allow=None).apply(refused)

    assert result.outcome == "rejected"
    assert result.message.startswith("haproxy -c refused the config:\n")
    assert said in result.message  # what haproxy said, in its words
    assert path.read_bytes() == before
    assert path.stat().st_ino == inode  # never moved away and back (a rollback would)
    assert sorted(p.name for p in path.parent.iterdir()) == ["haproxy.cfg", "haproxy.log"]
    assert target.workers(target.locate()).workers == workers  # no reload either
    checks = [c for c in running.execs if "-c" in c]
    assert checks, "haproxy -c never ran"


def test_check_and_move_moves_only_what_haproxy_accepts(
    running: LocalHaproxy, haproxy: str
) -> None:
    path = running.config_path
    good = path.read_text()
    socket = good.split("abns@")[1].split()[0]
    target = HaproxyTarget(running, Discoverer(running, haproxy_container=NAME))
    container: HaproxyContainer = target.locate()

    temporary = target.write_temporary(container, config(socket, "use_backend missing"))
    refused = target.check_and_move(container, temporary)
    assert not refused.moved
    assert "unable to find required use_backend: 'missing'" in refused.output
    assert path.read_text() == good
    assert not Path(temporary).exists()  # the refused file is gone as well

    accepted_text = config(socket, "default_backend web\n    http-request set-var(txn.x) int(1)")
    temporary = target.write_temporary(container, accepted_text)
    accepted = target.check_and_move(container, temporary)
    assert accepted.moved
    assert path.read_text() == accepted_text
    assert not Path(temporary).exists()


def test_a_config_haproxy_accepts_is_moved_into_place_and_reloaded(running: LocalHaproxy) -> None:
    """The same harness lets a good config through: the refusals above are haproxy's."""
    path = running.config_path
    socket = path.read_text().split("abns@")[1].split()[0]
    target = HaproxyTarget(running, Discoverer(running, haproxy_container=NAME))
    workers = target.workers(target.locate()).workers
    accepted = config(socket, "default_backend web\n    http-request set-var(txn.x) int(1)")

    result = Applier(target, allow=None).apply(accepted)

    assert result.outcome == "applied", result.message
    assert path.read_text() == accepted
    assert target.workers(target.locate()).workers - workers  # a new worker runs it


# -- the runtime path: a registry's words never reach the runtime API unchecked ----------------

# `{hostile}` is the address word of the registry's new server: as the runtime API splits
# commands at `;`, it once paused the frontend before haproxy -c ever saw the config.
HOSTILE = "127.0.0.1; disable frontend http"


def slots_config(socket: str, frontend: str, *servers: str) -> str:
    lines = "".join(f"    server {server}\n" for server in servers)
    return f"""global
    log stderr format short local0 notice
    stats socket {socket} mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend http
    bind abns@{frontend}
    default_backend web

backend web
{lines}"""


def frontend_status(socket: Path) -> str:
    """The frontend's status in ``show stat`` (OPEN, or STOP once disabled), read on a
    connection of the test's own (Cosmonaut's client sends only its own commands)."""
    import socket as sockets

    with sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM) as connection:
        connection.settimeout(5)
        connection.connect(str(socket))
        connection.sendall(b"show stat\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    for row in answer.decode().splitlines():
        fields = row.split(",")
        if fields[:2] == ["http", "FRONTEND"]:
            return fields[17]
    raise AssertionError(f"no frontend in show stat: {answer[:300]!r}")


@pytest.fixture
def with_slots(haproxy: str, tmp_path: Path) -> Iterator[tuple[LocalHaproxy, Path, str]]:
    """A haproxy in master-worker mode whose backend has a free slot, its runtime API on a
    unix socket; (engine, socket, the frontend's abstract socket name)."""
    socket = tmp_path / "admin.sock"
    frontend = f"cosmonaut-runtime-{uuid.uuid4().hex}"
    path = tmp_path / "haproxy.cfg"
    path.write_text(
        slots_config(str(socket), frontend, "c1 127.0.0.1:9", "slot-1 127.0.0.1:1 disabled")
    )
    engine = LocalHaproxy(haproxy, path, shell=True)
    try:
        deadline = time.monotonic() + 30  # a hang guard: haproxy starts in milliseconds
        while not socket.exists() or "Loading success." not in engine.logs(NAME, tail=50):
            assert engine.process.poll() is None, engine.logs(NAME, tail=50)
            assert time.monotonic() < deadline, "haproxy never opened its stats socket"
            time.sleep(0.02)
        yield engine, socket, frontend
    finally:
        engine.stop()


def test_an_address_word_from_the_registry_never_reaches_the_runtime_api(
    with_slots: tuple[LocalHaproxy, Path, str],
) -> None:
    """A new container's server whose address is not an IP address cannot be set through
    the runtime API: the change takes the reload path, where haproxy -c refuses it. The
    frontend still serves and the config file is unchanged. (The allow-list would refuse the
    config first: it is off here, to show the runtime path's own check.)"""
    engine, socket, frontend = with_slots
    before = engine.config_path.read_text()
    hostile = slots_config(
        str(socket),
        frontend,
        "c1 127.0.0.1:9",
        f"c2 '{HOSTILE}:80'",
        "slot-1 127.0.0.1:1 disabled",
    )
    target = HaproxyTarget(engine, Discoverer(engine, haproxy_container=NAME))
    applier = Applier(target, allow=None)
    runtime = RuntimePath(applier, RuntimeApi(str(socket)), Metrics(), engine)

    result = runtime.apply(hostile)

    assert frontend_status(socket) == "OPEN"
    assert result.outcome == "rejected", result.message
    assert result.message.startswith("haproxy -c refused the config:\n")
    assert engine.config_path.read_text() == before


def test_the_server_state_is_saved_only_beside_the_stats_socket(
    with_slots: tuple[LocalHaproxy, Path, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Before a reload Cosmonaut writes ``show servers state`` into the config's
    ``server-state-file``, as root in the HAProxy container: only where the render options
    put it, beside the runtime API socket, never at another path a registry names."""
    engine, socket, frontend = with_slots
    target = HaproxyTarget(engine, Discoverer(engine, haproxy_container=NAME))
    runtime = RuntimePath(Applier(target, allow=None), RuntimeApi(str(socket)), Metrics(), engine)
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "passwd"
    beside = socket.parent / "server-state"
    for path, saved in ((elsewhere, False), (beside, True)):
        text = slots_config(
            str(socket), frontend, "c1 127.0.0.1:9", "slot-1 127.0.0.1:1 disabled"
        ).replace("    stats socket", f"    server-state-file {path}\n    stats socket")
        result = runtime.apply(text)
        assert result.outcome == "applied", result.message
        assert path.exists() is saved, path
    assert beside.read_text().startswith("1\n# be_id be_name srv_id srv_name")


# -- a service haproxy refuses: left out, the rest applied ------------------------------------


def fleet_bundle(frontend: str, routing: str) -> dict[str, str]:
    """A registry's bundle for two hosts' services, one of which ('bad', from an older
    record the validators never saw) has a line haproxy refuses; its frontend binds the
    test's abstract socket."""
    from compiler.lower import lower_bundle
    from compiler.models import ContainerRef, Service, TimeoutSettings
    from compiler.options import RenderOptions
    from grammar.roundtrip import print_verified_bundle

    def service(name: str, ip: str) -> Service:
        return Service(
            name=name,
            mode="host",
            predicate=f"{name}.example.com",
            containers=(ContainerRef(id=f"{name}-1", ip=ip),),
        )

    bad = service("bad", "127.0.0.1:9").model_copy(
        update={"timeouts": TimeoutSettings.model_construct(server="10xyz")}
    )
    options = RenderOptions(
        user=None,
        group=None,
        daemon=False,
        stats_socket=None,
        server_state_file=None,
        routing=routing,  # type: ignore[arg-type]
    )
    files = print_verified_bundle(lower_bundle([service("good", "127.0.0.1:9"), bad], options))
    config = next(iter(files))
    files[config] = files[config].replace("    bind :80\n", f"    bind abns@{frontend}\n")
    return files


@pytest.mark.parametrize("routing", ["acl", "map"])
def test_a_service_haproxy_refuses_is_left_out_and_the_rest_applied(
    running: LocalHaproxy,
    routing: str,
    haproxies: dict[str, str],
    assert_haproxy_accepts: Callable[[Mapping[str, str]], None],
) -> None:
    path = running.config_path
    socket = path.read_text().split("abns@")[1].split()[0]
    files = fleet_bundle(socket, routing)
    text, *maps = files.items()
    target = HaproxyTarget(running, Discoverer(running, haproxy_container=NAME))
    workers = target.workers(target.locate()).workers
    applier = Applier(target, allow=None)

    result = applier.apply(text[1], maps=tuple(maps))

    assert result.outcome == "pruned", result.message
    assert result.ok
    assert [name for name, _ in result.left_out] == ["bad"]
    why = result.left_out[0][1]
    assert "`timeout server 10xyz`" in why
    assert "unexpected character 'x' in 'timeout server'" in why  # haproxy's own words
    assert "without 1 service(s) haproxy -c refused: bad" in result.message
    placed = path.read_text()
    assert target.workers(target.locate()).workers - workers  # reloaded: a new worker runs it
    beside = {p.name: p.read_text() for p in path.parent.glob("*.map")}
    assert set(beside) == referenced_maps(placed)  # exactly the maps the config reads
    routes = placed + "".join(beside.values())
    assert "backend good" in placed and "good.example.com" in routes
    assert "backend bad" not in placed and "bad" not in "".join(beside.values())
    assert "bad.example.com" not in routes
    if routing == "map":  # the host map lost an entry: a new name for the new content
        assert len(beside) == 1 and set(beside).isdisjoint(files)
    assert_haproxy_accepts({"haproxy.cfg": placed, **beside})
    for version, binary in haproxies.items():  # what the registry sent: refused by both
        done = subprocess.run(
            [binary, "-c", "-f", "-"], input=text[1], capture_output=True, text=True, check=False
        )
        assert done.returncode != 0, version

    # The same bundle at the next pass: it runs already, and haproxy -c is not run again.
    checks = len([c for c in running.execs if "-c" in c])
    again = applier.apply(text[1], maps=tuple(maps))
    assert again.outcome == "unchanged", again.message
    assert [name for name, _ in again.left_out] == ["bad"]
    assert len([c for c in running.execs if "-c" in c]) == checks
