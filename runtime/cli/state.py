"""``lambda-registry state show TABLE`` and ``state clear TABLE --yes``.

What the registry remembers, for an operator: ``show`` prints the stored services of a table
(as text, or as JSON with ``--format json``), and ``clear`` forgets them all. ``clear`` refuses
to run without ``--yes``. Both take the same ``--store`` as ``compile`` (default
``$LAMBDA_REGISTRY_STORE``, else the embedded SQLite file).

Exit codes (``runtime.cli.exits``): 0 done, 2 bad arguments, a refused ``clear`` or a store
error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from compiler.errors import OptionsError
from runtime.cli.exits import Exit

if TYPE_CHECKING:
    from compiler.models import Service


def add_state_commands(commands: Any) -> None:
    """Register ``state show`` and ``state clear`` on the CLI's subcommands."""
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
    services = sorted(store.services(table).values(), key=lambda s: s.name)
    if args.format == "json":
        document = {
            "store": store.label,
            "table": table,
            "services": [service.model_dump(mode="json") for service in services],
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
        from compiler.models import TableName

        checked: str = TypeAdapter(TableName).validate_python(table)
    except ValidationError as error:
        raise OptionsError(error.errors(include_url=False)[0]["msg"], file="TABLE") from None
    return checked


def _describe(service: Service) -> str:
    route = f"{service.mode} {service.predicate}"
    cookie = f", cookie {service.cookie}" if service.cookie else ""
    lines = [f"{service.name}: {route}{cookie}, {len(service.containers)} container(s)"]
    lines.extend(f"    {container.id} {container.ip}" for container in service.containers)
    return "\n".join(lines)
