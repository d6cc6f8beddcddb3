"""``lambda-registry fmt``: the I/O around ``grammar.format``.

Rewrites each file in the canonical layout, atomically (``runtime.files.write_atomic``), only
when it changes. ``--check`` writes nothing and exits 1 when a file would change; ``--diff``
prints a unified diff instead of writing. Exit 2 for input that cannot be read or parsed, 3
when the safety check fails (a bug; nothing is written). Codes from ``runtime.cli.exits``.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from compiler.errors import LocatedError, ParseError
from grammar.format import UnsafeFormatError, format_text
from runtime.cli.exits import Exit
from runtime.cli.output import plural, say
from runtime.files import InputError, config_inputs, read_text, write_atomic


def add_fmt_command(commands: Any) -> None:
    """Register ``fmt`` on the CLI's subparsers object."""
    fmt = commands.add_parser(
        "fmt",
        help="rewrite haproxy.cfg files in the canonical layout",
        description="Format HAProxy configuration files; only layout changes.",
    )
    fmt.add_argument("files", nargs="+", metavar="FILE", help="files or directories; - = stdin")
    fmt.add_argument("--check", action="store_true", help="exit 1 if a file would change")
    fmt.add_argument("--diff", action="store_true", help="print a diff instead of writing")
    fmt.set_defaults(run=run_fmt)


@dataclass(slots=True)
class FmtReport:
    """What a fmt run did; owns the counts, the summary line and the exit code (as black's)."""

    check: bool = False
    diff: bool = False
    changed: int = 0
    unchanged: int = 0
    worst: int = Exit.OK  # the gravest failure so far: BAD_INPUT or INTERNAL

    def done(self, changed: bool) -> None:
        """One more file formatted (``changed``: the canonical layout differs)."""
        if changed:
            self.changed += 1
        else:
            self.unchanged += 1

    def failed(self, code: int) -> None:
        self.worst = max(self.worst, code)

    def summary(self) -> str:
        verb = "would be reformatted" if self.check or self.diff else "reformatted"
        return f"{plural(self.changed, 'file')} {verb}, {self.unchanged} unchanged"

    @property
    def exit_code(self) -> int:
        would_change = Exit.FAILED if self.check and self.changed else Exit.OK
        return max(self.worst, would_change)


def run_fmt(args: argparse.Namespace) -> int:
    result = FmtReport(check=args.check, diff=args.diff)
    for name in config_inputs(args.files):
        display = "<stdin>" if name == "-" else name
        try:
            text = read_text(name)
            formatted = format_text(text, file=display)
            _encodable(formatted, display)
        except UnsafeFormatError as error:
            say(sys.stderr, f"error: cannot format {display}: {error.message}\n")
            result.failed(Exit.INTERNAL)
            continue
        except (ParseError, InputError) as error:
            say(sys.stderr, f"error: cannot format: {error}\n")
            result.failed(Exit.BAD_INPUT)
            continue
        except LocatedError as error:
            say(sys.stderr, f"error: cannot format: {error}\n")
            result.failed(Exit.BAD_INPUT)
            continue
        result.done(formatted != text)
        if name == "-" and not (args.check or args.diff):
            sys.stdout.write(formatted)
            continue
        if formatted == text:
            continue
        if args.diff:
            diff = difflib.unified_diff(
                text.splitlines(keepends=True),
                formatted.splitlines(keepends=True),
                fromfile=f"{display} (original)",
                tofile=f"{display} (formatted)",
            )
            say(sys.stdout, "".join(_terminated(diff)))
        if args.check or args.diff:
            say(sys.stderr, f"would reformat {display}\n")
            continue
        try:
            write_atomic(name, formatted)
        except InputError as error:
            say(sys.stderr, f"error: {error}\n")
            result.failed(Exit.BAD_INPUT)
            continue
        say(sys.stderr, f"reformatted {display}\n")
    say(sys.stderr, result.summary() + "\n")
    return result.exit_code


def _terminated(lines: Iterable[str]) -> Iterable[str]:
    for line in lines:
        yield line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"


def _encodable(text: str, display: str) -> None:
    """fmt writes UTF-8; a file with bytes that are not UTF-8 is left alone."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        line = text.count("\n", 0, error.start) + 1
        raise ParseError(
            "not valid UTF-8; fmt leaves the file unchanged", file=display, line=line, col=1
        ) from None
