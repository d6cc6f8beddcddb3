"""Rules about the file and its structure: parse errors, the final newline, ``.if`` blocks,
directives, statements outside sections, section headers (HAP001-HAP007)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from compiler.ast import Source
from grammar.lint.findings import Problem
from grammar.lint.model import LintContext
from grammar.lint.registry import rule
from grammar.lint.statements import is_dynamic
from grammar.sections import PROXY_KINDS, SECTION_SPECS


@rule("HAP001", "parse-error", "error", "a line HAProxy cannot split into words")
def parse_error(ctx: LintContext) -> Iterator[Problem]:
    """The text could not be parsed (then the config is empty and only HAP002 also applies)."""
    error = ctx.parse_error
    if error is not None:
        yield Problem(None, error.message, line=error.line or 1, col=error.col or 1)


@rule("HAP002", "missing-final-newline", "error", "the last line does not end with a newline")
def missing_final_newline(ctx: LintContext) -> Iterator[Problem]:
    message = (
        "no newline at the end of the file: HAProxy 2.6 refuses it ('Missing LF on last line')"
    )
    text = ctx.text
    if text is not None:
        if text and not text.endswith("\n"):
            last = text.rsplit("\n", 1)[-1]
            yield Problem(None, message, line=text.count("\n") + 1, col=len(last) + 1)
        return
    last_src = _last_source(ctx)
    if last_src is not None and not last_src.newline:
        content = last_src.text
        yield Problem(None, message, line=last_src.line, col=len(content) + 1)


def _last_source(ctx: LintContext) -> Source | None:
    config = ctx.config
    for section in reversed(config.sections):
        if section.body:
            return section.body[-1].src
        return section.src
    return config.preamble[-1].src if config.preamble else None


@rule("HAP003", "unbalanced-conditional", "error", "unbalanced .if/.elif/.else/.endif")
def unbalanced_conditional(ctx: LintContext) -> Iterator[Problem]:
    yield from ctx.conditional_problems


@rule("HAP004", "statement-outside-section", "error", "a statement before the first section")
def statement_outside_section(ctx: LintContext) -> Iterator[Problem]:
    for stmt in ctx.preamble:
        yield Problem(stmt.src, f"'{stmt.keyword}' is outside any section", stmt.offset)


_DIRECTIVES = frozenset(
    {".if", ".elif", ".else", ".endif", ".diag", ".notice", ".warning", ".alert"}
)


@rule("HAP005", "unknown-directive", "error", "a line starting with '.' that is no directive")
def unknown_directive(ctx: LintContext) -> Iterator[Problem]:
    for directive in ctx.directives:
        if directive.name not in _DIRECTIVES:
            yield Problem(directive.src, f"unknown directive '{directive.name}'")


@rule("HAP006", "unconditional-alert", "error", "an .alert outside any .if block")
def unconditional_alert(ctx: LintContext) -> Iterator[Problem]:
    for directive in ctx.directives:
        if directive.name == ".alert" and not ctx.branch(directive):
            yield Problem(directive.src, "'.alert' outside any '.if' block always stops HAProxy")


_NAME_CHARS = re.compile(r"[A-Za-z0-9_.:-]*")


@rule("HAP007", "bad-section-header", "error", "a section header HAProxy refuses")
def bad_section_header(ctx: LintContext) -> Iterator[Problem]:
    for info in ctx.sections:
        spec = SECTION_SPECS.get(info.kind)
        if spec is None:
            continue
        words = info.section.src.values if info.section.src else ()
        if info.kind == "global" and len(words) > 1:
            yield Problem(info.src, f"'global' takes no argument (found '{words[1]}')", 1)
            continue
        if spec.needs_name and info.name is None:
            yield Problem(info.src, f"'{info.kind}' needs a name")
            continue
        if info.kind in ("frontend", "backend", "listen"):
            extra = len(words) - 2 - (2 if info.from_name is not None else 0)
            if extra > 0:
                yield Problem(
                    info.src,
                    f"'{info.kind} {info.name}' has an address after its name: "
                    "use a 'bind' line for listening addresses",
                    2,
                )
            name = info.name or ""
            bad = _NAME_CHARS.match(name)
            if bad is not None and bad.end() < len(name) and not is_dynamic(name):
                yield Problem(
                    info.src,
                    f"character {name[bad.end()]!r} is not permitted in {info.kind} name '{name}'",
                    1,
                )
        if info.from_name is not None and info.kind in PROXY_KINDS:
            proxy = ctx.proxy_of.get(id(info.section))
            if proxy is not None and proxy.defaults is None:
                yield Problem(
                    info.src,
                    f"defaults section '{info.from_name}' is not defined before {info.label}",
                    len(words) - 1,
                )
