"""``lambda-registry state show TABLE``, ``state forget-host TABLE HOST --yes`` and
``state clear TABLE --yes``.

What the registry remembers, for an operator: ``show`` prints the stored services of a table,
or, for a fleet table, its hosts with their last report time, expiry and container count (as
text, or as JSON with ``--format json``); ``forget-host`` removes one host's report at once;
``clear`` forgets everything. Both refuse to run without ``--yes``. All take the same
``--store`` as ``compile`` (default ``$LAMBDA_REGISTRY_STORE``, else the embedded SQLite
file).

Exit codes (``runtime.cli.exits``): 0 done, 2 bad arguments, a refused ``clear`` or
``forget-host``, an unknown host, or a store error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from compiler.errors import OptionsError
from runtime.cli.exits import Exit

if TYPE_CHECKING:
    from compiler.models import HostReport, Service


def add_state_commands(commands: Any) -> None:
    """Register ``state show``, ``state forget-host`` and ``state clear``."""
    state = commands.add_parser(
        "state",
        help="see or reset what the registry remembers",
        description="See or reset the services a table remembers.",
    )
    verbs = state.add_subparsers(dest="state_command", required=True, metavar="ACTION")

    show = verbs.add_parser("show", help="print a table's stored services")
    show.add_argument("table", help="the payload's table")
    show.add_argument("--format", choices=["text", "json"], default="text")
    _add_store_argument(show)
    show.set_defaults(run=run_show)

    forget = verbs.add_parser("forget-host", help="fleet mode: remove one host's report now")
    forget.add_argument("table", help="the payload's table")
    forget.add_argument("host", help="the host id its payloads send")
    forget.add_argument("--yes", action="store_true", help="really remove it (required)")
    _add_store_argument(forget)
    forget.set_defaults(run=run_forget_host)

    clear = verbs.add_parser("clear", help="forget every service of a table")
    clear.add_argument("table", help="the payload's table")
    clear.add_argument("--yes", action="store_true", help="really clear it (required)")
    _add_store_argument(clear)
    clear.set_defaults(run=run_clear)


def _add_store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=None,
        help="memory, sqlite (default), sqlite:PATH or dynamodb; default $LAMBDA_REGISTRY_STORE",
    )


def run_show(args: argparse.Namespace) -> int:
    table = _checked_table(args.table)
    from runtime.stores.select import choose_store

    store = choose_store(args.store)
    hosts = store.hosts(table)
    if hosts:
        return _show_hosts(store.label, table, hosts, args.format == "json")
    services = sorted(store.services(table).values(), key=lambda s: s.name)
    if args.format == "json":
        document = {
            "store": store.label,
            "table": table,
            "services": [service.stored_form() for service in services],
        }
        print(json.dumps(document, indent=2))
        return Exit.OK
    if not services:
        print(f"table {table!r} in {store.label} holds no services")
        return Exit.OK
    print(f"table {table!r} in {store.label}: {len(services)} service(s)")
    for service in services:
        print(_describe(service))
    return Exit.OK


def _show_hosts(label: str, table: str, hosts: dict[str, HostReport], as_json: bool) -> int:
    import time

    from runtime.config import HandlerConfig

    ttl = HandlerConfig.from_env().host_ttl
    now = time.time()
    rows = [
        {
            "host": report.host,
            "reported_at": _utc(report.reported_at),
            "expires_at": _utc(report.reported_at + ttl),
            "expired": now - report.reported_at > ttl,
            "containers": report.container_count,
            "seq": report.seq,
        }
        for report in sorted(hosts.values(), key=lambda r: r.host)
    ]
    if as_json:
        print(
            json.dumps({"store": label, "table": table, "host_ttl": ttl, "hosts": rows}, indent=2)
        )
        return Exit.OK
    print(f"table {table!r} in {label}: {len(rows)} host(s), lease {ttl:g} s")
    for row in rows:
        state = "EXPIRED" if row["expired"] else f"expires {row['expires_at']}"
        seen = f"reported {row['reported_at']}"
        print(f"    {row['host']}: {row['containers']} container(s), {seen}, {state}")
    return Exit.OK


def _utc(moment: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_forget_host(args: argparse.Namespace) -> int:
    table = _checked_table(args.table)
    from runtime.stores.select import choose_store

    store = choose_store(args.store)
    if not args.yes:
        print(
            f"error: not removing host {args.host!r} of table {table!r} in {store.label} "
            "without --yes",
            file=sys.stderr,
        )
        return Exit.BAD_INPUT
    if not store.forget_host(table, args.host):
        print(f"error: table {table!r} in {store.label} has no host {args.host!r}", file=sys.stderr)
        return Exit.BAD_INPUT
    print(f"removed host {args.host!r} from table {table!r} in {store.label}")
    return Exit.OK


def run_clear(args: argparse.Namespace) -> int:
    table = _checked_table(args.table)
    from runtime.stores.select import choose_store

    store = choose_store(args.store)
    if not args.yes:
        count = len(store.services(table))
        print(
            f"error: not clearing table {table!r} in {store.label} ({count} service(s)) "
            "without --yes",
            file=sys.stderr,
        )
        return Exit.BAD_INPUT
    removed = store.clear(table)
    print(f"cleared table {table!r} in {store.label}: {removed} service(s) forgotten")
    return Exit.OK


def _checked_table(table: str) -> str:
    from pydantic import TypeAdapter, ValidationError

    try:
        from compiler.validators import TableName

        checked: str = TypeAdapter(TableName).validate_python(table)
    except ValidationError as error:
        raise OptionsError(error.errors(include_url=False)[0]["msg"], file="TABLE") from None
    return checked


def _describe(service: Service) -> str:
    route = f"{service.mode} {service.predicate}"
    cookie = f", cookie {service.cookie}" if service.cookie else ""
    lines = [f"{service.name}: {route}{cookie}, {len(service.containers)} container(s)"]
    if service.settings_key() != "{}":
        lines.append(f"    settings: {service.settings_key()}")
    lines.extend(
        f"    {container.id} {container.ip}"
        + (f" weight {container.weight}" if container.weight is not None else "")
        for container in service.containers
    )
    return "\n".join(lines)
