"""The HAProxy container: read, write, check, move, reload and confirm, all through the Engine API.

HAProxy must run in master-worker mode (``haproxy -W``; the official image's entrypoint adds
``-W -db``). A reload is ``SIGUSR2`` to the container's main process, the master: it re-reads
the config, forks a new worker that takes over the listening sockets, and lets the old workers
finish their connections, so no request is dropped. The reload is confirmed from the master's
log lines ("New worker (N) forked", "Loading success.") together with a worker process that was
not there before, or, for a HAProxy that logs nothing, by that new process alone. When the
master refuses the new config it says "Loading failure!" and keeps the old workers.

The log and the process table never exchange pids: the master logs pids of the container's PID
namespace, while the Engine's process table (``GET /containers/{id}/top``) lists host pids on
Docker and the container's own on Podman. Each source is compared only with itself.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import posixpath
import re
import threading
import time
from dataclasses import dataclass

from cosmonaut.discovery.containers import Discoverer, HaproxyContainer
from cosmonaut.discovery.engine import Engine, EngineError, ExecResult, NotFound, Process
from cosmonaut.errors import ApplyError, HaproxyContainerError

_counter = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Workers:
    master: int
    workers: frozenset[int]
    loading: bool  # the master is re-reading its config (it runs with -sf/-x until done)


@dataclass(frozen=True, slots=True)
class Checked:
    moved: bool  # haproxy -c accepted the file, and it replaced the config
    output: str


# sh -c SCRIPT HAPROXY NEW CONFIG: $0 is haproxy, $1 the new file, $2 the config.
_CHECK_FAILED = 97
_MOVE_FAILED = 98
_CHECK_AND_MOVE = '"$0" -c -f "$1" || { rm -f "$1"; exit 97; }; mv -f "$1" "$2" || exit 98'


@dataclass(frozen=True, slots=True)
class Mark:
    """The state just before a reload: the worker processes, and the log's tail when the
    master writes one."""

    lines: tuple[str, ...] | None
    workers: Workers


class _Refused(Exception):
    pass


class _TimedOut(Exception):
    pass


_TAIL = 200
_ANCHOR = 10
_RELOADING = "Reloading HAProxy"
_NEW_WORKER = re.compile(r"New worker \((\d+)\) forked")


@dataclass(frozen=True, slots=True)
class Reloaded:
    new_workers: frozenset[int]
    seconds: float


class HaproxyTarget:
    def __init__(
        self,
        engine: Engine,
        discoverer: Discoverer,
        *,
        reload_timeout: float = 10.0,
        poll_interval: float = 0.02,
    ) -> None:
        self.engine = engine
        self.discoverer = discoverer
        self.reload_timeout = reload_timeout
        self.poll_interval = poll_interval
        self._stop = threading.Event()
        self._shell: bool | None = None  # whether the container has a usable sh (unknown)
        # (container id, started at) -> confirm reloads from its log (else from processes)
        self._validated: dict[tuple[str, str], bool] = {}

    @property
    def name(self) -> str:
        return self.discoverer.haproxy_name

    def locate(self) -> HaproxyContainer:
        """The HAProxy container, which must exist and be running."""
        return self.located(None)

    def located(self, haproxy: HaproxyContainer | None) -> HaproxyContainer:
        """``haproxy`` (as inspected by the caller) or the container inspected now, checked."""
        haproxy = haproxy or self.discoverer.haproxy()
        if haproxy is None:
            raise HaproxyContainerError(
                f"no container named {self.name!r}: start HAProxy in a container with that "
                "name, or give --haproxy-container",
                file="haproxy",
            )
        if not haproxy.running:
            raise HaproxyContainerError(
                f"container {haproxy.name!r} is not running", file="haproxy"
            )
        return haproxy

    def binary(self, haproxy: HaproxyContainer) -> str:
        for word in haproxy.command:
            if posixpath.basename(word) == "haproxy":
                return word
        return "haproxy"

    def read_config(self, haproxy: HaproxyContainer) -> str | None:
        try:
            data = self.engine.get_file(haproxy.id, haproxy.config_path)
        except NotFound:
            return None
        return data.decode("utf-8", "replace")

    def write_temporary(self, haproxy: HaproxyContainer, text: str) -> str:
        """Write ``text`` next to the config (same file system: the move is a rename)."""
        directory, base = posixpath.split(haproxy.config_path)
        name = f".{base}.cosmonaut-{os.getpid()}-{next(_counter)}"
        self.engine.put_file(haproxy.id, directory or "/", name, text.encode("utf-8"))
        return posixpath.join(directory, name)

    def write_maps(self, haproxy: HaproxyContainer, maps: dict[str, str]) -> None:
        """Write map files beside the config under their own (content-named) names.

        A new bundle's maps never replace a file the running config reads (a name names one
        content), so they can go in before the config is checked and moved.
        """
        if not maps:
            return
        directory = posixpath.dirname(haproxy.config_path) or "/"
        self.engine.put_files(
            haproxy.id, directory, {name: text.encode("utf-8") for name, text in maps.items()}
        )

    def remove_maps(self, haproxy: HaproxyContainer, names: set[str]) -> None:
        """Remove map files beside the config (best effort: a stray map is harmless)."""
        if not names:
            return
        directory = posixpath.dirname(haproxy.config_path) or "/"
        paths = [posixpath.join(directory, name) for name in sorted(names)]
        with contextlib.suppress(Exception):
            self.engine.exec(haproxy.id, ["rm", "-f", *paths], user="0")

    def check(self, haproxy: HaproxyContainer, path: str) -> ExecResult:
        """``haproxy -c`` inside the container, with its binary, files and user."""
        return self.engine.exec(haproxy.id, [self.binary(haproxy), "-c", "-f", path])

    def check_and_move(self, haproxy: HaproxyContainer, path: str) -> Checked:
        """``haproxy -c`` on ``path``, then, only if it passed, ``mv`` it over the config.

        One ``sh -c`` exec (as root, who may rename in the config's directory) instead of two
        saves an exec round trip on every apply; an image without ``sh`` gets two execs.
        """
        if self._shell is not False:
            try:
                result = self.engine.exec(
                    haproxy.id,
                    ["sh", "-c", _CHECK_AND_MOVE, self.binary(haproxy), path, haproxy.config_path],
                    user="0",
                )
            except EngineError:
                result = None
            if result is not None and result.exit_code in (0, _CHECK_FAILED, _MOVE_FAILED):
                self._shell = True
                if result.exit_code == _MOVE_FAILED:
                    raise ApplyError(
                        f"could not move the new config into place: {result.output.strip()}",
                        file=f"{haproxy.name}:{haproxy.config_path}",
                    )
                return Checked(result.exit_code == 0, result.output)
            if self._shell is None:
                self._shell = False  # no usable sh in this image: two execs from now on
        check = self.check(haproxy, path)
        if check.exit_code != 0:
            self.remove(haproxy, path)
            return Checked(False, check.output)
        self.move(haproxy, path)
        return Checked(True, check.output)

    def move(self, haproxy: HaproxyContainer, source: str) -> None:
        """Atomically replace the config with ``source`` (``mv`` is ``rename(2)``)."""
        result = self.engine.exec(haproxy.id, ["mv", "-f", source, haproxy.config_path], user="0")
        if result.exit_code != 0:
            raise ApplyError(
                f"could not move the new config into place: {result.output.strip()}",
                file=f"{haproxy.name}:{haproxy.config_path}",
            )

    def remove(self, haproxy: HaproxyContainer, path: str) -> None:
        with contextlib.suppress(Exception):  # best effort: a stray file is harmless
            self.engine.exec(haproxy.id, ["rm", "-f", path], user="0")

    def workers(self, haproxy: HaproxyContainer) -> Workers:
        """The master's pid and its workers'; refuses HAProxy not in master-worker mode."""
        processes = self.engine.processes(haproxy.id)
        ours = [p for p in processes if _is_haproxy(p)]
        pids = {p.pid for p in ours}
        masters = [p for p in ours if p.ppid not in pids]
        if len(masters) != 1:
            raise HaproxyContainerError(
                f"container {haproxy.name!r} runs {len(masters)} HAProxy master processes; "
                "expected exactly one",
                file="haproxy",
            )
        master = masters[0]
        workers = frozenset(p.pid for p in ours if p.ppid == master.pid)
        loading = bool({"-sf", "-st", "-x"} & set(master.args.split()))
        if not workers and not loading:
            raise HaproxyContainerError(
                f"HAProxy in {haproxy.name!r} is not in master-worker mode (no worker "
                "process): run it with -W, as the official image does; a signal would stop it",
                file="haproxy",
            )
        return Workers(master.pid, workers, loading)

    def validate(self, haproxy: HaproxyContainer) -> None:
        """Once per container start: refuse HAProxy outside master-worker mode, and pick how
        reloads are confirmed: from the master's log lines when it writes them (fast), else
        from the process table."""
        key = (haproxy.id, haproxy.started_at)
        if key in self._validated:
            return
        self.settled(haproxy)  # raises unless master-worker
        try:
            lines = self._lines(haproxy)
        except EngineError:
            lines = []
        self._validated[key] = any(_NEW_WORKER.search(line) for line in lines)

    def mark(self, haproxy: HaproxyContainer) -> Mark:
        """What to compare with after the reload: the worker processes, and the log's tail."""
        self.validate(haproxy)
        workers = self.settled(haproxy)
        lines: tuple[str, ...] | None = None
        if self._validated[(haproxy.id, haproxy.started_at)]:
            with contextlib.suppress(EngineError):  # no log: the processes alone decide
                lines = tuple(self._lines(haproxy))
        return Mark(lines, workers)

    def settled(self, haproxy: HaproxyContainer) -> Workers:
        """The workers once the master is not in the middle of a reload (bounded wait)."""
        deadline = time.monotonic() + self.reload_timeout
        while True:
            current = self.workers(haproxy)
            if not current.loading or time.monotonic() >= deadline:
                return current
            if self._stop.wait(self.poll_interval):
                return current

    def reload(self, haproxy: HaproxyContainer, mark: Mark) -> Reloaded:
        """Send SIGUSR2 to the master and wait until its new worker runs.

        Confirmed by the master's log ("Reloading HAProxy", "New worker (N) forked", "Loading
        success.") and a worker process that was not there before, or, for a HAProxy that logs
        nothing, by that new process alone. Fails fast when the master says "Loading
        failure!" or goes back to waiting without a new worker (it could not bind an address,
        say), and after ``reload_timeout`` otherwise.
        """
        started = time.monotonic()
        self.engine.kill(haproxy.id, "SIGUSR2")
        deadline = started + self.reload_timeout
        try:
            if mark.lines is not None:
                worker = self._confirm_from_log(haproxy, mark, deadline)
                return Reloaded(frozenset({worker}), time.monotonic() - started)
            new = self._confirm_from_processes(haproxy, mark.workers, deadline)
            return Reloaded(new, time.monotonic() - started)
        except NotFound:
            raise ApplyError(
                f"container {haproxy.name!r} disappeared during the reload", file="haproxy"
            ) from None
        except _Refused:
            self.settled(haproxy)  # let the master finish before anyone signals it again
            reason = "HAProxy refused the new config at reload"
        except _TimedOut:
            reason = f"no new HAProxy worker after {self.reload_timeout:g} s: the reload failed"
        state = self.discoverer.haproxy()
        if state is None or not state.running or state.started_at != haproxy.started_at:
            raise ApplyError(
                f"HAProxy in {haproxy.name!r} stopped during the reload", file="haproxy"
            )
        tail = self._log_tail(haproxy)
        raise ApplyError(reason + (f"; HAProxy said:\n{tail}" if tail else ""), file="haproxy")

    def _confirm_from_log(self, haproxy: HaproxyContainer, mark: Mark, deadline: float) -> int:
        """The new worker's pid as the master logged it, once the process table also shows
        a worker that was not there at ``mark``."""
        assert mark.lines is not None
        previous = _last_worker(mark.lines)
        worker: int | None = None
        while True:
            if worker is None:
                found = _reload_outcome(_after(mark.lines, self._lines(haproxy)), previous)
                if found == "failure":
                    raise _Refused
                worker = found if isinstance(found, int) else None
            if worker is not None and self._new_workers(haproxy, mark.workers):
                return worker
            if time.monotonic() >= deadline:
                raise _TimedOut
            if self._stop.wait(self.poll_interval):
                raise _TimedOut

    def _new_workers(self, haproxy: HaproxyContainer, before: Workers) -> frozenset[int]:
        try:
            return self.workers(haproxy).workers - before.workers
        except HaproxyContainerError:
            return frozenset()  # between re-exec and fork: look again

    def _confirm_from_processes(
        self, haproxy: HaproxyContainer, before: Workers, deadline: float
    ) -> frozenset[int]:
        seen_loading = False
        while True:
            try:
                now: Workers | None = self.workers(haproxy)
            except HaproxyContainerError:
                now = None  # between re-exec and fork: look again
            if now is not None:
                new = now.workers - before.workers
                if new:
                    return new
                if now.loading:
                    seen_loading = True
                elif seen_loading:
                    raise _Refused  # back to waiting, and no new worker: the load failed
            if time.monotonic() >= deadline:
                raise _TimedOut
            if self._stop.wait(self.poll_interval):
                raise _TimedOut

    def _lines(self, haproxy: HaproxyContainer) -> list[str]:
        return self.engine.logs(haproxy.id, tail=_TAIL).splitlines()

    def _log_tail(self, haproxy: HaproxyContainer) -> str:
        """What HAProxy logged since the last reload began (its container's output)."""
        try:
            lines = self._lines(haproxy)
        except Exception:
            return ""
        starts = [i for i, line in enumerate(lines) if _RELOADING in line]
        if starts:
            lines = lines[starts[-1] + 1 :]
        return "\n".join(line for line in lines[-20:] if line.strip())

    def stop(self) -> None:
        self._stop.set()


def _is_haproxy(process: Process) -> bool:
    words = process.args.split()
    return bool(words) and posixpath.basename(words[0]) == "haproxy"


def _after(before: tuple[str, ...], lines: list[str]) -> list[str]:
    """The lines logged after ``before``: after the last place its last lines appear."""
    anchor = list(before[-_ANCHOR:])
    if not anchor:
        return lines
    for start in range(len(lines) - len(anchor), -1, -1):
        if lines[start : start + len(anchor)] == anchor:
            return lines[start + len(anchor) :]
    return lines  # the anchor scrolled out: everything is new (see _reload_outcome)


def _reload_outcome(lines: list[str], previous: int | None) -> int | str | None:
    """The new worker's pid, "failure", or None (not decided yet), from the master's lines
    after a reload began. ``previous`` is the last worker forked before it."""
    starts = [i for i, line in enumerate(lines) if _RELOADING in line]
    if not starts:
        return None
    worker: int | None = None
    for line in lines[starts[0] + 1 :]:
        if "Loading failure!" in line:
            return "failure"
        match = _NEW_WORKER.search(line)
        if match and int(match.group(1)) != previous:
            worker = int(match.group(1))
        if "Loading success." in line and worker is not None:
            return worker
    return None


def _last_worker(lines: tuple[str, ...]) -> int | None:
    for line in reversed(lines):
        match = _NEW_WORKER.search(line)
        if match:
            return int(match.group(1))
    return None
