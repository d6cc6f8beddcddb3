"""The one error funnel of both command lines: a user mistake never prints a traceback.

``guarded`` runs a command and turns what escapes it into an exit code from
``runtime.cli.exits``: a ``LocatedError`` is reported in one line (``file:line:col: message``)
and mapped by the caller's table (most specific class first); anything else is a bug, said
briefly, with the traceback only when the debug variable is set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from compiler.errors import Diagnostic, InternalError, LocatedError
from runtime.cli.exits import Exit

ExitTable = Sequence[tuple[type[BaseException], Exit]]


class CheckFailedError(LocatedError):
    """``haproxy -c`` refused the config; ``message`` holds what it said."""


# What every command line maps; callers put their own, more specific, classes first.
COMMON_EXITS: ExitTable = (
    (InternalError, Exit.INTERNAL),
    (CheckFailedError, Exit.FAILED),
    (LocatedError, Exit.BAD_INPUT),
)


def guarded(
    run: Callable[[], int],
    *,
    prog: str,
    debug_env: str,
    report: Callable[[LocatedError], None],
    exits: ExitTable = COMMON_EXITS,
) -> int:
    try:
        return run()
    except KeyboardInterrupt:
        return Exit.INTERRUPTED
    except Exception as error:
        for kind, code in exits:
            if isinstance(error, kind):
                if isinstance(error, LocatedError):
                    report(error)
                return code
        # A bug: say so briefly, details on request.
        print(f"{prog}: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        if os.environ.get(debug_env):
            traceback.print_exc()
        return Exit.INTERNAL


def report_error(args: argparse.Namespace, error: LocatedError) -> None:
    """How ``lambda-registry`` shows the error that ended a command."""
    if isinstance(error, CheckFailedError):
        report(args, check_output=error.message)
    else:
        report(args, error=error)


def report(
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
