"""A small typed facade over the Docker SDK: the only module that imports ``docker``.

Everything Cosmonaut asks the Docker Engine API goes through ``Engine``. Failures come out as
two exceptions: ``EngineUnavailable`` when the API cannot be reached at all (the daemon went
away: reconnect with backoff) and ``EngineError`` when it answered with an error. The client is
configured the way every Docker tool is (``DOCKER_HOST``, ``DOCKER_TLS_VERIFY``,
``DOCKER_CERT_PATH``) and created lazily, so an ``Engine`` survives a daemon restart.
"""

from __future__ import annotations

import contextlib
import io
import re
import tarfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import docker  # type: ignore[import-untyped,unused-ignore]
import docker.errors  # type: ignore[import-untyped,unused-ignore]
import requests  # type: ignore[import-untyped,unused-ignore]

from cosmonaut.errors import UnavailableError

JSON = dict[str, Any]


class EngineUnavailable(UnavailableError):
    """The Docker Engine API cannot be reached."""


class EngineError(UnavailableError):
    """The Docker Engine API answered with an error."""


class NotFound(EngineError):
    """No such container (or file in a container)."""


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int
    output: str


@dataclass(frozen=True, slots=True)
class Process:
    pid: int
    ppid: int
    args: str


class EventStream:
    """The Docker event stream; ``close()`` from another thread ends the iteration."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[JSON]:
        try:
            for event in self._stream:
                if isinstance(event, dict):
                    yield event
        except (requests.exceptions.RequestException, OSError, ValueError) as error:
            raise EngineUnavailable(f"event stream broke: {error}", file="docker") from None
        except docker.errors.DockerException as error:
            raise EngineUnavailable(f"event stream broke: {error}", file="docker") from None

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken stream: nothing left to do
            self._stream.close()


class Engine:
    """The Docker Engine API, as named by the environment (``DOCKER_HOST`` and friends)."""

    def __init__(self, *, timeout: float = 30.0, environment: Mapping[str, str] | None = None):
        self.timeout = timeout
        self._environment = dict(environment) if environment is not None else None
        self._client: Any = None
        self._lock = threading.Lock()

    def clone(self) -> Engine:
        """Another connection to the same engine (the event stream gets its own)."""
        return Engine(timeout=self.timeout, environment=self._environment)

    # -- connection --------------------------------------------------------------------------

    def _api(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    client = docker.from_env(
                        timeout=int(max(1, self.timeout)), environment=self._environment
                    )
                except docker.errors.DockerException as error:
                    raise EngineUnavailable(_short(error), file="docker") from None
                self._client = client.api
            return self._client

    def reset(self) -> None:
        """Forget the connection; the next call connects again (and detects the API version)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # the daemon is gone anyway
                client.close()

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        api = self._api()
        try:
            return function(api, *args, **kwargs)
        except docker.errors.NotFound as error:
            raise NotFound(f"{what}: {_explanation(error)}", file="docker") from None
        except docker.errors.APIError as error:
            raise EngineError(f"{what}: {_explanation(error)}", file="docker") from None
        except (requests.exceptions.RequestException, OSError) as error:
            self.reset()
            raise EngineUnavailable(f"{what}: {_short(error)}", file="docker") from None
        except docker.errors.DockerException as error:
            self.reset()
            raise EngineUnavailable(f"{what}: {_short(error)}", file="docker") from None

    def ping(self) -> None:
        self._call("ping", lambda api: api.ping())

    def info(self) -> JSON:
        return cast(JSON, self._call("info", lambda api: api.info()))

    def clock(self) -> float | None:
        """The engine's current time (``SystemTime`` of ``GET /info``), None if unreadable."""
        return engine_time(self.info().get("SystemTime"))

    # -- containers --------------------------------------------------------------------------

    def containers(
        self, filters: Mapping[str, Any] | None = None, *, all: bool = False
    ) -> list[JSON]:
        """Containers as ``GET /containers/json`` lists them (running ones unless ``all``)."""
        result = self._call(
            "list containers", lambda api: api.containers(all=all, filters=dict(filters or {}))
        )
        return [c for c in result if isinstance(c, dict)]

    def inspect(self, container: str) -> JSON:
        return cast(
            JSON,
            self._call(f"inspect {container}", lambda api: api.inspect_container(container)),
        )

    def exec(self, container: str, command: list[str], *, user: str = "") -> ExecResult:
        def run(api: Any) -> ExecResult:
            created = api.exec_create(container, command, user=user, stdout=True, stderr=True)
            output = api.exec_start(created["Id"])
            # The output can end a moment before the engine records the exit code (the
            # Docker Engine says Running with no ExitCode then): ask again, briefly.
            deadline = time.monotonic() + 5.0
            while True:
                inspected = api.exec_inspect(created["Id"])
                code = inspected.get("ExitCode")
                finished = isinstance(code, int) and not inspected.get("Running")
                if finished or time.monotonic() >= deadline:
                    break
                time.sleep(0.01)
            text = output.decode("utf-8", "replace") if isinstance(output, bytes) else ""
            return ExecResult(code if isinstance(code, int) else -1, text)

        return cast(ExecResult, self._call(f"exec {command[0]} in {container}", run))

    def put_file(self, container: str, directory: str, name: str, data: bytes) -> None:
        self.put_files(container, directory, {name: data})

    def put_files(
        self,
        container: str,
        directory: str,
        files: dict[str, bytes],
        *,
        mode: int = 0o644,
        owner: tuple[int, int] = (0, 0),
    ) -> None:
        """Copy files into one directory of a container, in one archive (one API call), with
        ``mode`` and ``owner`` (uid, gid)."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = mode
                info.uid, info.gid = owner
                info.mtime = int(time.time())
                archive.addfile(info, io.BytesIO(data))

        def put(api: Any) -> Any:
            return api.put_archive(container, directory, buffer.getvalue())

        name = ", ".join(files)[:200]
        what = f"copy {name} into {container}"
        try:
            ok = self._call(what, put)
        except NotFound:
            raise
        except EngineError:  # Podman's copier fails now and then ("broken pipe"): once more
            ok = self._call(what, put)
        if not ok:
            raise EngineError(f"copy {name} into {container}:{directory} failed", file="docker")

    def get_file(self, container: str, path: str) -> bytes:
        """The content of one regular file in a container; ``NotFound`` when it is missing."""

        def run(api: Any) -> bytes:
            chunks, _stat = api.get_archive(container, path)
            return b"".join(chunks)

        raw = cast(bytes, self._call(f"read {path} in {container}", run))
        with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
            for member in archive:
                if member.isfile():
                    handle = archive.extractfile(member)
                    if handle is not None:
                        return handle.read()
        raise NotFound(f"{path} in {container} is not a regular file", file="docker")

    def kill(self, container: str, signal: str) -> None:
        self._call(f"signal {signal} to {container}", lambda api: api.kill(container, signal))

    def processes(self, container: str) -> list[Process]:
        """The container's processes (``GET /containers/{id}/top``), with their parent."""
        result = self._call(
            f"list processes of {container}",
            lambda api: api.top(container, ps_args="-o pid,ppid,args"),
        )
        return parse_top(result if isinstance(result, dict) else {})

    def logs(self, container: str, *, tail: int) -> str:
        raw = self._call(
            f"logs of {container}",
            lambda api: api.logs(container, stdout=True, stderr=True, tail=tail),
        )
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)

    def events(self, filters: Mapping[str, Any], *, since: float | None = None) -> EventStream:
        """Events from now on, or, with ``since`` (seconds), the engine's history first."""
        extra = {} if since is None else {"since": since}
        stream = self._call(
            "subscribe to events",
            lambda api: api.events(decode=True, filters=dict(filters), **extra),
        )
        return EventStream(stream)


def parse_top(result: JSON) -> list[Process]:
    """``top`` output as processes. Docker returns one column per title; Podman one string per
    row, and its titles as one string too."""
    titles = " ".join(str(t) for t in result.get("Titles") or []).upper().split()
    if titles[-1:] in (["COMMAND"], ["ARGS"], ["CMD"]):
        titles[-1] = "ARGS"
    processes = []
    for row in result.get("Processes") or []:
        cells = [str(cell) for cell in row]
        if len(cells) != len(titles):
            cells = " ".join(cells).split(None, max(0, len(titles) - 1))
        try:
            column = dict(zip(titles, cells, strict=True))
            processes.append(Process(int(column["PID"]), int(column["PPID"]), column["ARGS"]))
        except (ValueError, KeyError):
            continue
    return processes


def engine_time(text: Any) -> float | None:
    """An RFC 3339 time as the engines write it (``2026-12-06T05:18:28.123456789Z``, or with
    an offset), in seconds since the epoch; None when it is not one."""
    if not isinstance(text, str) or not text:
        return None
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        return None
    zone = match["zone"]
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        whole = datetime.fromisoformat(f"{match['whole']}{zone}").timestamp()
    except ValueError:
        return None
    fraction = match["fraction"]
    return whole + (float("0." + fraction) if fraction else 0.0)


_RFC3339 = re.compile(
    r"(?P<whole>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<fraction>\d+))?"
    r"(?P<zone>[Zz]|[+-]\d\d:\d\d)"
)


def _explanation(error: Any) -> str:
    explanation = getattr(error, "explanation", None)
    return str(explanation or error)


def _short(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 300 else text[:300] + "..."
