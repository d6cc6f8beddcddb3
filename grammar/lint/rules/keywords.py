"""Rules that read the keyword table (HAP010-HAP018): each reports one kind of the
table's answers (``grammar.lint.keywords.check_words``) about every line."""

from __future__ import annotations

from collections.abc import Iterator

from grammar.lint.findings import Problem
from grammar.lint.keywords import ProblemKind
from grammar.lint.model import LintContext
from grammar.lint.registry import rule


def _table(ctx: LintContext, kind: ProblemKind) -> list[Problem]:
    """The keyword table's problems of one kind (the checker runs once per file)."""
    return ctx.keyword_problems.get(kind, [])


@rule("HAP010", "unknown-keyword", "warning", "a keyword the table does not know")
def unknown_keyword(ctx: LintContext) -> Iterator[Problem]:
    yield from _table(ctx, "unknown")


@rule("HAP011", "keyword-wrong-section", "error", "a keyword not allowed in this section kind")
def keyword_wrong_section(ctx: LintContext) -> Iterator[Problem]:
    yield from _table(ctx, "wrong-section")


@rule("HAP012", "keyword-ignored", "warning", "a keyword HAProxy ignores in this section kind")
def keyword_ignored(ctx: LintContext) -> Iterator[Problem]:
    yield from _table(ctx, "ignored")


@rule("HAP013", "removed-keyword", "error", "a keyword removed from HAProxy")
def removed_keyword(ctx: LintContext) -> Iterator[Problem]:
    yield from _table(ctx, "removed")


@rule("HAP014", "too-new-keyword", "error", "a keyword or section newer than the target")
def too_new_keyword(ctx: LintContext) -> Iterator[Problem]:
    yield from _table(ctx, "too-new")


@rule("HAP015", "argument-count", "error", "too few or too many arguments")
def argument_count(ctx: LintContext) -> Iterator[Problem]:
    yield from _table(ctx, "arity")


@rule("HAP018", "suspicious-argument-count", "warning", "an argument count HAProxy accepts")
def suspicious_argument_count(ctx: LintContext) -> Iterator[Problem]:
    """Too few or too many arguments where HAProxy 2.6 takes the line anyway (it ignores the
    extra ones, or runs without the missing one): most likely a mistake, not a refusal."""
    yield from _table(ctx, "arity-accepted")


@rule("HAP016", "rule-in-anonymous-defaults", "error", "rules in a defaults section without name")
def rule_in_anonymous_defaults(ctx: LintContext) -> Iterator[Problem]:
    yield from _table(ctx, "anonymous-defaults")


@rule("HAP017", "deprecated-keyword", "warning", "deprecated, or removed after the target")
def deprecated_keyword(ctx: LintContext) -> Iterator[Problem]:
    yield from _table(ctx, "deprecated")
