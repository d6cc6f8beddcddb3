"""Lint an HAProxy configuration: parse it, run every selected rule, drop suppressed findings.

Pure: text in, findings out (``lint_text``), or an already parsed ``Config`` (``lint_config``).
Rules live in ``grammar.lint.rules`` and are documented in ``docs/lint-rules.md``.

Selection works like ruff's: ``select`` and ``ignore`` take codes (``HAP020``), code prefixes
(``HAP02``) or rule names (``undefined-backend``). Findings can be suppressed in the file:

* on the line itself: ``server s1 app:80  # haplint: disable=HAP043``;
* on the next line: a comment line ``# haplint: disable-next-line=HAP021`` just above;
* in the whole file: ``# haplint: disable-file=HAP010,HAP031`` anywhere.

Without ``=CODES`` the comment suppresses every rule. HAP001 (the file cannot be parsed)
cannot be suppressed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grammar.lint.rules  # noqa: F401  (registers the rules)
from compiler.ast import Comment, Config, Line, Source
from compiler.errors import ParseError
from compiler.perf import paused_gc
from grammar.lint.findings import Finding, Problem
from grammar.lint.keywords import DEFAULT_TARGET
from grammar.lint.model import LintContext
from grammar.lint.registry import RULES, Rule
from grammar.parser import parse
from grammar.sections import Version

__all__ = ["LintOptions", "UnknownRuleError", "lint_config", "lint_text", "select_rules"]


@dataclass(frozen=True, slots=True)
class LintOptions:
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    target: Version = DEFAULT_TARGET
    # Whether a file the config names exists (HAP062; `lint` gives HAP060 the same answer);
    # None when where to look is unknown (stdin, the library).
    path_exists: Callable[[str], bool] | None = None


class UnknownRuleError(ValueError):
    """A --select/--ignore entry that matches no rule."""


def _matches(rule_: Rule, pattern: str) -> bool:
    return rule_.code.startswith(pattern.upper()) or rule_.name == pattern.lower()


def select_rules(select: Sequence[str] = (), ignore: Sequence[str] = ()) -> list[Rule]:
    """The rules to run, in code order. Raises ``UnknownRuleError`` for an unknown pattern."""
    for pattern in (*select, *ignore):
        if not any(_matches(rule_, pattern) for rule_ in RULES.values()):
            raise UnknownRuleError(f"no rule matches {pattern!r}")
    chosen = [
        rule_
        for rule_ in RULES.values()
        if (not select or any(_matches(rule_, p) for p in select))
        and not any(_matches(rule_, p) for p in ignore)
    ]
    return sorted(chosen, key=lambda rule_: rule_.code)


# --- suppression comments ----------------------------------------------------------------

_DIRECTIVE = re.compile(
    r"haplint:\s*(disable-next-line|disable-file|disable)\b\s*(?:=\s*([A-Za-z0-9_,\s-]*))?"
)
ALL = "*"


@dataclass(slots=True)
class _Suppressions:
    by_line: dict[int, set[str]]
    file: set[str]

    def hides(self, finding: Finding) -> bool:
        if finding.code == "HAP001":
            return False
        for codes in (self.file, self.by_line.get(finding.line, ())):
            if ALL in codes or finding.code in codes or finding.name in codes:
                return True
        return False


def _codes(spec: str | None) -> set[str]:
    if not spec or not spec.strip():
        return {ALL}
    codes = set()
    for part in spec.split(","):
        part = part.strip()
        if part:
            codes.add(part.upper() if part[:3].upper() == "HAP" else part.lower())
    return codes


def _suppressions(config: Config) -> _Suppressions:
    by_line: dict[int, set[str]] = {}
    whole_file: set[str] = set()
    pending: set[str] = set()

    def visit(src: Source | None, full_line_comment: bool) -> None:
        nonlocal pending
        if src is None:
            return
        comment = src.comment
        if not full_line_comment and pending:
            by_line.setdefault(src.line, set()).update(pending)
            pending = set()
        if comment is None or "haplint" not in comment:
            return
        for match in _DIRECTIVE.finditer(comment):
            kind, spec = match.group(1), match.group(2)
            codes = _codes(spec)
            if kind == "disable-file":
                whole_file.update(codes)
            elif kind == "disable-next-line":
                pending |= codes
            elif not full_line_comment:
                by_line.setdefault(src.line, set()).update(codes)

    def body(lines: Sequence[Line]) -> None:
        for line in lines:
            if isinstance(line, Comment):
                visit(line.src, True)
            elif line.src is not None and line.src.values:
                visit(line.src, False)

    body(config.preamble)
    for section in config.sections:
        visit(section.src, False)
        body(section.body)
    return _Suppressions(by_line, whole_file)


# --- running -----------------------------------------------------------------------------


def _location(problem: Problem) -> tuple[int, int]:
    src = problem.src
    line = problem.line if problem.line is not None else (src.line if src else 1)
    if problem.col is not None:
        return line, problem.col
    if src is None:
        return line, 1
    words = src.words
    if words:
        index = min(max(problem.index, 0), len(words) - 1)
        return line, words[index].col
    return line, len(src.indent) + 1


def lint_config(
    config: Config,
    *,
    file: str = "<input>",
    text: str | None = None,
    options: LintOptions | None = None,
    parse_error: ParseError | None = None,
) -> list[Finding]:
    """Run the selected rules on a parsed config; findings sorted by position, then code.

    ``parse_error`` says why ``text`` could not be parsed (``config`` is then empty): HAP001
    reports it, and only rules that read the text itself (HAP002) find anything else.
    """
    options = options or LintOptions()
    rules = select_rules(options.select, options.ignore)
    findings: list[Finding] = []
    with paused_gc():  # the model is acyclic: see compiler.perf
        context = LintContext(
            config, file=file, text=text, target=options.target, parse_error=parse_error
        )
        context.path_exists = options.path_exists
        if text is not None and "haplint" not in text:
            suppressions = _Suppressions({}, set())
        else:
            suppressions = _suppressions(config)
        for rule_ in rules:
            for problem in rule_.check(context):
                line, col = _location(problem)
                finding = Finding(
                    rule_.code, rule_.severity, problem.message, file, line, col, rule_.name
                )
                if not suppressions.hides(finding):
                    findings.append(finding)
    findings.sort(key=lambda f: (f.line, f.col, f.code))
    return findings


def lint_text(
    text: str, *, file: str = "<input>", options: LintOptions | None = None
) -> list[Finding]:
    """Parse and lint. A file that cannot be parsed gives one HAP001 finding (and HAP002)."""
    try:
        config = parse(text, file=file)
    except ParseError as error:
        return lint_config(Config(), file=file, text=text, options=options, parse_error=error)
    return lint_config(config, file=file, text=text, options=options)
