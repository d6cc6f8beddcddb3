"""``lambda-registry schema``: print the payload's JSON Schema (``compiler.schema``).

Exit code 0; the schema goes to standard output, nothing else is printed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from runtime.cli.exits import Exit


def add_schema_command(commands: Any) -> None:
    schema = commands.add_parser(
        "schema",
        help="print the payload's JSON Schema",
        description="Print the JSON Schema of the payload (generated from the models), for "
        "editors and validators.",
    )
    schema.set_defaults(run=run_schema)


def run_schema(args: argparse.Namespace) -> int:
    from compiler.schema import payload_schema_text

    sys.stdout.write(payload_schema_text())
    return int(Exit.OK)
