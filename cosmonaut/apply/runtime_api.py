"""HAProxy's runtime API: containers in and out of existing backends without a reload, and
drains.

The API is HAProxy's ``stats socket``, a unix socket on a volume that the HAProxy container
and Cosmonaut share (``--runtime-socket`` is its path on Cosmonaut's side), so no admin
interface listens on any network. One connection per command batch, in the socket's
non-interactive mode: HAProxy answers and closes.

``RuntimePath.apply`` takes the registry's config and

1. lays it onto the running slots (``cosmonaut.slots.place``);
2. when only slots are filled or emptied, sends ``set server B/S addr IP port P``,
   ``enable health B/S``, ``set server B/S state ready`` (or ``state maint``) and then
   rewrites the config file in the container to say the same (``haproxy -c``, a rename, no
   reload), so a later reload keeps every server where it is;
3. otherwise, or when any command fails, saves the servers' state (``show servers state``
   into ``server-state-file``) and takes the full path (``Applier.apply``: round trip,
   ``haproxy -c``, reload, confirm, roll back), with the reason counted and logged.

``drain`` puts a container's server in ``drain`` at once (a stop signal, or unhealthy):
no new clients, in-flight and sticky ones still served until the container leaves.

The words of every command come from the registry's config (backend and server names,
addresses), and the runtime API reads ``;`` and a line break as the end of a command. So
``RuntimeApi`` sends only the commands above, each word checked (names as identifiers,
addresses parsed with ``ipaddress``, ports as numbers from 1 to 65535), and a batch with
one word out of place sends nothing. A config a registry may not send never gets here.
"""

from __future__ import annotations

import dataclasses
import posixpath
import socket
import threading
import time

from compiler.ast import Config, Global, Statement
from compiler.errors import LocatedError
from cosmonaut import logs
from cosmonaut.apply.allowed import NAME, ip_address
from cosmonaut.apply.reload import Applier, ApplyResult
from cosmonaut.apply.slots import Placed, Plan, place, runtime_plan, slots_in_use
from cosmonaut.discovery.containers import HaproxyContainer
from cosmonaut.discovery.engine import Engine, engine_time
from cosmonaut.discovery.events import EXITED
from cosmonaut.errors import ApplyError
from cosmonaut.metrics import Metrics
from cosmonaut.state import digest
from grammar.parser import parse
from grammar.roundtrip import print_verified

# Answers of the commands we send that mean success (besides none at all); anything else is
# an error message ("No such server.", "Invalid addr ...", "Permission denied", ...).
_OK_ANSWERS = ("IP changed from", "no need to change the addr", "port changed from")


class RuntimeApiError(ApplyError):
    """A runtime API command failed, or the socket cannot be reached."""


def command_problem(command: str) -> str | None:
    """Why ``command`` is not one that Cosmonaut sends, word by word, or None."""
    words = command.split(" ")
    match words:
        case ["set", "server", target, "addr", address, "port", port]:
            return _target_problem(target) or _address_problem(address, port)
        case ["set", "server", target, "state", state]:
            if state not in ("ready", "drain", "maint"):
                return f"{state[:40]!r} is not a server state"
            return _target_problem(target)
        case ["enable", "health", target]:
            return _target_problem(target)
        case ["show", "servers", "state", backend]:
            return None if NAME.fullmatch(backend) else f"{backend[:40]!r} is not a name"
        case ["show", "servers", "state"] | ["show", "info"]:
            return None
    return "not a command Cosmonaut sends"


def _target_problem(target: str) -> str | None:
    backend, slash, server = target.partition("/")
    if not (slash and NAME.fullmatch(backend) and NAME.fullmatch(server)):
        return f"{target[:80]!r} is not a backend/server pair of names"
    return None


def _address_problem(address: str, port: str) -> str | None:
    if ip_address(address) is None:
        return f"{address[:80]!r} is not an IP address"
    if not (port.isascii() and port.isdigit() and str(int(port)) == port):
        return f"{port[:20]!r} is not a port"
    if not 1 <= int(port) <= 65535:
        return f"port {port} is not from 1 to 65535"
    return None


class RuntimeApi:
    """Commands on HAProxy's stats socket (a unix socket path)."""

    def __init__(self, path: str, *, timeout: float = 2.0) -> None:
        self.path = path
        self.timeout = timeout

    def send(self, command: str) -> str:
        """One command on a fresh connection; the answer. A command Cosmonaut does not send
        (``command_problem``) raises ``RuntimeApiError`` without connecting."""
        _refuse_unless_known((command,))
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                connection.settimeout(self.timeout)
                connection.connect(self.path)
                connection.sendall(command.encode() + b"\n")
                chunks = []
                while chunk := connection.recv(65536):
                    chunks.append(chunk)
        except OSError as error:
            raise RuntimeApiError(
                f"runtime API {self.path}: {error.strerror or error}", file="runtime-api"
            ) from None
        return b"".join(chunks).decode("utf-8", "replace")

    def run(self, commands: tuple[str, ...]) -> None:
        """Each command in order, one connection each; raises at the first refused one, and
        before sending any when one of them is not a command Cosmonaut sends."""
        _refuse_unless_known(commands)
        for command in commands:
            answer = self.send(command).strip()
            if answer and (not answer.startswith(_OK_ANSWERS) or "\n" in answer):
                raise RuntimeApiError(f"{command!r}: HAProxy said {answer!r}", file="runtime-api")


def _refuse_unless_known(commands: tuple[str, ...]) -> None:
    for command in commands:
        problem = command_problem(command)
        if problem is not None:
            raise RuntimeApiError(f"not sent: {command[:120]!r}: {problem}", file="runtime-api")


class RuntimePath:
    """The runtime path in front of ``Applier``'s full one (see the module docstring)."""

    def __init__(self, applier: Applier, api: RuntimeApi, metrics: Metrics, engine: Engine) -> None:
        self.applier = applier
        self.engine = engine  # the HAProxy container's engine: inspects, the server state file
        self.api = api
        self.metrics = metrics
        self.last_path: str | None = None  # "runtime" or "reload", of the last change
        self.last_reason: str | None = None  # why the last change reloaded
        self._servers: dict[str, tuple[str, str]] = {}  # container short id -> (backend, slot)
        # Containers whose server was set aside out of a pass (drain, maint), by state.
        self._aside: dict[str, str] = {}
        # Containers whose server went to maint at their exit: (full id, when they died).
        self._died: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._parsed: tuple[str, Config] | None = None
        self._applied: tuple[str, str] | None = None  # (the registry's text, the file's)

    def apply(
        self,
        text: str,
        haproxy: HaproxyContainer | None = None,
        *,
        maps: tuple[tuple[str, str], ...] = (),
        force: bool = False,
    ) -> ApplyResult:
        """Like ``Applier.apply`` (``force``: the reload path, since only a reload loads
        certificate files). With map routing, a change the runtime API can make leaves
        the frontend, hence its (digest-named) map files, as they are: only a reload writes
        maps, and ``maps`` go to every ``Applier.apply`` call."""
        started = time.monotonic()
        target = self.applier.target
        if self.applier.dry_run:
            return self.applier.apply(text, haproxy, maps=maps)
        haproxy = target.located(haproxy)
        running_text = self.applier.running_config(haproxy)
        with self._lock:
            aside = "maint" in self._aside.values()
        if self._applied == (text, running_text) and not aside and not force:
            # A resync with nothing new: no parse (seconds at 10 000 services).
            return ApplyResult(
                "unchanged",
                "the config is identical to the running one",
                digest(running_text or ""),
                time.monotonic() - started,
            )
        try:
            new = parse(text, file="<registry>")
        except LocatedError:
            return self.applier.apply(text, haproxy, maps=maps)  # rejected there, with its message
        if self.applier.refusal(new, maps) is not None:
            # Refused there too, with its message: before any command or state file.
            return self.applier.apply(text, haproxy, maps=maps)
        running = self._running_config(running_text)
        if force:
            why = "certificate files changed"
            return self._full(text, new, running, haproxy, "certificates", why, maps, force=True)
        if running is None or not slots_in_use(new):
            return self._full(text, new, running, haproxy, "first", "no running config", maps)
        placed = place(new, running, keep_capacity=True)
        if placed.grew:
            why = f"backend(s) {', '.join(placed.grew)} need more slots"
            return self._full(text, new, running, haproxy, "slots", why, maps)
        plan = runtime_plan(running, placed.config)
        if isinstance(plan, str):
            return self._full(text, new, running, haproxy, "structural", plan, maps)
        refilled = {c.split()[2] for c in plan.commands if " addr " in c}
        back = self._back(placed.servers, refilled)
        if not plan.commands:
            live = print_verified(placed.config)
            if live == running_text:
                self._applied = (text, live)
                self._adopt(placed.servers)
                if back:
                    self._run_quietly(back)
                return ApplyResult(
                    "unchanged",
                    "the config is identical to the running one",
                    digest(live),
                    time.monotonic() - started,
                )
            return self._full(text, new, running, haproxy, "structural", "free slots changed", maps)
        return self._by_runtime(text, new, running, haproxy, placed, plan, back, maps, started)

    def _by_runtime(
        self,
        text: str,
        new: Config,
        running: Config,
        haproxy: HaproxyContainer,
        placed: Placed,
        plan: Plan,
        back: tuple[str, ...],
        maps: tuple[tuple[str, str], ...],
        started: float,
    ) -> ApplyResult:
        """Send the change's commands; then write the file HAProxy now matches."""
        steps: dict[str, float] = {}
        try:
            self.api.run(plan.commands + back)
        except RuntimeApiError as error:
            return self._full(text, new, running, haproxy, "command", error.message, maps)
        steps["runtime"] = time.monotonic() - started
        self._adopt(placed.servers)
        # HAProxy routes the change now; printing the file (with its round-trip check) and
        # writing it come after, off the routing path.
        try:
            live = print_verified(placed.config)
        except LocatedError:
            self.applier.forget()
            raise
        self._parsed = (live, placed.config)  # the next change starts from it, unparsed
        self._write(haproxy, live)
        self._applied = (text, live)
        steps["write+check"] = time.monotonic() - started - steps["runtime"]
        self.metrics.inc("cosmonaut_runtime_updates_total")
        self.metrics.inc("cosmonaut_reloads_avoided_total")
        self.last_path, self.last_reason = "runtime", None
        return ApplyResult(
            "runtime",
            f"runtime API, no reload: {_slots_text(plan)}",
            digest(live),
            time.monotonic() - started,
            steps=steps,
        )

    def drain(self, container: str, why: str, at: float | None = None) -> bool:
        """Put ``container``'s server (a short or full id) in ``drain``, or in ``maint`` when
        it exited (``why`` is ``exited``, ``at`` when the engine says it died); False when it
        has no server or the API failed.

        The pass that follows removes an exited container. One that runs again (a restart,
        same address) is made ``ready`` again by a pass once the engine says it started after
        it died: a pass that listed the containers just before the exit still sees it
        running, and must not send traffic to an address that no longer answers."""
        short = container[:12]
        state = "maint" if why == EXITED else "drain"
        with self._lock:
            where = self._servers.get(short)
            already = self._aside.get(short) == state
        if where is None:
            return False
        if already:
            return True  # the event and the pass both saw it: one drain
        backend, slot = where
        try:
            self.api.run((f"set server {backend}/{slot} state {state}",))
        except RuntimeApiError as error:
            logs.warning(
                "drain failed", container=short, server=f"{backend}/{slot}", error=str(error)
            )
            return False
        with self._lock:
            self._aside[short] = state
            if state == "maint":
                self._died[short] = (container, at if at is not None else time.time())
        if state == "drain":
            self.metrics.inc("cosmonaut_drains_total")
        logs.info(f"server set to {state}", container=short, server=f"{backend}/{slot}", reason=why)
        return True

    def _run_quietly(self, commands: tuple[str, ...]) -> None:
        try:
            self.api.run(commands)
        except RuntimeApiError as error:
            logs.warning("runtime API command failed", error=str(error))

    def _running_config(self, text: str | None) -> Config | None:
        if text is None:
            return None
        if self._parsed is not None and self._parsed[0] is text:
            return self._parsed[1]
        try:
            config = parse(text, file="<running>")
        except LocatedError:
            return None
        self._parsed = (text, config)
        return config

    def _adopt(self, servers: dict[str, tuple[str, str]]) -> None:
        with self._lock:
            self._servers = dict(servers)
            self._aside = {k: v for k, v in self._aside.items() if k in servers}
            self._died = {k: v for k, v in self._died.items() if k in self._aside}

    def _back(self, servers: dict[str, tuple[str, str]], refilled: set[str]) -> tuple[str, ...]:
        """``state ready`` for servers set aside (drain, maint) that carry traffic again, and
        are not filled anew by this change's commands: the exited container runs again, or
        another container now has the server (the engine gave it the same address, and the
        placement kept the server's name)."""
        with self._lock:
            previous = dict(self._servers)
            aside = dict(self._aside)
            died = dict(self._died)
        taken = set(servers.values())
        back: dict[str, tuple[str, str]] = {}
        for key, state in aside.items():
            where = servers.get(key)
            if where is not None:
                if state == "maint" and self._started_since(*died.get(key, (key, 0.0))):
                    back[key] = where
            elif previous.get(key) in taken:
                back[key] = previous[key]
        with self._lock:
            for key in back:
                self._aside.pop(key, None)
                self._died.pop(key, None)
        return tuple(
            f"set server {backend}/{slot} state ready"
            for backend, slot in back.values()
            if f"{backend}/{slot}" not in refilled
        )

    def _started_since(self, container: str, died: float) -> bool:
        """Whether the engine says ``container`` runs, started after ``died``."""
        try:
            state = self.engine.inspect(container).get("State") or {}
        except LocatedError:
            return False  # gone, or the engine away: stays in maint; a later pass looks again
        started = engine_time(state.get("StartedAt"))
        return bool(state.get("Running")) and started is not None and started > died

    def _write(self, haproxy: HaproxyContainer, live: str) -> None:
        """The config file says what runs now (checked, moved, not reloaded)."""
        target = self.applier.target
        try:
            temporary = target.write_temporary(haproxy, live)
            checked = target.check_and_move(haproxy, temporary)
        except LocatedError as error:
            logs.error("runtime config not written", error=str(error))
            self.applier.forget()
            return
        if not checked.moved:
            logs.error("runtime config refused by haproxy -c", output=checked.output.strip())
            self.applier.forget()
            return
        self.applier.adopt(live)

    def _full(
        self,
        text: str,
        new: Config,
        running: Config | None,
        haproxy: HaproxyContainer,
        reason: str,
        why: str,
        maps: tuple[tuple[str, str], ...] = (),
        *,
        force: bool = False,
    ) -> ApplyResult:
        """The reload path, with the servers' state saved first so the reload keeps it."""
        placed = place(new, running, keep_capacity=False)
        live = print_verified(placed.config) if placed.config is not new else text
        if live == self.applier.running_config(haproxy) and not force:
            self._adopt(placed.servers)
            return self.applier.apply(live, haproxy, maps=maps)  # "unchanged"
        self._save_state(haproxy, new)
        result = self.applier.apply(live, haproxy, maps=maps, force=force)
        if result.ok:
            self._applied = (text, live)
            # The saved state says maint for a container that exited and runs again.
            back = self._back(placed.servers, set())
            self._adopt(placed.servers)
            if back:
                self._run_quietly(back)
        if result.outcome in ("applied", "pruned"):
            self.last_path, self.last_reason = "reload", why
            if reason != "first":
                self.metrics.fallback(reason)
            logs.info("reloaded instead of runtime API", reason=reason, detail=why)
            return dataclasses.replace(result, message=f"{result.message} ({why})")
        return result

    def _save_state(self, haproxy: HaproxyContainer, config: Config) -> None:
        path = _server_state_file(config)
        if path is None:
            return
        try:
            state = self.api.send("show servers state")
            directory, _, name = path.rpartition("/")
            self.engine.put_file(haproxy.id, directory or "/", name, state.encode())
        except (RuntimeApiError, LocatedError) as error:
            logs.warning("server state not saved before the reload", error=str(error))


def _server_state_file(config: Config) -> str | None:
    """Where to save the servers' state: the config's ``server-state-file``, if it sits
    beside the runtime API socket (on the shared volume, as the render options put it).
    Cosmonaut writes it as root in the HAProxy container, so never anywhere else."""
    state = _global_args(config, "server-state-file")
    if not state:
        return None
    path = state[0]
    stats = _global_args(config, "stats")
    if not stats or len(stats) < 2 or posixpath.dirname(stats[1]) != posixpath.dirname(path):
        logs.warning(
            "server state not saved: the server-state-file is not beside the stats socket",
            path=path,
        )
        return None
    return path


def _global_args(config: Config, keyword: str) -> tuple[str, ...] | None:
    for section in config.sections:
        if isinstance(section, Global):
            for line in section.body:
                if isinstance(line, Statement) and line.keyword == keyword:
                    return line.args
    return None


def _slots_text(plan: Plan) -> str:
    return f"{plan.filled} slot(s) filled, {plan.emptied} emptied"
