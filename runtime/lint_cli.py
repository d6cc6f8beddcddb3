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
import json
import os
import sys
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from compiler.errors import LocatedError, ParseError
from compiler.perf import paused_gc
from grammar.format import UnsafeFormatError, format_text
from grammar.lint import RULES, Finding, LintOptions, UnknownRuleError, lint_text, select_rules
from grammar.lint.keywords import DEFAULT_TARGET, format_version, parse_version
from runtime.files import InputError, read_input, write_atomic

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3

DOCS_PAGE = "docs/lint-rules.md"
CONFIG_SUFFIXES = (".cfg", ".conf", ".config")


def add_lint_commands(commands: Any) -> None:
    """Register ``lint`` and ``fmt`` on the CLI's subparsers object."""
    lint = commands.add_parser(
        "lint",
        help="check haproxy.cfg files for mistakes",
        description="Lint HAProxy configuration files (rules: docs/lint-rules.md).",
    )
    lint.add_argument("files", nargs="*", metavar="FILE", help="files or directories; - = stdin")
    lint.add_argument("--format", choices=["text", "json", "sarif"], default="text")
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


def _safe(text: str) -> str:
    """Text that any output stream can take (undecodable bytes shown as escapes)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _say(stream: TextIO, text: str) -> None:
    stream.write(_safe(text))
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


# --- lint --------------------------------------------------------------------------------


@dataclass(slots=True)
class _LintRun:
    findings: list[Finding]
    unreadable: list[str]
    files: int


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
    run = _LintRun([], [], 0)
    with paused_gc(freeze=True):
        for name in _inputs(args.files):
            display = "<stdin>" if name == "-" else name
            try:
                text = _read(name)
            except InputError as error:
                run.unreadable.append(str(error))
                continue
            run.files += 1
            run.findings.extend(lint_text(text, file=display, options=options))
    _report_lint(args.format, run, rules)
    if run.unreadable:
        return EXIT_BAD_INPUT
    if any(finding.severity == "error" for finding in run.findings):
        return EXIT_FINDINGS
    return EXIT_OK


def _report_lint(form: str, run: _LintRun, rules: Sequence[Any]) -> None:
    errors = sum(1 for finding in run.findings if finding.severity == "error")
    warnings = len(run.findings) - errors
    for problem in run.unreadable:
        _say(sys.stderr, f"error: {problem}\n")
    if form == "json":
        document = {
            "findings": [finding.as_dict() for finding in run.findings],
            "unreadable": run.unreadable,
            "summary": {"files": run.files, "errors": errors, "warnings": warnings},
        }
        _say(sys.stdout, json.dumps(document, indent=2) + "\n")
    elif form == "sarif":
        _say(sys.stdout, json.dumps(sarif(run.findings, rules, run.unreadable), indent=2) + "\n")
    else:
        for finding in run.findings:
            _say(sys.stdout, f"{finding}\n")
    _say(
        sys.stderr,
        f"{run.files} file{'s' if run.files != 1 else ''} checked: {errors} error"
        f"{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}\n",
    )


def _uri(path: str) -> str:
    return quote(path.replace("\\", "/"), safe="/:@-._~")


def sarif(
    findings: Sequence[Finding], rules: Sequence[Any], unreadable: Sequence[str] = ()
) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run (for code-scanning UIs)."""
    ordered = sorted(rules, key=lambda rule_: rule_.code)
    index = {rule_.code: position for position, rule_ in enumerate(ordered)}
    results = []
    for finding in findings:
        results.append(
            {
                "ruleId": finding.code,
                "ruleIndex": index.get(finding.code, 0),
                "level": "error" if finding.severity == "error" else "warning",
                "message": {"text": _safe(finding.message)},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": _uri(_safe(finding.file))},
                            "region": {"startLine": finding.line, "startColumn": finding.col},
                        }
                    }
                ],
            }
        )
    notifications = [
        {"level": "error", "message": {"text": _safe(problem)}} for problem in unreadable
    ]
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "lambda-registry lint",
                        "rules": [
                            {
                                "id": rule_.code,
                                "name": rule_.name,
                                "shortDescription": {"text": rule_.summary},
                                "help": {"text": f"See {DOCS_PAGE}, section {rule_.code}."},
                                "defaultConfiguration": {
                                    "level": "error" if rule_.severity == "error" else "warning"
                                },
                            }
                            for rule_ in ordered
                        ],
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": not unreadable,
                        "toolExecutionNotifications": notifications,
                    }
                ],
                "results": results,
            }
        ],
    }


# --- fmt ---------------------------------------------------------------------------------


def run_fmt(args: argparse.Namespace) -> int:
    code = EXIT_OK
    changed = unchanged = 0
    for name in _inputs(args.files):
        display = "<stdin>" if name == "-" else name
        try:
            text = _read(name)
            formatted = format_text(text, file=display)
            _encodable(formatted, display)
        except UnsafeFormatError as error:
            _say(sys.stderr, f"error: cannot format {display}: {error.message}\n")
            code = max(code, EXIT_INTERNAL)
            continue
        except (ParseError, InputError) as error:
            _say(sys.stderr, f"error: cannot format: {error}\n")
            code = max(code, EXIT_BAD_INPUT)
            continue
        except LocatedError as error:
            _say(sys.stderr, f"error: cannot format: {error}\n")
            code = max(code, EXIT_BAD_INPUT)
            continue
        if name == "-" and not (args.check or args.diff):
            sys.stdout.write(formatted)
            changed += formatted != text
            unchanged += formatted == text
            continue
        if formatted == text:
            unchanged += 1
            continue
        changed += 1
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
            if args.check:
                code = max(code, EXIT_FINDINGS)
            continue
        try:
            write_atomic(name, formatted)
        except InputError as error:
            _say(sys.stderr, f"error: {error}\n")
            code = max(code, EXIT_BAD_INPUT)
            continue
        _say(sys.stderr, f"reformatted {display}\n")
    verb = "would be reformatted" if args.check or args.diff else "reformatted"
    _say(sys.stderr, f"{changed} file{'s' if changed != 1 else ''} {verb}, {unchanged} unchanged\n")
    return code


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


__all__ = ["RULES", "add_lint_commands", "main", "run_fmt", "run_lint", "sarif"]

if __name__ == "__main__":
    sys.exit(main())
