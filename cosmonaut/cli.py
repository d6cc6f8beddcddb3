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
import ipaddress
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from compiler.errors import LocatedError
from compiler.validators import IDENTIFIER_PATTERN, TABLE_NAME
from cosmonaut import logs
from cosmonaut.discovery.modes import ADDRESS_MODES, AUTO_HOST_ID
from cosmonaut.errors import INSTALL_HINT, UnavailableError
from cosmonaut.state import default_state_dir, read_status, status_text
from runtime.cli.errors import COMMON_EXITS, guarded
from runtime.cli.exits import Exit

DEBUG_ENV = "COSMONAUT_DEBUG"
HOST_ID = re.compile(IDENTIFIER_PATTERN)


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
        metavar="SECONDS",
        help="full reconcile at least this often, events or not (default 60; 30 with "
        "--host-id, so that three resyncs fit in the registry's default 90 s host lease)",
    )
    loop.add_argument(
        "--poll-interval",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="read the table's config this often, to apply what other hosts' reports changed "
        "(default 5; 0: never)",
    )
    loop.add_argument(
        "--metrics-address",
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (default: off); without "
        "HOST (':9100' or '9100'), on 127.0.0.1 only; with port 0, a free port, which the "
        "'metrics' log line names",
    )
    run.set_defaults(handler=_docker_command("run_daemon"))

    once = commands.add_parser("once", help="one reconcile, then exit (for cron and CI)")
    _add_common(once)
    once.set_defaults(handler=_docker_command("run_once"))

    status = commands.add_parser("status", help="what the last pass routed, and its result")
    status.add_argument("--state-dir", type=Path, help="where run/once keep their state")
    status.add_argument("--format", choices=["text", "json"], default="text")
    status.set_defaults(handler=run_status)
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    _add_docker_flags(parser)
    _add_registry_flags(parser)
    _add_apply_flags(parser)
    _add_https_flags(parser)


def _add_docker_flags(parser: argparse.ArgumentParser) -> None:
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
        "--address-mode",
        choices=ADDRESS_MODES,
        default="container",
        help="the address reported for a container: 'container', its IP on --network; "
        "'published', --advertise-address with the host port Docker published for the "
        "service port (default container)",
    )
    docker.add_argument(
        "--advertise-address",
        type=_ip_address,
        metavar="IP",
        help="the host's address that other hosts reach (required with --address-mode published)",
    )
    docker.add_argument(
        "--docker-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="timeout of one Docker API call (default 30)",
    )


def _add_registry_flags(parser: argparse.ArgumentParser) -> None:
    registry = parser.add_argument_group("registry")
    registry.add_argument(
        "--table",
        metavar="NAME",
        help="the registry table (default: the Docker host's name, made a valid table name)",
    )
    registry.add_argument(
        "--host-id",
        type=_host_id,
        metavar="ID|auto",
        help="fleet mode: report this host's containers as host ID (letters, digits, '-_.:', "
        "1 to 64), so that hosts sharing --table route to each other's containers; 'auto' "
        "takes the Docker engine's name (default: off, the payload speaks for the whole table)",
    )
    registry.add_argument(
        "--registry-url",
        metavar="URL",
        help="POST payloads to this HTTP endpoint (API Gateway, lambda-registry serve) "
        "instead of compiling in process",
    )
    registry.add_argument(
        "--registry-auth",
        choices=["sigv4", "bearer", "none"],
        help="how to authenticate to --registry-url: sigv4 signs with the AWS credential "
        "chain (the default for API Gateway and Lambda function URLs), bearer sends "
        "--registry-token-file or $COSMONAUT_REGISTRY_TOKEN, none (the default otherwise)",
    )
    registry.add_argument(
        "--registry-token-file",
        type=Path,
        metavar="PATH",
        help="the bearer token (first line of PATH) for --registry-auth bearer",
    )
    registry.add_argument(
        "--insecure-http",
        action="store_true",
        help="send the bearer token over plain http:// to a host other than this one "
        "(it travels unencrypted; without this flag, such a URL stops Cosmonaut at start-up)",
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


def _add_apply_flags(parser: argparse.ArgumentParser) -> None:
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
        "--runtime-socket",
        metavar="PATH",
        help="HAProxy's stats socket (on a volume shared with the HAProxy container): "
        "containers join and leave existing backends through the runtime API, without a "
        "reload, and stopping or unhealthy containers are drained at once (default: off)",
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


def _add_https_flags(parser: argparse.ArgumentParser) -> None:
    https = parser.add_argument_group("HTTPS")
    https.add_argument(
        "--certs-dir",
        metavar="PATH",
        help="the certificate folder inside the HAProxy container (default: the 'tls' render "
        "option's certs_dir, with the in-process registry); a change there is loaded by a "
        "reload, and ACME certificates are written there",
    )
    https.add_argument(
        "--acme-directory",
        metavar="URL",
        help="get certificates from this ACME CA (e.g. Let's Encrypt's "
        "https://acme-v02.api.letsencrypt.org/directory) for services labelled "
        "cosmonaut.tls.acme=true; needs --acme-accept-tos",
    )
    https.add_argument("--acme-email", metavar="ADDRESS", help="the ACME account's contact")
    https.add_argument(
        "--acme-accept-tos",
        action="store_true",
        help="agree to the ACME CA's terms of service (required with --acme-directory)",
    )
    https.add_argument(
        "--acme-all",
        action="store_true",
        help="get certificates for every tls on/redirect service in host mode whose name has "
        "no <name>.pem or <name>.crt in the certificate folder, labelled or not",
    )
    https.add_argument(
        "--acme-ca-bundle",
        type=Path,
        metavar="PATH",
        help="CA certificates to verify the ACME server's HTTPS with (default: the system's)",
    )
    https.add_argument(
        "--acme-store",
        metavar="SPEC",
        help="where the ACME account, leases and certificates are kept, shared by a fleet "
        "(default: the in-process registry's store; with --registry-url, "
        "sqlite:STATE_DIR/acme.db, which a fleet must replace with a shared one)",
    )
    https.add_argument(
        "--acme-table",
        type=_table_name,
        metavar="NAME",
        help="the table of --acme-store the ACME records go into (default: the registry "
        "table); give it a table of its own, which the registry cannot read, to keep the "
        "account and certificate keys from the registry",
    )
    https.add_argument(
        "--acme-retry-min",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="first retry after a failed order; doubles up to --acme-retry-max, and never "
        "sooner than the CA's Retry-After (default 60)",
    )
    https.add_argument(
        "--acme-retry-max",
        type=_seconds,
        default=3600.0,
        metavar="SECONDS",
        help="the longest wait between retries of a failing name (default 3600)",
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


def _ip_address(text: str) -> str:
    try:
        return ipaddress.ip_address(text.strip("[]")).compressed
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an IP address (HAProxy resolves names only once, at start-up)"
        ) from None


def _host_id(text: str) -> str:
    if text != AUTO_HOST_ID and not HOST_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a host id: 1 to 64 of letters, digits, '-', '_', '.' and ':' "
            f"(or {AUTO_HOST_ID!r})"
        )
    return text


def _table_name(text: str) -> str:
    if not TABLE_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a table name: 3 to 255 of letters, digits, '_', '-' and '.'"
        )
    return text


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
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "address_mode", None) == "published" and not args.advertise_address:
        parser.error("--address-mode published needs --advertise-address IP")
    if getattr(args, "acme_directory", None) and not args.acme_accept_tos:
        parser.error(
            "--acme-directory needs --acme-accept-tos: read the CA's terms of service first"
        )
    acme_only = (
        "acme_email",
        "acme_all",
        "acme_ca_bundle",
        "acme_store",
        "acme_table",
        "acme_accept_tos",
    )
    if not getattr(args, "acme_directory", None) and any(getattr(args, a, None) for a in acme_only):
        parser.error(
            "--acme-email, --acme-all, --acme-ca-bundle, --acme-store, --acme-table and "
            "--acme-accept-tos need --acme-directory"
        )
    if getattr(args, "acme_directory", None):
        if args.acme_retry_min < 1:
            parser.error("--acme-retry-min must be at least 1 s (the CA's rate limits)")
        if args.acme_retry_max < args.acme_retry_min:
            parser.error("--acme-retry-max must not be below --acme-retry-min")
        if args.acme_ca_bundle is not None and not args.acme_ca_bundle.is_file():
            parser.error(f"--acme-ca-bundle {args.acme_ca_bundle}: no such file")
    logs.configure(sys.stderr, getattr(args, "log_level", "info"))
    return guarded(
        lambda: int(args.handler(args)),
        prog="cosmonaut",
        debug_env=DEBUG_ENV,
        report=_report,
        exits=((UnavailableError, Exit.UNAVAILABLE), *COMMON_EXITS),
    )


def _report(error: LocatedError) -> None:
    if isinstance(error, UnavailableError):
        logs.error("docker unavailable", error=str(error))
        return
    logs.error("usage error", error=str(error))
    print(logs.redacted(f"cosmonaut: {error}"), file=sys.stderr)


def _docker_command(name: str) -> Callable[[argparse.Namespace], int]:
    """``run`` and ``once`` need the Docker SDK: without it, say how to install it."""

    def run(args: argparse.Namespace) -> int:
        try:
            from cosmonaut import wiring
        except ImportError as error:
            if error.name != "docker" and not str(error).startswith("import of docker"):
                raise
            print(
                f"cosmonaut: the Docker SDK for Python is not installed: {INSTALL_HINT}",
                file=sys.stderr,
            )
            return Exit.BAD_INPUT

        command: Callable[[argparse.Namespace], int] = getattr(wiring, name)
        return command(args)

    return run


def run_status(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir or default_state_dir()
    status = read_status(state_dir / "status.json")
    if status is None:
        print(f"cosmonaut: no status in {state_dir} yet (run 'cosmonaut once' or 'run')")
        return Exit.BAD_INPUT
    last = status.get("last_pass") or {}
    if args.format == "json":
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        print(status_text(status))
    return Exit.OK if last.get("ok") else Exit.FAILED


if __name__ == "__main__":
    sys.exit(main())
