"""``lambda-registry lint`` and ``lambda-registry fmt``: the I/O around ``grammar.lint`` and
``grammar.format``.

lint: exit 0 when no finding has error severity, 1 when one has, 2 when an input cannot be
read (or an option is wrong). Findings go to stdout (``--format text|json|sarif``), a summary
to stderr.

fmt: rewrites each file in the canonical layout, atomically (``runtime.files.write_atomic``),
only when it changes. ``--check`` writes nothing and exits 1 when a file would change;
``--diff`` prints a unified diff instead of writing. Exit 2 for input that cannot be read or
parsed, 3 when the safety check fails (a bug; nothing is written).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from compiler.errors import LocatedError, ParseError
from compiler.perf import paused_gc
from grammar.format import UnsafeFormatError, format_text
from grammar.lint import Finding, LintOptions, UnknownRuleError, lint_text, select_rules
from grammar.lint.keywords import DEFAULT_TARGET, format_version, parse_version
from grammar.lint.reporters import FORMATS, printable, report
from runtime.files import InputError, read_input, write_atomic

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3

CONFIG_SUFFIXES = (".cfg", ".conf", ".config")


def add_lint_commands(commands: Any) -> None:
    """Register ``lint`` and ``fmt`` on the CLI's subparsers object."""
    lint = commands.add_parser(
        "lint",
        help="check haproxy.cfg files for mistakes",
        description="Lint HAProxy configuration files (rules: docs/lint-rules.md).",
    )
    lint.add_argument("files", nargs="*", metavar="FILE", help="files or directories; - = stdin")
    lint.add_argument("--format", choices=list(FORMATS), default="text")
    lint.add_argument(
        "--select", action="append", default=[], metavar="CODES", help="only these rules"
    )
    lint.add_argument(
        "--ignore", action="append", default=[], metavar="CODES", help="skip these rules"
    )
    lint.add_argument(
        "--target-version",
        default=format_version(DEFAULT_TARGET),
        metavar="X.Y",
        help="HAProxy version the config is for (default: %(default)s)",
    )
    lint.add_argument("--list-rules", action="store_true", help="print the rules and exit")
    lint.set_defaults(run=run_lint)

    fmt = commands.add_parser(
        "fmt",
        help="rewrite haproxy.cfg files in the canonical layout",
        description="Format HAProxy configuration files; only layout changes.",
    )
    fmt.add_argument("files", nargs="+", metavar="FILE", help="files or directories; - = stdin")
    fmt.add_argument("--check", action="store_true", help="exit 1 if a file would change")
    fmt.add_argument("--diff", action="store_true", help="print a diff instead of writing")
    fmt.set_defaults(run=run_fmt)


# --- shared ------------------------------------------------------------------------------


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def _say(stream: TextIO, text: str) -> None:
    stream.write(printable(text))
    stream.flush()


def _inputs(names: Sequence[str]) -> Iterable[str]:
    """Files named, and the config files under named directories (sorted)."""
    for name in names:
        path = Path(name)
        if name != "-" and path.is_dir():
            found = sorted(
                str(child)
                for child in path.rglob("*")
                if child.is_file() and child.name.endswith(CONFIG_SUFFIXES)
            )
            yield from found
        else:
            yield name


def _read(name: str) -> str:
    data = read_input(name)
    return data.decode("utf-8", "surrogateescape")


def _patterns(values: Sequence[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


# --- lint ---------------------------------------------------------------------------------


@dataclass(slots=True)
class LintReport:
    """What a lint run found; owns the counts, the summary line and the exit code."""

    files: int = 0
    errors: int = 0
    warnings: int = 0
    findings: list[Finding] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def checked(self, findings: Sequence[Finding]) -> None:
        """One more file linted, with its findings."""
        self.files += 1
        self.findings.extend(findings)
        errors = sum(1 for finding in findings if finding.severity == "error")
        self.errors += errors
        self.warnings += len(findings) - errors

    def failed(self, problem: str) -> None:
        """An input that could not be read."""
        self.unreadable.append(problem)

    def counts(self) -> dict[str, int]:
        return {"files": self.files, "errors": self.errors, "warnings": self.warnings}

    def summary(self) -> str:
        return (
            f"{_plural(self.files, 'file')} checked: {_plural(self.errors, 'error')}, "
            f"{_plural(self.warnings, 'warning')}"
        )

    @property
    def exit_code(self) -> int:
        if self.unreadable:
            return EXIT_BAD_INPUT
        return EXIT_FINDINGS if self.errors else EXIT_OK


def run_lint(args: argparse.Namespace) -> int:
    select, ignore = _patterns(args.select), _patterns(args.ignore)
    try:
        target = parse_version(args.target_version)
        rules = select_rules(select, ignore)
    except (ValueError, UnknownRuleError) as error:
        _say(sys.stderr, f"lambda-registry lint: {error}\n")
        return EXIT_BAD_INPUT
    if args.list_rules:
        for rule_ in rules:
            _say(sys.stdout, f"{rule_.code}  {rule_.severity:<7}  {rule_.name}: {rule_.summary}\n")
        return EXIT_OK
    if not args.files:
        _say(sys.stderr, "lambda-registry lint: no FILE given (use - for stdin)\n")
        return EXIT_BAD_INPUT
    options = LintOptions(tuple(select), tuple(ignore), target)
    result = LintReport()
    with paused_gc(freeze=True):
        for name in _inputs(args.files):
            display = "<stdin>" if name == "-" else name
            try:
                text = _read(name)
            except InputError as error:
                result.failed(str(error))
                continue
            result.checked(lint_text(text, file=display, options=options))
    for problem in result.unreadable:
        _say(sys.stderr, f"error: {problem}\n")
    document = report(
        args.format,
        result.findings,
        rules=rules,
        unreadable=result.unreadable,
        summary=result.counts(),
    )
    _say(sys.stdout, document)
    _say(sys.stderr, result.summary() + "\n")
    return result.exit_code


# --- fmt ---------------------------------------------------------------------------------


@dataclass(slots=True)
class FmtReport:
    """What a fmt run did; owns the counts, the summary line and the exit code (as black's)."""

    check: bool = False
    diff: bool = False
    changed: int = 0
    unchanged: int = 0
    worst: int = EXIT_OK  # the gravest failure so far: EXIT_BAD_INPUT or EXIT_INTERNAL

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
        return f"{_plural(self.changed, 'file')} {verb}, {self.unchanged} unchanged"

    @property
    def exit_code(self) -> int:
        would_change = EXIT_FINDINGS if self.check and self.changed else EXIT_OK
        return max(self.worst, would_change)


def run_fmt(args: argparse.Namespace) -> int:
    result = FmtReport(check=args.check, diff=args.diff)
    for name in _inputs(args.files):
        display = "<stdin>" if name == "-" else name
        try:
            text = _read(name)
            formatted = format_text(text, file=display)
            _encodable(formatted, display)
        except UnsafeFormatError as error:
            _say(sys.stderr, f"error: cannot format {display}: {error.message}\n")
            result.failed(EXIT_INTERNAL)
            continue
        except (ParseError, InputError) as error:
            _say(sys.stderr, f"error: cannot format: {error}\n")
            result.failed(EXIT_BAD_INPUT)
            continue
        except LocatedError as error:
            _say(sys.stderr, f"error: cannot format: {error}\n")
            result.failed(EXIT_BAD_INPUT)
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
            _say(sys.stdout, "".join(_terminated(diff)))
        if args.check or args.diff:
            _say(sys.stderr, f"would reformat {display}\n")
            continue
        try:
            write_atomic(name, formatted)
        except InputError as error:
            _say(sys.stderr, f"error: {error}\n")
            result.failed(EXIT_BAD_INPUT)
            continue
        _say(sys.stderr, f"reformatted {display}\n")
    _say(sys.stderr, result.summary() + "\n")
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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m runtime.lint_cli lint|fmt ...``: the two commands without the compiler's
    imports (faster start; ``lambda-registry lint`` is the same code)."""
    parser = argparse.ArgumentParser(prog="lambda-registry")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_lint_commands(commands)
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # a bug: say so briefly, details on request
        _say(sys.stderr, f"lambda-registry: internal error: {type(error).__name__}: {error}\n")
        if os.environ.get("LAMBDA_REGISTRY_DEBUG"):
            traceback.print_exc()
        return EXIT_INTERNAL


__all__ = ["FmtReport", "LintReport", "add_lint_commands", "main", "run_fmt", "run_lint"]

if __name__ == "__main__":
    sys.exit(main())
