"""``cosmonaut``: keep a Docker host's HAProxy container routed to its service containers.

Commands: ``run`` (the daemon), ``once`` (one reconcile, then exit), ``status`` (what the last
pass routed and how its apply went). Logs are JSON lines on stderr; ``once --dry-run`` prints
the unified diff on stdout.

Exit codes of ``once``: 0 HAProxy is up to date (applied, unchanged, or dry run); 1 the config
was not applied (refused by the grammar or ``haproxy -c``, or the reload failed and the last
known good config was restored); 2 bad usage; 3 internal error; 4 Docker, the registry or the
HAProxy container is unavailable. ``status``: 0 the last pass succeeded, 1 it failed, 2 no pass
recorded yet.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compiler.errors import LocatedError
from cosmonaut import logs
from cosmonaut.apply import Applier
from cosmonaut.discovery import Discoverer
from cosmonaut.engine import Engine, EngineError, EngineUnavailable
from cosmonaut.errors import UsageError
from cosmonaut.haproxy import HaproxyTarget
from cosmonaut.loop import Backoff, Daemon
from cosmonaut.metrics import Metrics, MetricsServer
from cosmonaut.reconcile import Reconciler
from cosmonaut.registry import LocalRegistry, Registry, RemoteRegistry
from cosmonaut.state import History, default_state_dir, read_status
from runtime.config import load_render_options
from runtime.stores import open_store

EXIT_OK = 0
EXIT_NOT_APPLIED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_UNAVAILABLE = 4

_TABLE_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cosmonaut",
        description="Keep a Docker host's HAProxy container routed to its service containers.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="the daemon: follow Docker events and reconcile")
    _add_common(run)
    loop = run.add_argument_group("event loop")
    loop.add_argument(
        "--debounce-min",
        type=_seconds,
        default=0.02,
        metavar="SECONDS",
        help="quiet period that closes a batch of events while the host is calm (default 0.02)",
    )
    loop.add_argument(
        "--debounce-max",
        type=_seconds,
        default=2.0,
        metavar="SECONDS",
        help="longest a batch waits after its first event; the quiet period grows up to half "
        "of it during bursts (default 2)",
    )
    loop.add_argument(
        "--resync-interval",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="full reconcile at least this often, events or not (default 60)",
    )
    loop.add_argument(
        "--metrics-address",
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (default: off; port 0 "
        "picks a free port, and the 'metrics' log line says which)",
    )
    run.set_defaults(handler=run_daemon)

    once = commands.add_parser("once", help="one reconcile, then exit (for cron and CI)")
    _add_common(once)
    once.set_defaults(handler=run_once)

    status = commands.add_parser("status", help="what the last pass routed, and its result")
    status.add_argument("--state-dir", type=Path, help="where run/once keep their state")
    status.add_argument("--format", choices=["text", "json"], default="text")
    status.set_defaults(handler=run_status)
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    docker = parser.add_argument_group("Docker host")
    docker.add_argument(
        "--haproxy-container",
        default="haproxy",
        metavar="NAME",
        help="name (or id) of the HAProxy container (default haproxy)",
    )
    docker.add_argument(
        "--haproxy-config",
        metavar="PATH",
        help="config path inside that container (default: the -f argument of its command, "
        "else /usr/local/etc/haproxy/haproxy.cfg)",
    )
    docker.add_argument(
        "--network",
        metavar="NAME",
        help="Docker network whose addresses HAProxy uses (default: the networks the HAProxy "
        "container is attached to, first by name)",
    )
    docker.add_argument(
        "--keyword",
        metavar="TEXT",
        help="only manage containers whose name contains TEXT (case-insensitive)",
    )
    docker.add_argument(
        "--docker-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="timeout of one Docker API call (default 30)",
    )
    registry = parser.add_argument_group("registry")
    registry.add_argument(
        "--table",
        metavar="NAME",
        help="the registry table (default: the Docker host's name, made a valid table name)",
    )
    registry.add_argument(
        "--registry-url",
        metavar="URL",
        help="POST payloads to this HTTP endpoint (API Gateway, lambda-registry serve) "
        "instead of compiling in process",
    )
    registry.add_argument(
        "--registry-timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="timeout of one registry request (default 10)",
    )
    registry.add_argument(
        "--registry-retries",
        type=_count,
        default=3,
        metavar="N",
        help="retries after a failed registry request, with exponential backoff (default 3)",
    )
    registry.add_argument(
        "--store",
        metavar="SPEC",
        help="in-process registry store: memory, sqlite, sqlite:PATH or dynamodb "
        "(default sqlite:STATE_DIR/registry.db)",
    )
    registry.add_argument("--options", metavar="FILE", help="render options (JSON file)")
    registry.add_argument(
        "--compat", choices=["none", "seed"], help="render the seed's output (in process only)"
    )
    apply = parser.add_argument_group("apply")
    apply.add_argument(
        "--dry-run",
        action="store_true",
        help="print the unified diff against the running config instead of applying",
    )
    apply.add_argument(
        "--reload-timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for HAProxy's new worker after a reload (default 10)",
    )
    apply.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="where applied configs and the status are kept (default $COSMONAUT_STATE_DIR, "
        "else /var/lib/cosmonaut for root, else ~/.local/state/cosmonaut)",
    )
    apply.add_argument(
        "--keep",
        type=_positive,
        default=10,
        metavar="N",
        help="how many applied configs to keep in STATE_DIR/history (default 10)",
    )
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], default="info"
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def _count(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return int(text)


def _positive(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(sys.stderr, getattr(args, "log_level", "info"))
    try:
        code: int = args.handler(args)
        return code
    except (EngineUnavailable, EngineError) as error:
        logs.error("docker unavailable", error=str(error))
        return EXIT_UNAVAILABLE
    except LocatedError as error:
        logs.error("usage error", error=str(error))
        print(f"cosmonaut: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        print(f"cosmonaut: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        if os.environ.get("COSMONAUT_DEBUG"):
            traceback.print_exc()
        return EXIT_INTERNAL


class _Parts:
    """Everything ``run`` and ``once`` share, built from the flags."""

    def __init__(
        self, args: argparse.Namespace, *, wait_for_docker: threading.Event | None
    ) -> None:
        self.state_dir: Path = args.state_dir or default_state_dir()
        self.engine = Engine(timeout=args.docker_timeout)
        self.metrics = Metrics()
        self.discoverer = Discoverer(
            self.engine,
            haproxy_container=args.haproxy_container,
            network=args.network,
            keyword=args.keyword,
            config_path=args.haproxy_config,
        )
        self.registry = _registry(args, self.state_dir)
        self.target = HaproxyTarget(
            self.engine, self.discoverer, reload_timeout=args.reload_timeout
        )
        history = None if args.dry_run else History(self.state_dir / "history", args.keep)
        self.applier = Applier(self.target, history, dry_run=args.dry_run)
        table = args.table or _host_table(self.engine, wait=wait_for_docker)
        self.reconciler = Reconciler(
            self.discoverer,
            self.registry,
            self.applier,
            table=table,
            metrics=self.metrics,
            status_path=None if args.dry_run else self.state_dir / "status.json",
        )


def run_once(args: argparse.Namespace) -> int:
    parts = _Parts(args, wait_for_docker=None)
    result = parts.reconciler.reconcile(("once",))
    applied = result.applied
    if applied is not None and applied.outcome == "dry-run" and applied.diff:
        sys.stdout.write(applied.diff)
    if result.failure in ("docker", "registry", "haproxy"):
        return EXIT_UNAVAILABLE
    if result.failure == "internal":
        return EXIT_INTERNAL
    return EXIT_OK if result.ok else EXIT_NOT_APPLIED


def run_daemon(args: argparse.Namespace) -> int:
    stop = threading.Event()
    server: MetricsServer | None = None
    holder: dict[str, Daemon] = {}

    def on_signal(signum: int, _frame: Any) -> None:
        logs.info("stopping", signal=signal.Signals(signum).name)
        stop.set()
        daemon = holder.get("daemon")
        if daemon is not None:
            daemon.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        parts = _Parts(args, wait_for_docker=stop)
        if stop.is_set():
            return EXIT_OK
        if args.metrics_address:
            server = MetricsServer(parts.metrics, args.metrics_address)
            server.start()
            host = str(args.metrics_address).rpartition(":")[0]
            logs.info("metrics", address=f"http://{host}:{server.port}/metrics")
        daemon = Daemon(
            parts.engine,
            parts.reconciler,
            debounce_min=args.debounce_min,
            debounce_max=args.debounce_max,
            resync_interval=args.resync_interval,
        )
        holder["daemon"] = daemon
        logs.info(
            "started",
            haproxy_container=args.haproxy_container,
            table=parts.reconciler.table,
            registry=parts.registry.label,
            state_dir=str(parts.state_dir),
            dry_run=args.dry_run,
        )
        if not stop.is_set():
            daemon.run()
        return EXIT_OK
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if server is not None:
            server.stop()


def run_status(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir or default_state_dir()
    status = read_status(state_dir / "status.json")
    if status is None:
        print(f"cosmonaut: no status in {state_dir} yet (run 'cosmonaut once' or 'run')")
        return 2
    last = status.get("last_pass") or {}
    if args.format == "json":
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        print(_status_text(status))
    return EXIT_OK if last.get("ok") else EXIT_NOT_APPLIED


def _status_text(status: dict[str, Any]) -> str:
    last = status.get("last_pass") or {}
    applied = last.get("apply") or {}
    lines = [
        f"table:      {status.get('table')}",
        f"registry:   {status.get('registry')}",
        f"haproxy:    {status.get('haproxy_container')}",
        f"last pass:  {last.get('time')}  {'ok' if last.get('ok') else 'FAILED'}"
        + (f"  {applied.get('outcome')}" if applied else "")
        + (f"  ({last.get('failure')}: {last.get('error')})" if last.get("failure") else ""),
    ]
    if applied and not last.get("ok"):
        lines.append(f"            {applied.get('message')}")
    success = status.get("last_success") or {}
    lines.append(f"last ok:    {success.get('time', 'never')}")
    routed = status.get("routed") or []
    lines.append(f"routed:     {len(routed)} container(s)")
    for item in routed:
        lines.append(
            f"  {item['name']:<24} {item['service']:<16} {item['mode']} {item['predicate']}"
            f"  -> {item['address']}" + (f"  cookie {item['cookie']}" if item.get("cookie") else "")
        )
    for problem in status.get("problems") or []:
        lines.append(
            f"  left out: {problem['container']}: {problem['setting']}: {problem['reason']}"
        )
    for item in status.get("excluded") or []:
        lines.append(f"  out of rotation: {item['container']}: {item['reason']}")
    return "\n".join(lines)


def _registry(args: argparse.Namespace, state_dir: Path) -> Registry:
    if args.registry_url:
        if args.store or args.options or args.compat:
            raise UsageError(
                "--store, --options and --compat configure the in-process registry; the remote "
                "registry is configured where it runs",
                file="--registry-url",
            )
        return RemoteRegistry(
            args.registry_url, timeout=args.registry_timeout, retries=args.registry_retries
        )
    store = open_store(args.store or f"sqlite:{state_dir / 'registry.db'}")
    return LocalRegistry(store, load_render_options(args.options, args.compat))


def _host_table(engine: Engine, *, wait: threading.Event | None) -> str:
    """The Docker host's name as a table name: other characters become '-', and a name
    shorter than three characters is prefixed with 'host-'.

    With ``wait`` (an event that is set to give up), wait for Docker with backoff.
    """
    backoff = Backoff(0.2, 10.0)
    while True:
        try:
            name = str(engine.info().get("Name") or "")
            break
        except EngineUnavailable as error:
            if wait is None:
                raise
            delay = backoff.next()
            logs.warning("docker unavailable", error=str(error), retry_in=round(delay, 2))
            if wait.wait(delay):
                raise
    table = _TABLE_CHARACTERS.sub("-", name)[:255] or "host"
    return table if len(table) >= 3 else f"host-{table}"


if __name__ == "__main__":
    sys.exit(main())
