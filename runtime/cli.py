"""``lambda-registry``: the command line.

Exit codes: 0 success (diagnostics, if any, on stderr); 1 a check failed (``haproxy -c``
refused the config); 2 bad input, any diagnostic with ``--strict``, or a store error (the
store is unreachable or read-only, or concurrent updates exhausted the retries; the stored
state is as it was); 3 internal error (a self-check such as the round trip failed; nothing
was written).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from compiler.errors import Diagnostic, InternalError, LocatedError
from runtime.lint_cli import add_lint_commands
from runtime.serve import add_serve_command
from runtime.state_cli import add_state_commands, store_from_args

if TYPE_CHECKING:
    from runtime.stores import Store

# Modules a command needs (pydantic models, the compile pipeline, stores) are imported when
# that command runs: `lambda-registry lint` should not pay for `compile`'s imports.

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lambda-registry",
        description="Compile container payloads into verified haproxy.cfg files.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Each command family registers itself here (one line each).
    add_compile_command(commands)
    add_lint_commands(commands)
    add_state_commands(commands)
    add_serve_command(commands)
    return parser


def add_compile_command(commands: Any) -> None:
    compile_ = commands.add_parser(
        "compile", help="payload JSON -> haproxy.cfg", description="Compile a payload."
    )
    compile_.add_argument("payload", nargs="?", default="-", help="payload file, or - for stdin")
    compile_.add_argument("-o", "--output", help="write the config here (atomically)")
    compile_.add_argument("--compat", choices=["none", "seed"], help="reproduce the seed's output")
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except InternalError as error:
        _report(args, error=error)
        return EXIT_INTERNAL
    except CheckFailedError as error:
        _report(args, check_output=error.message)
        return EXIT_CHECK_FAILED
    except LocatedError as error:
        _report(args, error=error)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # a bug: say so briefly, details on request
        print(f"lambda-registry: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        if os.environ.get("LAMBDA_REGISTRY_DEBUG"):
            traceback.print_exc()
        return EXIT_INTERNAL


def run_compile(args: argparse.Namespace) -> int:
    from runtime.config import load_render_options
    from runtime.files import read_input, write_atomic
    from runtime.pipeline import compile_payload

    options = load_render_options(args.options, args.compat)
    store = _open_store(args.store)
    source = "<stdin>" if args.payload == "-" else args.payload
    result = compile_payload(
        read_input(args.payload),
        options=options,
        store=store,
        file=source,
        strict=args.strict,
        before_commit=_haproxy_accepts if args.check else None,
    )
    _report(args, diagnostics=result.diagnostics)
    if args.output:
        write_atomic(args.output, result.text)
    else:
        sys.stdout.write(result.text)
    return EXIT_OK


class CheckFailedError(LocatedError):
    """``haproxy -c`` refused the config; ``message`` holds what it said."""


def _haproxy_accepts(text: str) -> None:
    from runtime.haproxy_check import check_config

    try:
        check = check_config(text)
    except FileNotFoundError:
        print("lambda-registry: haproxy not installed; --check skipped", file=sys.stderr)
        return
    if not check.ok:
        raise CheckFailedError(check.output)


def _open_store(spec: str | None) -> Store:
    return store_from_args(spec)


def _report(
    args: argparse.Namespace,
    *,
    diagnostics: Sequence[Diagnostic] = (),
    error: LocatedError | None = None,
    check_output: str | None = None,
) -> None:
    if error is not None:
        diagnostics = (*diagnostics, *error.diagnostics)
    if getattr(args, "format", "text") == "json":
        document: dict[str, Any] = {"diagnostics": [d.as_dict() for d in diagnostics]}
        if error is not None:
            document["error"] = {"message": error.message, "location": error.location}
        if check_output is not None:
            document["check"] = {"ok": False, "output": check_output}
        print(json.dumps(document, indent=2), file=sys.stderr)
        return
    for diagnostic in diagnostics:
        print(f"{diagnostic.severity}: {diagnostic}", file=sys.stderr)
    if error is not None and not error.diagnostics:
        print(f"error: {error}", file=sys.stderr)
    if check_output is not None:
        print(f"error: haproxy -c refused the config:\n{check_output}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
