"""``lambda-registry``: the command line. One ``main``, one error funnel
(``runtime.cli.errors``), one exit-code table (``runtime.cli.exits``), and one module per
command family, each registering itself on the parser:

* ``compile`` (``runtime.cli.compile``): payload -> verified haproxy.cfg;
* ``lint`` (``runtime.cli.lint``), ``fmt`` (``runtime.cli.fmt``): check and format
  existing configs;
* ``state`` (``runtime.cli.state``): see or reset what the registry remembers;
* ``serve`` (``runtime.cli.serve``): the registry over HTTP;
* ``schema`` (``runtime.cli.schema``): the payload's JSON Schema.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from runtime.cli.compile import add_compile_command
from runtime.cli.errors import guarded, report_error
from runtime.cli.fmt import add_fmt_command
from runtime.cli.lint import add_lint_command
from runtime.cli.schema import add_schema_command
from runtime.cli.serve import add_serve_command
from runtime.cli.state import add_state_commands

DEBUG_ENV = "LAMBDA_REGISTRY_DEBUG"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lambda-registry",
        description="Compile container payloads into verified haproxy.cfg files.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_compile_command(commands)
    add_lint_command(commands)
    add_fmt_command(commands)
    add_state_commands(commands)
    add_serve_command(commands)
    add_schema_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded(
        lambda: int(args.run(args)),
        prog="lambda-registry",
        debug_env=DEBUG_ENV,
        report=lambda error: report_error(args, error),
    )


if __name__ == "__main__":
    sys.exit(main())
