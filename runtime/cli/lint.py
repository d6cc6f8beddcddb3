"""``lambda-registry lint``: the I/O around ``grammar.lint``.

Besides the rules over the text, it checks the files a config reads (HAP060: a map or ACL
pattern file that is not there, for a config read from a file) and map files named on the
command line (``*.map``, HAP061: badly formed lines).

Exit codes (``runtime.cli.exits``): 0 when no finding has error severity, 1 when one has, 2
when an input cannot be read (or an option is wrong). Findings go to stdout
(``--format text|json|sarif``), a summary to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from compiler.perf import paused_gc
from grammar.lint import Finding, LintOptions, UnknownRuleError, lint_text, select_rules
from grammar.lint.keywords import DEFAULT_TARGET, format_version, parse_version
from grammar.lint.reporters import FORMATS, report
from runtime.cli.exits import Exit
from runtime.cli.output import plural, say
from runtime.files import InputError, config_inputs, read_text


def add_lint_command(commands: Any) -> None:
    """Register ``lint`` on the CLI's subparsers object."""
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
            f"{plural(self.files, 'file')} checked: {plural(self.errors, 'error')}, "
            f"{plural(self.warnings, 'warning')}"
        )

    @property
    def exit_code(self) -> int:
        if self.unreadable:
            return Exit.BAD_INPUT
        return Exit.FAILED if self.errors else Exit.OK


def map_findings(text: str, display: str) -> list[Finding]:
    """A map file named on the command line: its badly formed lines (HAP061)."""
    from grammar.lint.rules.files import map_file_findings

    return map_file_findings(text, display)


def files_beside(text: str, path: str) -> Callable[[str], bool]:
    """Whether a file the config at ``path`` names exists (map and pattern files, ``crt``).

    Relative names are looked up where HAProxy would: beside the config with ``default-path
    config``, under an ``origin`` path, else in the working directory. The config is parsed
    for that only when a relative name is asked about.
    """
    directory: list[str] = []

    def base() -> str:
        if not directory:
            from compiler.errors import ParseError
            from grammar.lint.rules.files import base_directory
            from grammar.parser import parse

            try:
                where = base_directory(parse(text, file=path))
            except ParseError:
                where = None  # HAP001 says why
            directory.append(
                os.path.dirname(os.path.abspath(path)) if where == "" else (where or ".")
            )
        return directory[0]

    def exists(name: str) -> bool:
        return os.path.exists(name if os.path.isabs(name) else os.path.join(base(), name))

    return exists


def missing_files(text: str, path: str, exists: Callable[[str], bool]) -> list[Finding]:
    """HAP060: map and pattern files the config at ``path`` names that ``exists`` does not
    find."""
    if "map" not in text and "-f" not in text:
        return []  # nothing to look for: skip the second parse
    from compiler.errors import ParseError
    from grammar.lint.rules.files import map_reference_findings
    from grammar.parser import parse

    try:
        config = parse(text, file=path)
    except ParseError:
        return []  # HAP001 says why
    return map_reference_findings(config, path, exists)


def _patterns(values: Sequence[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def run_lint(args: argparse.Namespace) -> int:
    select, ignore = _patterns(args.select), _patterns(args.ignore)
    try:
        target = parse_version(args.target_version)
        rules = select_rules(select, ignore)
    except (ValueError, UnknownRuleError) as error:
        say(sys.stderr, f"lambda-registry lint: {error}\n")
        return Exit.BAD_INPUT
    if args.list_rules:
        for rule_ in rules:
            say(sys.stdout, f"{rule_.code}  {rule_.severity:<7}  {rule_.name}: {rule_.summary}\n")
        return Exit.OK
    if not args.files:
        say(sys.stderr, "lambda-registry lint: no FILE given (use - for stdin)\n")
        return Exit.BAD_INPUT
    options = LintOptions(tuple(select), tuple(ignore), target)
    codes = {rule_.code for rule_ in rules}
    result = LintReport()
    with paused_gc(freeze=True):
        for name in config_inputs(args.files):
            display = "<stdin>" if name == "-" else name
            try:
                text = read_text(name)
            except InputError as error:
                result.failed(str(error))
                continue
            if name.endswith(".map"):
                result.checked(map_findings(text, display) if "HAP061" in codes else [])
                continue
            if name == "-":
                result.checked(lint_text(text, file=display, options=options))
                continue
            # One answer to "is this file there?" for every rule that asks (crt: HAP062).
            exists = files_beside(text, name)
            known = replace(options, path_exists=exists)
            findings = lint_text(text, file=display, options=known)
            if "HAP060" in codes:
                findings = sorted(
                    [*findings, *missing_files(text, name, exists)],
                    key=lambda f: (f.line, f.col, f.code),
                )
            result.checked(findings)
    for problem in result.unreadable:
        say(sys.stderr, f"error: {problem}\n")
    document = report(
        args.format,
        result.findings,
        rules=rules,
        unreadable=result.unreadable,
        summary=result.counts(),
    )
    say(sys.stdout, document)
    say(sys.stderr, result.summary() + "\n")
    return result.exit_code
