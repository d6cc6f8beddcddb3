"""``lambda-registry compile``: a payload in, a verified haproxy.cfg (and its map files) out.

Without ``-o`` the bundle goes to stdout in ``runtime.bundle``'s stream form (the config
alone when there are no maps).

With ``--check``, a service whose lines ``haproxy -c`` refuses is left out of the output (a
diagnostic says what haproxy said) and the rest is checked again; the store keeps it.

Exit codes (``runtime.cli.exits``): 0 compiled (diagnostics, if any, on stderr); 1 ``--check``
failed (``haproxy -c`` refused the config and named no service to leave out); 2 bad input,
any diagnostic with ``--strict``, or a store error (the stored state is as it was); 3 internal
error (nothing was written).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runtime.cli.errors import CheckFailedError, report
from runtime.cli.exits import Exit

if TYPE_CHECKING:
    from runtime.haproxy_check import CheckResult

# Modules a command needs (pydantic models, the compile pipeline, stores) are imported when
# it runs: `lambda-registry lint` should not pay for `compile`'s imports.


def add_compile_command(commands: Any) -> None:
    compile_ = commands.add_parser(
        "compile", help="payload JSON -> haproxy.cfg", description="Compile a payload."
    )
    compile_.add_argument("payload", nargs="?", default="-", help="payload file, or - for stdin")
    compile_.add_argument(
        "-o",
        "--output",
        help="write the config here, and its map files beside it (atomically, as a set)",
    )
    compile_.add_argument("--compat", choices=["none", "seed"], help="reproduce the seed's output")
    compile_.add_argument(
        "--routing",
        choices=["acl", "map", "auto"],
        help="route with one ACL per service, with map files, or auto (maps from 50 services)",
    )
    compile_.add_argument("--options", help="render options (JSON file)")
    compile_.add_argument("--check", action="store_true", help="also run haproxy -c on it")
    compile_.add_argument("--strict", action="store_true", help="any diagnostic is fatal")
    compile_.add_argument(
        "--format", choices=["text", "json"], default="text", help="diagnostics format on stderr"
    )
    compile_.add_argument(
        "--store",
        default=None,
        help="state store: sqlite (the default, $XDG_STATE_HOME/lambda-registry/state.db), "
        "sqlite:PATH, dynamodb, or memory (nothing is remembered); default "
        "$LAMBDA_REGISTRY_STORE",
    )
    compile_.set_defaults(run=run_compile)


def run_compile(args: argparse.Namespace) -> int:
    from runtime.bundle import format_stream, write_bundle
    from runtime.config import host_ttl_env, load_render_options
    from runtime.files import read_input
    from runtime.haproxy_check import RefusedError
    from runtime.pipeline import compile_payload
    from runtime.stores.select import choose_store

    options = load_render_options(args.options, args.compat, args.routing)
    host_ttl = host_ttl_env(os.environ)
    store = choose_store(args.store)
    source = "<stdin>" if args.payload == "-" else args.payload
    try:
        result = compile_payload(
            read_input(args.payload),
            options=options,
            store=store,
            file=source,
            strict=args.strict,
            host_ttl=host_ttl,
            check=_haproxy_check if args.check else None,
        )
    except RefusedError as error:
        raise CheckFailedError(error.message) from None
    report(args, diagnostics=result.diagnostics)
    if args.output:
        write_bundle(args.output, result.files)
    else:
        sys.stdout.write(format_stream(result.files))
    return Exit.OK


def _haproxy_check(files: Mapping[str, str]) -> CheckResult | None:
    """``haproxy -c`` on the bundle; None (and a note) when no haproxy is installed."""
    from runtime.haproxy_check import check_config

    try:
        return check_config(files)
    except FileNotFoundError:
        print("lambda-registry: haproxy not installed; --check skipped", file=sys.stderr)
        return None
